import { classifyAcceptError } from "../server/accept_loop.ts";
import type { ServerStats } from "../server/stats.ts";

/**
 * The verdict of {@linkcode createHealthCheck}, what `/healthz` answers:
 * `ok` when the server can greet a new client now, and one line for people
 * (`reason`): `ok`, or why not.
 */
export type Health = { ok: boolean; reason: string };

/**
 * A connection to the server's own port, made by a probe: `connected` once
 * the kernel has queued it (it need not be accepted), `accepted()` true once
 * the server took it (without it, the server's counters must move), `done()`
 * closes it.
 */
export type Probe = { connected: boolean; accepted?(): boolean; done(): void };

/** Options for {@linkcode createHealthCheck}. */
export interface HealthCheckOptions {
  /** The current counters. */
  stats: () => Readonly<ServerStats>;
  /** True from the start of shutdown. */
  draining: () => boolean;
  /** Probes the server's own port (see {@linkcode probeAddress}). */
  probe: () => Promise<Probe>;
  /**
   * How long accepting may make no progress, in ms, before the server is
   * probed, and how long a probe waits to be accepted.
   *
   * @default {1000}
   */
  stallAfter?: number;
  /** The monotonic clock; only tests replace it. */
  now?: () => number;
}

/**
 * Progress is a client taken off the listen queue: accepted, or failed on
 * its own account. A failing accept for want of descriptors takes none.
 */
function progressOf(stats: Readonly<ServerStats>): number {
  let progress = stats.accepted;
  for (const [code, count] of Object.entries(stats.acceptErrors)) {
    if (classifyAcceptError(code) !== "exhausted") progress += count;
  }
  return progress;
}

/**
 * Creates the health check behind `/healthz`. It is not enough that the
 * process runs: it answers 503 while draining, while accepting fails for
 * want of descriptors, and when the server, idle for `stallAfter` ms, does
 * not take a probe connection off its own listen queue within `stallAfter`
 * ms (a stalled accept loop, or every place taken). A load balancer then
 * sends clients elsewhere instead of into a queue that does not move.
 * Probes happen only when nothing was accepted since the last check, so a
 * busy server is never probed.
 */
export function createHealthCheck(options: HealthCheckOptions) {
  const { stats, draining, probe } = options;
  const { stallAfter = 1_000, now = () => performance.now() } = options;
  let lastProgress = -1;
  let lastTime = now();
  const verdict = (reason: string): Health => ({ ok: reason === "ok", reason });
  const stalled = `a probe connection waited ${stallAfter} ms and was ` +
    "not accepted (stalled, or at --max-connections)";
  return async () => {
    if (draining()) return verdict("draining");
    const current = stats();
    const time = now();
    const progress = progressOf(current);
    if (progress !== lastProgress) [lastProgress, lastTime] = [progress, time];
    if (time - lastTime < stallAfter) return verdict("ok");
    if (current.exhausted) {
      return verdict("accepting fails: out of file descriptors or memory");
    }
    const { connected, accepted, done } = await probe();
    try {
      if (!connected) return verdict("cannot connect to its own port");
      const start = now();
      while (accepted ? !accepted() : progressOf(stats()) === progress) {
        if (draining()) return verdict("draining");
        if (now() - start >= stallAfter) return verdict(stalled);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      [lastProgress, lastTime] = [progressOf(stats()), now()];
      return verdict("ok");
    } finally {
      done();
    }
  };
}

/**
 * Probes `addr` (loopback when it listens on every interface) of a server
 * whose `selfProbe` is `cell`: the probe binds the address it
 * connects to and a port of its choosing, writes that port into the cell
 * first, and is accepted once the server has cleared it; the server then
 * neither counts nor logs it.
 */
/** How long a probe waits for its own connect to complete, in ms. */
const CONNECT_WAIT = 1_000;

export async function probeAddress(addr: Deno.NetAddr, cell: Int32Array) {
  const wildcard = new Map([["0.0.0.0", "127.0.0.1"], ["::", "::1"]]);
  const hostname = wildcard.get(addr.hostname) ?? addr.hostname;
  const { connect } = await import("node:net");
  // A few tries: the port picked at random may be taken.
  for (let tries = 0; tries < 3; tries++) {
    // Below Linux's default ephemeral range (32768-60999): no client the
    // kernel gave a port can come from it meanwhile.
    const port = 10_000 + Math.floor(Math.random() * 22_000);
    Atomics.store(cell, 0, port);
    const local = { localAddress: hostname, localPort: port };
    const socket = connect({ host: hostname, port: addr.port, ...local });
    // A connect the kernel leaves unanswered (a full backlog drops the
    // SYN, retried for minutes) is, after a second, a connection the server
    // has not accepted: the check then says it is stalled.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const connected = await new Promise<boolean>((resolve) => {
      socket.once("connect", () => resolve(true));
      socket.once("error", () => resolve(false));
      timer = setTimeout(() => resolve(true), CONNECT_WAIT);
    });
    clearTimeout(timer);
    const done = () => {
      Atomics.compareExchange(cell, 0, port, 0);
      socket.destroy();
    };
    const accepted = () => Atomics.load(cell, 0) !== port;
    if (connected) return { connected, accepted, done };
    done();
  }
  return { connected: false, done() {} };
}
