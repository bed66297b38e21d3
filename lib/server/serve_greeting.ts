import {
  type AdmissionOptions,
  createAdmission,
  needsAdmission,
} from "./admission.ts";
import { DEFAULT_MESSAGE, encodeGreeting } from "../greeting/encode.ts";
import { formatAddress } from "../net/address.ts";
import {
  appendSlot,
  createSlot,
  createSlotList,
  insertSlot,
  type Slot,
  unlinkSlot,
} from "./connection_table.ts";
import type { GreetingSource } from "../greeting/template.ts";
import {
  type ConnectionOutcome,
  createServerStats,
  type ServerStats,
} from "./stats.ts";

/** The default TCP port. */
export const DEFAULT_PORT = 8080;
/** The default address to listen on: every IPv4 interface. */
export const DEFAULT_HOSTNAME = "0.0.0.0";
/** How long shutdown waits for in-flight greetings, in milliseconds. */
export const DEFAULT_DRAIN_TIMEOUT = 5_000;
/** How many connections are served at once before accepting pauses. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** The longest a connection may live, in milliseconds. */
export const DEFAULT_TIMEOUT = 10_000;
/** How long to wait for the client to close after the greeting, in ms. */
export const DEFAULT_LINGER = 2_000;

/** Certificate and key, in PEM, for serving the greeting over TLS. */
export interface TlsOptions {
  /** The certificate chain, PEM. */
  cert: string;
  /** The private key, PEM. */
  key: string;
}

/** One address to listen on: TCP (optionally TLS), or a Unix socket. */
export type ListenTarget =
  | {
    transport?: "tcp";
    /** @default {"0.0.0.0"} */
    hostname?: string;
    /** @default {8080} */
    port?: number;
    /** Serve over TLS with this certificate and key. */
    tls?: TlsOptions;
  }
  | {
    transport: "unix";
    /** The socket's path. */
    path: string;
  };

/** Thrown by {@linkcode serveGreeting} when one of its listeners fails. */
export class ListenError extends Error {
  /** The address that could not be listened on, as `HOST:PORT` or a path. */
  readonly address: string;
  /** The port asked for (0 for a Unix socket). */
  readonly port: number;
  /** Says which address failed and why; the original error is `cause`. */
  constructor(address: string, port: number, cause: unknown) {
    super(
      `Cannot listen on ${address}: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
    this.name = "ListenError";
    this.address = address;
    this.port = port;
  }
}

/** What happened to one connection; see {@linkcode ServeGreetingOptions.onClose}. */
export interface ConnectionRecord {
  /** The client's address (a Unix socket's clients have no path). */
  remoteAddr: Deno.Addr;
  /** The address the client reached. */
  localAddr: Deno.Addr;
  /** How the connection ended. */
  outcome: ConnectionOutcome;
  /** Why it was refused, or the error's kind. */
  reason?: string;
  /** Bytes of the greeting (or refuse message) written. */
  bytesWritten: number;
  /** Bytes there were to write. */
  greetingLength: number;
  /** When it was accepted, in milliseconds since the epoch. */
  startTime: number;
  /** How long it lived, in milliseconds. */
  duration: number;
}

/** Options for {@linkcode serveGreeting}. */
export interface ServeGreetingOptions extends AdmissionOptions {
  /**
   * The address to listen on; `::` serves IPv6 and IPv4 clients. Ignored
   * when `listen` is given.
   *
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * The TCP port to listen on; 0 picks a free one (see
   * {@linkcode GreetingServer.addr}). Ignored when `listen` is given.
   *
   * @default {8080}
   */
  port?: number;
  /** Serve over TLS. Ignored when `listen` is given. */
  tls?: TlsOptions;
  /**
   * Several addresses to listen on, served by one process. If any cannot be
   * listened on, none is: the ones already open are closed again.
   */
  listen?: ListenTarget[];
  /**
   * Set `SO_REUSEPORT` on TCP listeners, so several processes or workers can
   * share a port (Linux spreads connections across them). Needs Deno's
   * `--unstable-net`.
   */
  reusePort?: boolean;
  /**
   * The exact bytes sent to every client, usually from
   * {@linkcode encodeGreeting}, encoded once and never copied per
   * connection; or a function that makes them per connection.
   *
   * @default {encodeGreeting("Connection Established")}
   */
  greeting?: GreetingSource;
  /** Sent instead of the greeting to refused clients; by default they are closed. */
  refuseMessage?: Uint8Array;
  /** Aborting it shuts the server down, like {@linkcode GreetingServer.shutdown}. */
  signal?: AbortSignal;
  /**
   * How long shutdown lets in-flight greetings finish before it closes them,
   * in milliseconds.
   *
   * @default {5000}
   */
  drainTimeout?: number;
  /**
   * How many connections are served at once. At the cap the server stops
   * accepting, and new clients wait in the kernel's backlog rather than
   * being refused.
   *
   * @default {10000}
   */
  maxConnections?: number;
  /** The length of the kernel's queue of connections not yet accepted. */
  backlog?: number;
  /**
   * The longest one connection may live, in milliseconds (a client that
   * never reads a large greeting, or never closes); 0 for no limit.
   *
   * @default {10000}
   */
  timeout?: number;
  /**
   * After the greeting, the server shuts down its side and reads and
   * discards until the client closes, for at most this many milliseconds,
   * so a client that sent bytes first still receives the whole greeting
   * rather than a reset. 0 closes at once.
   *
   * @default {2000}
   */
  linger?: number;
  /**
   * Called for every admitted client, before it is greeted. Keep it cheap:
   * it runs on the per-connection path.
   */
  onConnection?: (remoteAddr: Deno.Addr, localAddr: Deno.Addr) => void;
  /** Called when a connection ends, with what happened to it. */
  onClose?: (record: ConnectionRecord) => void;
  /**
   * Called when accepting fails and the server backs off and goes on
   * (for example "too many open files").
   */
  onAcceptError?: (error: unknown) => void;
}

/** A running greeting server, as returned by {@linkcode serveGreeting}. */
export interface GreetingServer extends AsyncDisposable {
  /**
   * The first TCP address the server listens on, with the real port if 0 was
   * asked.
   *
   * @throws {TypeError} If the server only listens on Unix sockets.
   */
  readonly addr: Deno.NetAddr;
  /** Every address the server listens on, in the order given. */
  readonly addrs: Deno.Addr[];
  /** Counters of what the server has done so far. */
  readonly stats: Readonly<ServerStats>;
  /** True from the start of shutdown. */
  readonly draining: boolean;
  /** Settles once the server has shut down and every connection is closed. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, lets in-flight greetings finish (up to the drain
   * timeout), then closes what is left. Safe to call more than once.
   */
  shutdown(): Promise<void>;
}

/** A resolvable promise, for waking the accept loop and waiting on drains. */
function createGate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => open = resolve);
  return { promise, open };
}

/** Waits for `promise`, or `ms` milliseconds if that comes first. */
async function waitAtMost(promise: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The error code of a system error, such as "EMFILE". */
function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  return error instanceof Error ? error.name : "unknown";
}

/** True for accept errors that mean the process is out of a resource. */
function isResourceExhaustion(code: string): boolean {
  return code === "EMFILE" || code === "ENFILE" || code === "ENOBUFS" ||
    code === "ENOMEM";
}

function isReset(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted;
}

function isClosedByUs(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

/**
 * The address as a {@linkcode Deno.NetAddr}, for greeting templates: a Unix
 * socket's address becomes its path as the host name (empty for a client,
 * whose socket has none), with port 0.
 */
function netAddr(addr: Deno.Addr): Deno.NetAddr {
  if (addr.transport === "tcp" || addr.transport === "udp") return addr;
  return {
    transport: "tcp",
    hostname: ("path" in addr ? addr.path : null) ?? "",
    port: 0,
  };
}

function describeTarget(target: ListenTarget): [string, number] {
  if (target.transport === "unix") return [target.path, 0];
  const { hostname = DEFAULT_HOSTNAME, port = DEFAULT_PORT } = target;
  return [formatAddress({ transport: "tcp", hostname, port }), port];
}

/** Opens every listener, or none: on a failure the opened ones are closed. */
function openListeners(
  targets: ListenTarget[],
  backlog: number | undefined,
  reusePort: boolean | undefined,
): Deno.Listener[] {
  if (targets.length === 0) throw new RangeError("listen must not be empty");
  const listeners: Deno.Listener[] = [];
  for (const target of targets) {
    try {
      if (target.transport === "unix") {
        listeners.push(Deno.listen({ transport: "unix", path: target.path }));
        continue;
      }
      const { hostname = DEFAULT_HOSTNAME, port = DEFAULT_PORT, tls } = target;
      const tcp = {
        hostname,
        port,
        transport: "tcp" as const,
        ...(backlog === undefined ? {} : { tcpBacklog: backlog }),
        ...(reusePort ? { reusePort } : {}),
      };
      listeners.push(
        tls ? Deno.listenTls({ ...tcp, ...tls }) : Deno.listen(tcp),
      );
    } catch (error) {
      for (const listener of listeners) closeListener(listener);
      throw new ListenError(...describeTarget(target), error);
    }
  }
  return listeners;
}

/** Closes a listener; a Unix socket's file is removed with it. */
function closeListener(listener: Deno.Listener) {
  try {
    listener.close();
  } catch {
    // Already closed.
  }
  if (listener.addr.transport === "unix" && listener.addr.path) {
    try {
      Deno.removeSync(listener.addr.path);
    } catch {
      // Gone already, or not ours to remove.
    }
  }
}

const MIN_BACKOFF = 5;
/** How long shutdown waits for cut connections to record their outcome. */
const SETTLE_TIMEOUT = 1_000;
const MAX_BACKOFF = 1_000;
/** The bytes of a refused client's greeting when there is no refuse message. */
const EMPTY = new Uint8Array(0);
// Discarded bytes a lingering client sends land here; shared, never read.
const scratch = new Uint8Array(16 * 1024);

/**
 * Listens on a TCP address and greets every client: writes the greeting,
 * then closes that connection. Nothing a client does stops the server.
 *
 * @throws {ListenError} Synchronously, when an address cannot be listened
 * on; its `cause` is the error of `Deno.listen` (such as
 * `Deno.errors.AddrInUse`) and nothing is left listening.
 */
export function serveGreeting(
  options: ServeGreetingOptions = {},
): GreetingServer {
  const {
    hostname = DEFAULT_HOSTNAME,
    port = DEFAULT_PORT,
    greeting = encodeGreeting(DEFAULT_MESSAGE),
    refuseMessage,
    signal,
    drainTimeout = DEFAULT_DRAIN_TIMEOUT,
    maxConnections = DEFAULT_MAX_CONNECTIONS,
    backlog,
    timeout = DEFAULT_TIMEOUT,
    linger = DEFAULT_LINGER,
    onConnection,
    onClose,
    onAcceptError,
  } = options;
  for (
    const [name, value, min] of [
      ["maxConnections", maxConnections, 1],
      ["timeout", timeout, 0],
      ["linger", linger, 0],
      ["drainTimeout", drainTimeout, 0],
    ] as const
  ) {
    if (!Number.isInteger(value) || value < min) {
      throw new RangeError(`${name} must be a whole number of at least ${min}`);
    }
  }
  signal?.throwIfAborted();

  const listeners = openListeners(
    options.listen ?? [{ hostname, port, tls: options.tls }],
    backlog,
    options.reusePort,
  );
  const stats = createServerStats();
  const admission = needsAdmission(options)
    ? createAdmission(options)
    : undefined;
  // Open connections being greeted, and greeted ones waiting for the client
  // to close; each list in deadline order. A slot leaves its list when the
  // connection ends or its deadline passes, which frees its place.
  const serving = createSlotList();
  const lingering = createSlotList();
  const openCount = () => serving.size + lingering.size;
  // Derived, not kept: the lists are the truth. Enumerable, so snapshots
  // (spread, structured clone for workers) copy its value.
  Object.defineProperty(stats, "active", {
    get: openCount,
    enumerable: true,
  });
  const sweepEvery = Math.min(
    250,
    Math.max(
      10,
      Math.min(
        timeout || Infinity,
        linger || Infinity,
      ) / 4,
    ),
  );
  let sweeper: ReturnType<typeof setInterval> | undefined;
  let closing = false;
  // Opened whenever a connection ends, so a paused accept loop goes on.
  let slotFreed: ReturnType<typeof createGate> | undefined;
  // Opened when the last connection ends during shutdown.
  let drained: ReturnType<typeof createGate> | undefined;
  // Connections whose handler has not finished (their outcome not counted).
  let inFlight = 0;
  // Opened when the last handler finishes during shutdown.
  let settled: ReturnType<typeof createGate> | undefined;

  function closeQuietly(conn: Deno.Conn) {
    try {
      conn.close();
    } catch {
      // Already closed by a deadline or by shutdown.
    }
  }

  // One timer for every deadline: no per-connection timers on the hot path.
  function sweep() {
    const now = Date.now();
    for (const list of [serving, lingering]) {
      while (list.head && list.head.deadline <= now) release(list.head);
    }
    if (openCount() === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }

  /**
   * Closes the connection and frees its place. Called when it ends, or when
   * its deadline passes: then its pending operation fails, and the slot is
   * free even if the runtime is slow to settle it.
   */
  function release(slot: Slot) {
    if (!unlinkSlot(slot)) return;
    closeQuietly(slot.conn);
    if (slotFreed) {
      slotFreed.open();
      slotFreed = undefined;
    }
    if (drained && openCount() === 0) drained.open();
  }

  /**
   * Writes `bytes`, then lingers. `decided` is the outcome already decided
   * (and counted) for a refused client or a failed template: it is only
   * sent `bytes` (the refuse message, if any) and closed, without lingering,
   * so it cannot hold its place for long. Other outcomes settle as soon as
   * the greeting is written or fails, so the counters are current.
   */
  async function serve(
    slot: Slot,
    bytes: Uint8Array,
    decided: readonly [ConnectionOutcome, string] | undefined,
    startTime: number,
  ) {
    const conn = slot.conn;
    inFlight++;
    let outcome: ConnectionOutcome | undefined = decided?.[0];
    let reason: string | undefined = decided?.[1];
    let written = 0;
    try {
      while (written < bytes.length) {
        written += await conn.write(
          written === 0 ? bytes : bytes.subarray(written),
        );
      }
      if (!outcome) stats.outcomes[outcome = "greeted"]++;
      if (linger > 0 && !decided && written > 0 && slot.list) {
        await conn.closeWrite();
        if (slot.list) {
          slot.deadline = Math.min(slot.deadline, Date.now() + linger);
          insertSlot(lingering, slot);
          sweeper ??= setInterval(sweep, sweepEvery);
          while (await conn.read(scratch) !== null) {
            // Discard what the client sends until it closes.
          }
        }
      }
    } catch (error) {
      // Errors after the greeting was written (while lingering) change
      // nothing: the client has its greeting.
      if (!outcome) {
        if (isReset(error)) {
          outcome = "reset";
        } else if (isClosedByUs(error)) {
          outcome = closing ? "aborted" : "timed_out";
        } else {
          outcome = "error";
          reason = errorCode(error);
        }
        stats.outcomes[outcome]++;
      }
    } finally {
      stats.bytesWritten += written;
      if (admission && !decided && conn.remoteAddr.transport === "tcp") {
        admission.release(conn.remoteAddr.hostname);
      }
      release(slot);
    }
    if (onClose) {
      try {
        onClose({
          remoteAddr: conn.remoteAddr,
          localAddr: conn.localAddr,
          outcome: outcome!,
          reason,
          bytesWritten: written,
          greetingLength: bytes.length,
          startTime,
          duration: Date.now() - startTime,
        });
      } catch {
        // A failing observer must not stop the server.
      }
    }
    if (--inFlight === 0 && settled) settled.open();
  }

  function accepted(conn: Deno.Conn) {
    const now = Date.now();
    stats.accepted++;
    const slot = createSlot(conn, timeout > 0 ? now + timeout : Infinity);
    appendSlot(serving, slot);
    if (timeout > 0) sweeper ??= setInterval(sweep, sweepEvery);
    const remoteAddr = conn.remoteAddr;
    const refused = admission && remoteAddr.transport === "tcp"
      ? admission.admit(remoteAddr.hostname, now)
      : undefined;
    if (refused) {
      stats.outcomes.refused++;
      stats.refused[refused]++;
      serve(slot, refuseMessage ?? EMPTY, ["refused", refused], now);
      return;
    }
    if (onConnection) {
      try {
        onConnection(remoteAddr, conn.localAddr);
      } catch {
        // A failing observer must not stop the server.
      }
    }
    if (typeof greeting !== "function") {
      serve(slot, greeting, undefined, now);
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = greeting({
        remoteAddr: netAddr(remoteAddr),
        localAddr: netAddr(conn.localAddr),
        count: stats.accepted,
      });
    } catch {
      // A greeting that cannot be made is an error, not an empty greeting.
      stats.outcomes.error++;
      serve(slot, EMPTY, ["error", "template"], now);
      return;
    }
    serve(slot, bytes, undefined, now);
  }

  /** Waits until a connection ends, or `ms` passes, or shutdown starts. */
  async function pause(ms: number) {
    slotFreed ??= createGate();
    await (ms > 0 ? waitAtMost(slotFreed.promise, ms) : slotFreed.promise);
  }

  async function acceptLoop(listener: Deno.Listener) {
    let backoff = 0;
    while (!closing) {
      if (openCount() >= maxConnections) {
        stats.pausedAtLimit++;
        await pause(0);
        continue;
      }
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closing) break;
        if (error instanceof Deno.errors.BadResource) throw error;
        const code = errorCode(error);
        stats.acceptErrors[code] = (stats.acceptErrors[code] ?? 0) + 1;
        try {
          onAcceptError?.(error);
        } catch {
          // A failing observer must not stop the server.
        }
        // Out of file descriptors (or memory): the pending clients stay in
        // the backlog; retry when a connection ends or after a back-off.
        backoff = Math.min(Math.max(backoff * 2, MIN_BACKOFF), MAX_BACKOFF);
        if (isResourceExhaustion(code) || backoff > MIN_BACKOFF) {
          await pause(backoff);
        }
        continue;
      }
      backoff = 0;
      accepted(conn);
    }
  }

  const loopDone = Promise.all(listeners.map(acceptLoop));
  let shutdownPromise: Promise<void> | undefined;

  function shutdown(): Promise<void> {
    shutdownPromise ??= (async () => {
      closing = true;
      for (const listener of listeners) closeListener(listener);
      slotFreed?.open();
      let loopError: unknown;
      try {
        await loopDone;
      } catch (error) {
        loopError = error;
      }
      if (openCount() > 0) {
        drained = createGate();
        await waitAtMost(drained.promise, drainTimeout);
        // Cut what is left: pending operations fail, and each place is free.
        for (const list of [serving, lingering]) {
          while (list.head) release(list.head);
        }
      }
      if (inFlight > 0) {
        // Let the cut connections record their outcome; bounded, in case
        // the runtime never settles an operation (a stalled TLS handshake).
        settled = createGate();
        await waitAtMost(settled.promise, SETTLE_TIMEOUT);
      }
      clearInterval(sweeper);
      sweeper = undefined;
      signal?.removeEventListener("abort", onAbort);
      if (loopError) throw loopError;
    })();
    return shutdownPromise;
  }

  function onAbort() {
    shutdown().catch(() => {});
  }
  signal?.addEventListener("abort", onAbort, { once: true });

  // If the listener fails outside of shutdown, shut down and report it.
  const finished = loopDone.then(shutdown, shutdown);

  const addrs = listeners.map((listener) => listener.addr);
  const firstTcp = addrs.find((addr): addr is Deno.NetAddr =>
    addr.transport === "tcp"
  );
  return {
    get addr(): Deno.NetAddr {
      if (!firstTcp) {
        throw new TypeError("This server has no TCP listener: see addrs");
      }
      return firstTcp;
    },
    addrs,
    stats,
    get draining() {
      return closing;
    },
    finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
