import { classifyAcceptError } from "../server/accept_loop.ts";
import type { ServerStats } from "../server/stats.ts";

/** The verdict of {@linkcode createHealthCheck}: what `/healthz` answers. */
export interface Health {
  /** True when the server can greet a new client now. */
  ok: boolean;
  /** One line for people: `ok`, or why not. */
  reason: string;
}

/** Options for {@linkcode createHealthCheck}. */
export interface HealthCheckOptions {
  /** The current counters. */
  stats: () => Readonly<ServerStats>;
  /** True from the start of shutdown. */
  draining: () => boolean;
  /** The TCP ports the server listens on. */
  ports: () => readonly number[];
  /**
   * Clients waiting in the kernel's listen queues of these ports; undefined
   * where that cannot be known. Only tests replace it.
   *
   * @default {listenQueueLength}
   */
  queued?: (ports: readonly number[]) => number | undefined;
  /**
   * How long accepting may make no progress, in ms, while clients wait,
   * before the server is called stalled.
   *
   * @default {1000}
   */
  stallAfter?: number;
  /** The monotonic clock; only tests replace it. */
  now?: () => number;
}

/**
 * Sums the accept queues of the sockets listening on `ports`, from
 * `/proc/net/tcp` and `/proc/net/tcp6` (for a listening socket, `rx_queue`
 * is the number of connections waiting to be accepted). Undefined off Linux
 * or without read permission: never a prompt.
 */
export function listenQueueLength(
  ports: readonly number[],
): number | undefined {
  if (Deno.build.os !== "linux") return undefined;
  let total = 0;
  let read = false;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    if (
      Deno.permissions.querySync({ name: "read", path: file }).state !==
        "granted"
    ) {
      return undefined;
    }
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    read = true;
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue ...
      const fields = line.trim().split(/\s+/);
      if (fields.length < 5 || fields[3] !== "0A") continue;
      const port = parseInt(
        fields[1].slice(fields[1].lastIndexOf(":") + 1),
        16,
      );
      if (!ports.includes(port)) continue;
      total += parseInt(fields[4].slice(fields[4].indexOf(":") + 1), 16) || 0;
    }
  }
  return read ? total : undefined;
}

/**
 * Creates the health check behind `/healthz`. It is not enough that the
 * process runs: it says 503 while draining, while accepting fails for want
 * of descriptors, and while clients wait in the listen queue but no accept
 * has made progress for `stallAfter` ms (a stalled loop, or the connection
 * cap), so a load balancer sends clients elsewhere instead of into a queue
 * that does not move.
 */
export function createHealthCheck(options: HealthCheckOptions): () => Health {
  const {
    stats,
    draining,
    ports,
    queued = listenQueueLength,
    stallAfter = 1_000,
    now = () => performance.now(),
  } = options;
  let lastProgress = -1;
  let lastTime = now();
  return () => {
    if (draining()) return { ok: false, reason: "draining" };
    const current = stats();
    // Progress is a client taken off the queue: accepted, or failed on its
    // own account. A failing accept for want of descriptors takes none.
    let progress = current.accepted;
    for (const code in current.acceptErrors) {
      if (classifyAcceptError(code) !== "exhausted") {
        progress += current.acceptErrors[code];
      }
    }
    const time = now();
    if (progress !== lastProgress) {
      lastProgress = progress;
      lastTime = time;
    }
    const stalledFor = time - lastTime;
    if (current.exhausted && stalledFor >= stallAfter) {
      return {
        ok: false,
        reason: "accepting fails: out of file descriptors or memory",
      };
    }
    if (stalledFor < stallAfter) return { ok: true, reason: "ok" };
    const waiting = queued(ports());
    if (waiting !== undefined && waiting > 0) {
      return {
        ok: false,
        reason: `${waiting} client${
          waiting === 1 ? "" : "s"
        } waiting to be accepted, none accepted for ${
          Math.round(stalledFor / 1000)
        } s`,
      };
    }
    return { ok: true, reason: "ok" };
  };
}
