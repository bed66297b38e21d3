import { REFUSE_REASONS, type RefuseReason } from "./admission.ts";
import { PROBE_KINDS, type ProbeKind } from "../net/probe.ts";

/** The outcomes, in a stable order (for logs and metrics). */
export const CONNECTION_OUTCOMES = [
  "greeted",
  "refused",
  "timed_out",
  "reset",
  "aborted",
  "error",
] as const;

/**
 * How a connection ended: `greeted` (the whole greeting was written),
 * `refused` (by an access rule or limit), `timed_out` (the greeting was not
 * written before the connection's timeout), `reset` (the client reset or
 * closed first), `aborted` (cut by shutdown after the drain timeout) or
 * `error` (another failure).
 *
 * @example Usage
 * ```ts
 * import {
 *   type ConnectionOutcome,
 *   fetchGreeting,
 *   serveGreeting,
 *   type ServerStats,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const FAILED: ConnectionOutcome[] = ["timed_out", "reset", "aborted", "error"];
 * function failed(stats: Readonly<ServerStats>): number {
 *   return FAILED.reduce((sum, outcome) => sum + stats.outcomes[outcome], 0);
 * }
 *
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
 * await fetchGreeting({ hostname: "127.0.0.1", port: server.addr.port });
 * assertEquals(failed(server.stats), 0);
 * ```
 */
export type ConnectionOutcome = typeof CONNECTION_OUTCOMES[number];

/**
 * Counters a greeting server keeps; plain numbers, cheap on the hot path.
 *
 * @example Usage
 * ```ts
 * import { fetchGreeting, serveGreeting, type ServerStats } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
 * await fetchGreeting({ hostname: "127.0.0.1", port: server.addr.port });
 * const stats: Readonly<ServerStats> = server.stats;
 * assertEquals(stats.accepted, 1);
 * ```
 */
export interface ServerStats {
  /** When the server started, in milliseconds since the epoch. */
  startTime: number;
  /** Connections accepted. */
  accepted: number;
  /** Connections open right now. */
  active: number;
  /** Connections that have ended, by outcome. */
  outcomes: Record<ConnectionOutcome, number>;
  /** Refused connections, by reason. */
  refused: Record<RefuseReason, number>;
  /** Failed accepts by error code, such as EMFILE (the server went on). */
  acceptErrors: Record<string, number>;
  /**
   * True while accepting fails for want of descriptors or memory: from such
   * an error until the next successful accept.
   */
  exhausted: boolean;
  /** Times accepting paused because the connection cap was reached. */
  pausedAtLimit: number;
  /** Bytes written to clients, in total. */
  bytesWritten: number;
  /**
   * Clients that sent something during the greeting pause (`greetPause`),
   * greeted or refused.
   */
  earlyTalkers: number;
  /**
   * Clients that sent something while sensed (`greetPause` or `capture`),
   * by what their first bytes looked like.
   */
  probes: Record<ProbeKind, number>;
}

/** A counter at 0 for each of `keys`. */
export function zeroCounts<K extends string>(
  keys: readonly K[],
): Record<K, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
}

/** Creates a zeroed set of counters. */
export function createServerStats(): ServerStats {
  return {
    startTime: Date.now(),
    accepted: 0,
    active: 0,
    outcomes: zeroCounts(CONNECTION_OUTCOMES),
    refused: zeroCounts(REFUSE_REASONS),
    acceptErrors: {},
    exhausted: false,
    pausedAtLimit: 0,
    bytesWritten: 0,
    earlyTalkers: 0,
    probes: zeroCounts(PROBE_KINDS),
  };
}
