import { DEFAULT_MESSAGE, encodeGreeting } from "./greeting.ts";
import { createServerStats, type ServerStats } from "./stats.ts";

/** The default TCP port. */
export const DEFAULT_PORT = 8080;
/** The default address to listen on: every IPv4 interface. */
export const DEFAULT_HOSTNAME = "0.0.0.0";
/** How long shutdown waits for in-flight greetings, in milliseconds. */
export const DEFAULT_DRAIN_TIMEOUT = 5_000;
/** How many connections are served at once before accepting pauses. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;

/** Options for {@linkcode serveGreeting}. */
export interface ServeGreetingOptions {
  /**
   * The address to listen on.
   *
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * The TCP port to listen on; 0 picks a free one (see
   * {@linkcode GreetingServer.addr}).
   *
   * @default {8080}
   */
  port?: number;
  /**
   * The exact bytes sent to every client, usually from
   * {@linkcode encodeGreeting}. Encoded once; never copied per connection.
   *
   * @default {encodeGreeting("Connection Established")}
   */
  greeting?: Uint8Array;
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
   * Called for every accepted client, before it is greeted. Keep it cheap:
   * it runs on the per-connection path.
   */
  onConnection?: (remoteAddr: Deno.NetAddr, localAddr: Deno.NetAddr) => void;
  /**
   * Called when accepting fails and the server backs off and goes on
   * (for example "too many open files").
   */
  onAcceptError?: (error: unknown) => void;
}

/** A running greeting server, as returned by {@linkcode serveGreeting}. */
export interface GreetingServer extends AsyncDisposable {
  /** The address the server listens on, with the real port if 0 was asked. */
  readonly addr: Deno.NetAddr;
  /** Counters of what the server has done so far. */
  readonly stats: Readonly<ServerStats>;
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

/** True for accept errors that mean the process is out of a resource. */
function isResourceExhaustion(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === "EMFILE" || code === "ENFILE" || code === "ENOBUFS" ||
    code === "ENOMEM";
}

const MIN_BACKOFF = 5;
const MAX_BACKOFF = 1_000;

/**
 * Listens on a TCP address and greets every client: writes the greeting,
 * then closes that connection. Nothing a client does stops the server.
 *
 * @throws {Deno.errors.AddrInUse} (and the other errors of `Deno.listen`)
 * synchronously, when the address cannot be listened on.
 */
export function serveGreeting(
  options: ServeGreetingOptions = {},
): GreetingServer {
  const {
    hostname = DEFAULT_HOSTNAME,
    port = DEFAULT_PORT,
    greeting = encodeGreeting(DEFAULT_MESSAGE),
    signal,
    drainTimeout = DEFAULT_DRAIN_TIMEOUT,
    maxConnections = DEFAULT_MAX_CONNECTIONS,
    backlog,
    onConnection,
    onAcceptError,
  } = options;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new RangeError("maxConnections must be a whole number above 0");
  }
  signal?.throwIfAborted();

  const listener = Deno.listen({
    hostname,
    port,
    transport: "tcp",
    ...(backlog === undefined ? {} : { tcpBacklog: backlog }),
  });
  const stats = createServerStats();
  const active = new Set<Deno.Conn>();
  let closing = false;
  // Opened whenever a connection ends, so a paused accept loop goes on.
  let slotFreed: ReturnType<typeof createGate> | undefined;
  // Opened when the last connection ends during shutdown.
  let drained: ReturnType<typeof createGate> | undefined;

  function release(conn: Deno.Conn) {
    active.delete(conn);
    stats.active = active.size;
    try {
      conn.close();
    } catch {
      // Already closed by shutdown.
    }
    if (slotFreed) {
      slotFreed.open();
      slotFreed = undefined;
    }
    if (drained && active.size === 0) drained.open();
  }

  async function greet(conn: Deno.Conn) {
    try {
      let written = 0;
      while (written < greeting.length) {
        written += await conn.write(
          written === 0 ? greeting : greeting.subarray(written),
        );
      }
      stats.greeted++;
      stats.bytesWritten += written;
    } catch (error) {
      if (
        error instanceof Deno.errors.ConnectionReset ||
        error instanceof Deno.errors.BrokenPipe
      ) {
        stats.reset++;
      } else if (
        closing && (error instanceof Deno.errors.BadResource ||
          error instanceof Deno.errors.Interrupted)
      ) {
        stats.aborted++;
      } else {
        stats.writeErrors++;
      }
    } finally {
      release(conn);
    }
  }

  /** Waits until a connection ends, or `ms` passes, or shutdown starts. */
  async function pause(ms: number) {
    slotFreed ??= createGate();
    await (ms > 0 ? waitAtMost(slotFreed.promise, ms) : slotFreed.promise);
  }

  async function acceptLoop() {
    let backoff = 0;
    while (!closing) {
      if (active.size >= maxConnections) {
        stats.pausedAtLimit++;
        await pause(0);
        continue;
      }
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closing) break;
        if (error instanceof Deno.errors.BadResource) throw error;
        stats.acceptErrors++;
        try {
          onAcceptError?.(error);
        } catch {
          // A failing observer must not stop the server.
        }
        // Out of file descriptors (or memory): the pending clients stay in
        // the backlog; retry when a connection ends or after a back-off.
        backoff = Math.min(Math.max(backoff * 2, MIN_BACKOFF), MAX_BACKOFF);
        if (isResourceExhaustion(error) || backoff > MIN_BACKOFF) {
          await pause(backoff);
        }
        continue;
      }
      backoff = 0;
      stats.accepted++;
      active.add(conn);
      stats.active = active.size;
      if (onConnection) {
        try {
          onConnection(conn.remoteAddr, conn.localAddr);
        } catch {
          // A failing observer must not stop the server.
        }
      }
      greet(conn);
    }
  }

  const loopDone = acceptLoop();
  let shutdownPromise: Promise<void> | undefined;

  function shutdown(): Promise<void> {
    shutdownPromise ??= (async () => {
      closing = true;
      listener.close();
      slotFreed?.open();
      let loopError: unknown;
      try {
        await loopDone;
      } catch (error) {
        loopError = error;
      }
      if (active.size > 0) {
        drained = createGate();
        await waitAtMost(drained.promise, drainTimeout);
        if (active.size > 0) {
          // Closing makes the pending writes fail, which releases each one.
          for (const conn of active) {
            try {
              conn.close();
            } catch {
              // Already closed.
            }
          }
          await drained.promise;
        }
      }
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
  const finished = loopDone.then(
    () => shutdown(),
    () => shutdown(),
  );

  return {
    addr: listener.addr,
    stats,
    finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
