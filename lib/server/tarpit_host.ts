/**
 * The tie between a tarpit and the greeting server it runs in: kept apart
 * from tarpit.ts, which the options module reads (tarpit.ts imports
 * nothing of the server, so there is no cycle).
 *
 * @module
 */
import { type ConnectionContext, failure } from "./connection.ts";
import type { HeldEnd, TarpitHost } from "./tarpit.ts";
import { maskAddress } from "../net/address_privacy.ts";

/**
 * What the tarpit of `server` needs from it: its shutdown flag, its table,
 * and the counting and the record of a held client's end.
 */
export function tarpitHost(
  server: Omit<ConnectionContext, "tarpit">,
): TarpitHost {
  return {
    get closing() {
      return server.closing;
    },
    release: (slot) => server.table.release(slot),
    failure: (error) => failure(server, error),
    ended(end: HeldEnd) {
      const { stats, onClose } = server;
      stats.outcomes[end.outcome]++;
      stats.bytesWritten += end.sent;
      if (!onClose) return;
      const { conn, client } = end.slot;
      try {
        onClose({
          remoteAddr: maskAddress(server.mask, client ?? conn.remoteAddr),
          ...(client ? { peerAddr: conn.remoteAddr } : {}),
          localAddr: conn.localAddr,
          outcome: end.outcome,
          reason: end.reason,
          bytesWritten: end.sent,
          greetingLength: end.greetingLength,
          startTime: Date.now() - end.held,
          duration: end.held,
          held: end.held,
        });
      } catch {
        // A failing observer must not stop the server.
      }
    },
  };
}
