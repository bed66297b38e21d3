/**
 * The tie between a tarpit and the greeting server it runs in: kept apart
 * from tarpit.ts, which the options module reads (tarpit.ts imports
 * nothing of the server, so there is no cycle).
 *
 * @module
 */
import { type ConnectionContext, failure, record } from "./connection.ts";
import type { HeldEnd, TarpitHost } from "./tarpit.ts";

/**
 * What the tarpit of `server` needs from it: its shutdown flag, its table,
 * and the counting and the record of a held client's end.
 */
export function tarpitHost(server: ConnectionContext): TarpitHost {
  const { core } = server;
  return {
    get closing() {
      return core.closing;
    },
    release: (slot) => core.table.release(slot),
    failure: (error) => failure(core, error),
    ended(end: HeldEnd) {
      core.stats.outcomes[end.outcome]++;
      core.stats.bytesWritten += end.bytesWritten;
      try {
        server.onEnded?.(end.duration, end.held);
        server.onClose?.(record(server, end.slot, end));
      } catch {
        // A failing observer must not stop the server.
      }
    },
  };
}
