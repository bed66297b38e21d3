import { errorLine } from "../net/escape.ts";
import type { AcceptErrorKind } from "../server/options.ts";
import {
  formatLogLine,
  type LogFormat,
  type ServerEvent,
} from "./log_format.ts";

type AcceptErrorEvent = Extract<ServerEvent, { event: "accept_error" }>;

/** Options for {@linkcode createAcceptErrorLog}. */
export interface AcceptErrorLogOptions {
  /** Receives each line (without its newline). */
  emit: (line: string) => void;
  /** Human lines or JSON objects. */
  format: LogFormat;
  /** Text lines start with an RFC 3339 timestamp, as the others do. */
  timestamps?: boolean;
  /**
   * How often the errors that followed the first of their code are summed
   * up, in ms.
   *
   * @default {1000}
   */
  interval?: number;
}

/** Logs failed accepts at a bounded rate, with exact counts. */
export interface AcceptErrorLog {
  /** For serveGreeting's onAcceptError. */
  onAcceptError(error: unknown, kind: AcceptErrorKind, code: string): void;
  /** Emits what is pending and stops the timer. */
  close(): void;
}

/**
 * Creates the accept error log. The first error of each code in an interval
 * is logged at once, with its message; the rest of that interval are counted
 * and summed up in one line per code when it ends, so a storm of resets
 * costs one line a second, not one per reset, and no count is lost.
 */
export function createAcceptErrorLog(
  options: AcceptErrorLogOptions,
): AcceptErrorLog {
  const { emit, format, interval = 1_000 } = options;
  const textOptions = { timestamps: options.timestamps ?? false };
  // Codes seen in the current interval, with the count since their line.
  const pending = new Map<string, AcceptErrorEvent>();
  let timer: ReturnType<typeof setInterval> | undefined;
  const line = (event: AcceptErrorEvent) =>
    emit(formatLogLine(event, format, textOptions));

  function flush() {
    for (const entry of pending.values()) if (entry.count > 0) line(entry);
    const quiet = [...pending.values()].every((entry) => entry.count === 0);
    pending.clear();
    if (quiet) {
      clearInterval(timer);
      timer = undefined;
    }
  }

  return {
    onAcceptError(error, kind, code) {
      const entry = pending.get(code);
      if (entry) {
        entry.count++;
        return;
      }
      pending.set(code, { event: "accept_error", code, kind, count: 0 });
      line({
        event: "accept_error",
        code,
        kind,
        count: 1,
        message: errorLine(error),
      });
      timer ??= setInterval(flush, interval);
    },
    close() {
      flush();
      clearInterval(timer);
      timer = undefined;
    },
  };
}
