import type { Conn } from "./connection_table.ts";
import type { AcceptErrorKind } from "./options.ts";
import type { Places } from "./places.ts";
import type { ServerStats } from "./stats.ts";

/** The first wait after an unexpected or exhaustion error, in ms. */
export const MIN_BACKOFF = 5;
/** The longest wait between two tries of a failing accept, in ms. */
export const MAX_BACKOFF = 1_000;

// errno names for the runtime's error classes, where an error has no code.
const CODES: ReadonlyMap<unknown, string> = new Map<unknown, string>([
  [Deno.errors.NotConnected, "ENOTCONN"],
  [Deno.errors.ConnectionAborted, "ECONNABORTED"],
  [Deno.errors.ConnectionReset, "ECONNRESET"],
  [Deno.errors.PermissionDenied, "EPERM"],
  [Deno.errors.TimedOut, "ETIMEDOUT"],
  [Deno.errors.Interrupted, "EINTR"],
  [Deno.errors.WouldBlock, "EAGAIN"],
]);

// Errors that belong to the one connection being accepted (it reset or
// was aborted before accept returned, a firewall hook refused it, its
// network went away): the listener is fine, so the loop goes on at once.
const CLIENT_CODES = new Set(
  ("ENOTCONN ECONNABORTED ECONNRESET EPROTO EPERM EACCES ETIMEDOUT " +
    "EHOSTUNREACH EHOSTDOWN ENETUNREACH ENETDOWN ENONET ENOPROTOOPT " +
    "EOPNOTSUPP EINTR EAGAIN").split(" "),
);

// The process or the system is out of a resource: accepting again at once
// would fail again, so the loop waits for a connection to end.
const EXHAUSTION_CODES = new Set(["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"]);

/** The error code of a failed accept, such as "EMFILE" or "ENOTCONN". */
export function acceptErrorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code !== "") return code;
  return CODES.get((error as object | null)?.constructor) ??
    (error instanceof Error ? error.name : "unknown");
}

/** How the accept loop treats an error of this code. */
export const classifyAcceptError = (code: string): AcceptErrorKind =>
  CLIENT_CODES.has(code)
    ? "client"
    : EXHAUSTION_CODES.has(code)
    ? "exhausted"
    : "other";

/** What an accept loop shares with the server that runs it. */
export interface AcceptLoopContext {
  /** The places for connections; one is taken before each accept. */
  readonly places: Places;
  /** Where accept errors are counted. */
  readonly stats: ServerStats;
  /** True from the start of shutdown. */
  closing: boolean;
  /** Takes an accepted connection, with the place the loop took for it. */
  accepted(conn: Conn): void;
  /**
   * Settles when a connection ends (a descriptor is free again), or after
   * `ms`, or at shutdown, whichever comes first.
   */
  connectionEnded(ms: number): Promise<void>;
  /**
   * Told of each failed accept, with the code it was counted under; must not
   * throw.
   */
  onAcceptError(error: unknown, kind: AcceptErrorKind, code: string): void;
}

/**
 * Accepts until shutdown. Before each accept it takes a place, waiting at
 * the cap. A failed accept is counted by code; one client's failure is
 * passed over at once, and only exhaustion (or an unknown error) waits, for
 * a connection to end or a back-off that restarts at the next success.
 *
 * @returns When the listener is closed at shutdown.
 * @throws The listener's error if it fails outside of shutdown.
 */
export async function acceptLoop(
  listener: { accept(): Promise<Conn> },
  server: AcceptLoopContext,
): Promise<void> {
  const { places, stats } = server;
  let backoff = 0;
  while (!server.closing) {
    const waiting = places.take();
    if (waiting) {
      stats.pausedAtLimit++;
      await waiting;
      if (server.closing) return;
    }
    let conn: Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      places.release();
      if (server.closing) return;
      if (error instanceof Deno.errors.BadResource) throw error;
      const code = acceptErrorCode(error);
      const kind = classifyAcceptError(code);
      stats.acceptErrors[code] = (stats.acceptErrors[code] ?? 0) + 1;
      server.onAcceptError(error, kind, code);
      if (kind === "client") continue;
      if (kind === "exhausted") stats.exhausted = true;
      backoff = Math.min(Math.max(backoff * 2, MIN_BACKOFF), MAX_BACKOFF);
      await server.connectionEnded(backoff);
      continue;
    }
    backoff = 0;
    stats.exhausted = false;
    server.accepted(conn);
  }
}
