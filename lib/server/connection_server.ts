import { acceptLoop, type AcceptLoopContext } from "./accept_loop.ts";
import {
  type Conn,
  type ConnectionTable,
  type ConnectionTableOptions,
  createConnectionTable,
  type Slot,
} from "./connection_table.ts";
import { closeListener, type OpenListener } from "./listeners.ts";
import type { ServeGreetingOptions } from "./options.ts";
import { createPlaces, type Places } from "./places.ts";
import { createServerStats, type ServerStats } from "./stats.ts";
import { waitAtMost } from "./wait.ts";

/** How long shutdown waits for cut connections to record their outcome. */
const SETTLE_TIMEOUT = 1_000;

/**
 * The state every connection server shares with its connections: the
 * greeting server and the metrics endpoint each hold one (`core`) beside
 * their own.
 */
export interface ServerCore extends AcceptLoopContext {
  readonly table: ConnectionTable;
  /** Connection handlers whose outcome is not counted yet. */
  inFlight: number;
  /** A handler has counted its outcome: `inFlight` drops by one. */
  handled(): void;
}

/** Options for {@linkcode startServerCore}. */
export interface ServerCoreOptions
  extends
    Omit<ConnectionTableOptions, "onRelease">,
    Pick<ServeGreetingOptions, "signal" | "onAcceptError"> {
  /**
   * The open listeners: the core accepts on each, and closes each at
   * shutdown (a Unix socket's file put back or removed once its accept loop
   * has ended).
   */
  listeners: readonly OpenListener[];
  /** Places for connections, across every listener. */
  maxConnections: number;
  /** How long shutdown lets open connections finish, in ms. */
  drainTimeout: number;
  /** Called as shutdown starts, once nothing more is accepted. */
  stopping?(): void;
  /** Called for every released slot, once its place is free. */
  released?(slot: Slot): void;
}

/**
 * Starts a connection server on open listeners: one accept loop per
 * listener taking a place before each accept, one connection table with one
 * sweep timer, and an orderly shutdown. `make` builds the server's state
 * around the core, before anything is accepted; `accepted` serves each
 * connection, which holds a place.
 *
 * @returns The state, `shutdown` (stops accepting, lets open connections
 * finish up to the drain timeout, then closes what is left; rejects with a
 * listener's error if one failed outside of shutdown; safe to call more than
 * once) and `finished`, which settles when shutdown is over, or rejects like
 * it.
 */
export function startServerCore<S extends { readonly core: ServerCore }>(
  options: ServerCoreOptions,
  make: (core: ServerCore) => S,
  accepted: (state: S, conn: Conn) => void,
) {
  const stats: ServerStats = createServerStats();
  const places: Places = createPlaces(options.maxConnections);
  // Opened when a connection ends while an accept loop waits on exhaustion.
  let ended: PromiseWithResolvers<void> | undefined;
  // Opened when the last connection ends during shutdown.
  let drained: PromiseWithResolvers<void> | undefined;
  // Opened when the last handler has counted its outcome during shutdown.
  let settled: PromiseWithResolvers<void> | undefined;
  const { released } = options;
  const table = createConnectionTable({
    ...options,
    onRelease(slot) {
      places.release();
      released?.(slot);
      ended?.resolve();
      ended = undefined;
      if (drained && table.size === 0) drained.resolve();
    },
  });
  // Derived, not kept: the table is the truth. Enumerable, so snapshots
  // (spread, structured clone for workers) copy its value.
  Object.defineProperty(stats, "active", {
    get: () => table.size,
    enumerable: true,
  });
  const { onAcceptError, signal } = options;
  const core: ServerCore = {
    stats,
    table,
    places,
    closing: false,
    inFlight: 0,
    handled() {
      if (--core.inFlight === 0) settled?.resolve();
    },
    accepted: (conn) => accepted(state, conn),
    connectionEnded(ms) {
      ended ??= Promise.withResolvers();
      return waitAtMost(ended.promise, ms);
    },
    onAcceptError(error, kind, code) {
      try {
        onAcceptError?.(error, kind, code);
      } catch {
        // A failing observer must not stop the server.
      }
    },
  };
  const state = make(core);
  const onAbort = () => void shutdown().catch(() => {});
  const loopDone = Promise.all(
    options.listeners.map(({ listener }) => acceptLoop(listener, core)),
  );
  let shutdownPromise: Promise<void> | undefined;

  function shutdown(): Promise<void> {
    shutdownPromise ??= (async () => {
      signal?.removeEventListener("abort", onAbort);
      core.closing = true;
      const closed = options.listeners.map(closeListener);
      places.close();
      ended?.resolve();
      options.stopping?.();
      const loopError = await loopDone.then(() => undefined, (e) => e);
      // The runtime drops a listener once its accept has failed.
      await new Promise((resolve) => setTimeout(resolve, 0));
      for (const done of closed) done();
      if (table.size > 0) {
        drained = Promise.withResolvers();
        await waitAtMost(drained.promise, options.drainTimeout);
        // Cut what is left: pending operations fail, and each place is free.
        table.releaseAll();
      }
      if (core.inFlight > 0) {
        // Let the cut connections record their outcome; bounded, in case
        // the runtime never settles an operation.
        settled = Promise.withResolvers();
        await waitAtMost(settled.promise, SETTLE_TIMEOUT);
      }
      table.stop();
      if (loopError) throw loopError;
    })();
    return shutdownPromise;
  }

  // If a listener fails outside of shutdown, shut down and report it.
  const finished = loopDone.then(shutdown, shutdown);
  // Once the caller has its state: `stopping` may read it.
  if (signal?.aborted) queueMicrotask(onAbort);
  else signal?.addEventListener("abort", onAbort, { once: true });
  return { state, shutdown, finished };
}
