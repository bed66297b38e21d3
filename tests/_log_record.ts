// The connection record the log format tests format, in one place.
import type { ConnectionRecord } from "../lib/server/options.ts";
import {
  formatJsonConnectionLine,
  formatLogLine,
  type ServerEvent,
} from "../lib/observe/log_format.ts";

/** When the sample connection started: 2025-01-02T03:04:05.600Z. */
export const START: number = Date.UTC(2025, 0, 2, 3, 4, 5, 600);

/** A greeted IPv4 client of a `::` listener, 78 ms long. */
export const RECORD: ConnectionRecord = {
  remoteAddr: { transport: "tcp", hostname: "::ffff:192.0.2.7", port: 51234 },
  localAddr: { transport: "tcp", hostname: "::", port: 8080 },
  outcome: "greeted",
  bytesWritten: 24,
  greetingLength: 24,
  startTime: START,
  duration: 78,
};

/** A JSON line of a connection (as a direct client) or of a server event. */
export function formatJsonLogLine(
  event: ServerEvent | { event: "connection"; record: ConnectionRecord },
): string {
  return event.event === "connection"
    ? formatJsonConnectionLine(event.record)
    : formatLogLine(event, "json");
}
