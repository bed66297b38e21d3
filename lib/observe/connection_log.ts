import { formatAddress } from "../net/address.ts";
import { sourceKey } from "../net/ip.ts";
import {
  formatJsonConnectionLine,
  formatLogLine,
  formatTextConnectionLine,
  formatTextLine,
  formatTextSensedLine,
  formatTextTarpitLine,
  LISTENING,
  type LogFormat,
  type ServerEvent,
} from "./log_format.ts";
import { createLogThrottle } from "./log_throttle.ts";
import { errorLine } from "../net/escape.ts";
import type { AcceptErrorKind, ConnectionRecord } from "../server/options.ts";
import type { LineWriter } from "./line_writer.ts";
import { CONNECTION_OUTCOMES, type ServerStats } from "../server/stats.ts";
import { startTimer, stopTimer, waitAtMost } from "../server/wait.ts";

/** How long stopping waits for the last log lines to be written, in ms. */
const FLUSH_LIMIT = 2_000;

/** Options for {@linkcode createConnectionLog}. */
export interface ConnectionLogOptions
  extends Omit<AcceptErrorLogOptions, "interval"> {
  /** No per-connection lines. */
  quiet: boolean;
  /** Connection lines per second from one source; 0 logs every one. */
  rate: number;
  /**
   * The server senses its clients (`greetPause`, `capture`): text lines are
   * logged when a connection ends, with what was sensed.
   */
  sensed?: boolean;
  /** Tarpit mode: text lines also say when a held client leaves. */
  tarpit?: boolean;
}

/**
 * Creates the connection lines of the log. They go through a flood limiter
 * (`rate` per second per source, 10,000 per second in all) whose summaries
 * carry exact counts.
 */
export function createConnectionLog(options: ConnectionLogOptions) {
  const { emit, format, quiet, rate } = options;
  // Every text line has a timestamp when asked, the summaries included.
  const throttle = quiet || rate === 0 ? undefined : createLogThrottle({
    emit,
    perSourcePerSecond: rate,
    perSecond: 10_000,
    formatSuppressed: (source, count) =>
      formatLogLine({ event: "suppressed", source, count }, format, options),
  });
  // The throttle is asked first, and the line made only when it allows it.
  // Unix socket clients have no address: they count as one source.
  const allowed = (addr: Deno.Addr) =>
    throttle?.allow(
      addr.transport === "tcp" ? sourceKey(addr.hostname) : "unix",
    ) ?? true;
  const json = format === "json";
  // In tarpit mode, text lines are of held clients leaving.
  const tarpit = !json && !options.sensed && options.tarpit;
  // The line of an ended connection, if one is logged then.
  const words = tarpit ? formatTextTarpitLine : formatTextSensedLine;
  const recordLine = json
    ? formatJsonConnectionLine
    : (record: ConnectionRecord) => formatTextLine(words(record), options);
  const acceptErrors = createAcceptErrorLog(options);
  // A held client's two lines share its arrival's one decision: its release
  // line follows the arrival line, or is left out with it (by connection:
  // each has its own local address object).
  const unlogged = tarpit ? new WeakSet<Deno.Addr>() : undefined;
  return {
    /** For serveGreeting's onConnection (text format), if lines are logged. */
    onConnection: quiet || json || options.sensed ? undefined : (
      remoteAddr: Deno.Addr,
      localAddr: Deno.Addr,
      peerAddr?: Deno.Addr,
    ) => {
      if (allowed(remoteAddr)) {
        const words = formatTextConnectionLine(remoteAddr, peerAddr);
        emit(formatTextLine(words, options));
      } else unlogged?.add(localAddr);
    },
    /** For serveGreeting's onClose (JSON, sensed, tarpit), if lines are logged. */
    onClose: quiet || !(json || options.sensed || tarpit)
      ? undefined
      : (record: ConnectionRecord) => {
        const logged = unlogged
          ? record.held !== undefined && !unlogged.delete(record.localAddr)
          : allowed(record.remoteAddr);
        if (logged) emit(recordLine(record));
      },
    /** For serveGreeting's onAcceptError: logged even when quiet, rate-bounded. */
    onAcceptError: acceptErrors.onAcceptError,
    /** Emits the pending flood summaries and stops their timer. */
    close() {
      throttle?.close();
      acceptErrors.close();
    },
    /** Connection lines suppressed by the flood limit so far. */
    get suppressed(): number {
      return throttle?.suppressed ?? 0;
    },
  };
}

/**
 * Creates the server's lifecycle log: the start-up, stats and stop lines,
 * through the batched writer. The connection lines are
 * {@linkcode createConnectionLog}'s, one per server run.
 */
export function createServerLog(
  options: Pick<AcceptErrorLogOptions, "format" | "timestamps"> & {
    /** Where lines go (batched). */
    writer: LineWriter;
  },
) {
  const { writer, format } = options;
  const json = format === "json";
  // A text line, after a timestamp when asked; JSON lines have their own.
  const text = (words: string) => writer.line(formatTextLine(words, options));
  const line = (event: ServerEvent) =>
    writer.line(formatLogLine(event, format, options));

  return {
    /** Logs the start-up lines. */
    started(addrs: Deno.Addr[], tls: boolean, metrics?: Deno.Addr): void {
      if (json) return line({ event: "start", listen: addrs, metrics });
      for (const addr of addrs) {
        const secure = tls && addr.transport === "tcp" ? " (TLS)" : "";
        text(`${LISTENING} ${formatAddress(addr)}${secure}`);
      }
      if (metrics) {
        text(`Metrics are served on http://${formatAddress(metrics)}/metrics`);
      }
    },
    /** Logs that shutdown began (text only). */
    stopping(): void {
      if (!json) text("Shutting down: no new connections, finishing greetings");
    },
    /** Logs a reload (SIGHUP): done, or refused with the reason. */
    reloaded: (error?: string): void => line({ event: "reload", error }),
    /** Logs the counters on demand (SIGUSR2). */
    stats(stats: Readonly<ServerStats>): void {
      if (json) line({ event: "stats", stats });
      else text(`Stats: ${formatStatsSummary(stats)}`);
    },
    /** Logs the final line and flushes everything, waiting 2 s at most. */
    async stopped(stats: Readonly<ServerStats>, error?: string): Promise<void> {
      line({ event: "stop", stats, error });
      // A stdout nobody reads must not keep greeter from exiting: what is
      // not out by then is lost, as the writer's drop count already allows.
      await waitAtMost(writer.flush(), FLUSH_LIMIT);
    },
  };
}

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

/**
 * Creates the accept error log. The first error of each code in an interval
 * is logged at once, with its message; the rest of that interval are counted
 * and summed up in one line per code when it ends, so a storm of resets
 * costs one line a second, not one per reset, and no count is lost.
 */
export function createAcceptErrorLog(options: AcceptErrorLogOptions) {
  const { emit, format, interval = 1_000 } = options;
  // Codes seen in the current interval, with the count since their line.
  const pending = new Map<string, AcceptErrorEvent>();
  let timer: AbortSignal | undefined;
  const line = (event: AcceptErrorEvent) =>
    emit(formatLogLine(event, format, options));

  // Sums up the interval; the timer stops after a quiet one, or at the end.
  function flush(end = false) {
    const counted = [...pending.values()].filter((entry) => entry.count > 0);
    for (const entry of counted) line(entry);
    pending.clear();
    stopTimer(timer);
    timer = !end && counted.length ? startTimer(interval, flush) : undefined;
  }

  return {
    /** Logs a failed accept: its first of a code in an interval at once. */
    onAcceptError(error: unknown, kind: AcceptErrorKind, code: string): void {
      const entry = pending.get(code);
      // Counted, to be summed up at the end of the interval.
      if (entry) return void entry.count++;
      pending.set(code, { event: "accept_error", code, kind, count: 0 });
      const message = errorLine(error);
      line({ event: "accept_error", code, kind, count: 1, message });
      timer ??= startTimer(interval, flush);
    },
    /** Emits the pending summaries and stops the timer. */
    close: () => flush(true),
  };
}

/**
 * Formats a duration as `45s`, `2m03s`, `1h02m03s` or `2d01h02m03s`.
 */
export function formatUptime(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  // Days, hours, minutes, seconds, from the first that is not 0 (or
  // seconds).
  const units = [total / 86400, total / 3600 % 24, total / 60 % 60, total % 60];
  const first = units.findIndex((n, i) => n >= 1 || i === 3);
  return units.slice(first).map((n, i) =>
    `${String(Math.floor(n)).padStart(i ? 2 : 1, "0")}${"dhms"[first + i]}`
  ).join("");
}

/**
 * Formats the counters as one line: `uptime 1h02m03s; accepted 10;
 * greeted 8, refused 1, timed_out 0, reset 1, aborted 0, error 0; active 0`.
 */
export function formatStatsSummary(
  stats: Readonly<ServerStats>,
  now: number = Date.now(),
): string {
  const outcomes = CONNECTION_OUTCOMES.map((outcome) =>
    `${outcome} ${stats.outcomes[outcome]}`
  ).join(", ");
  return `uptime ${
    formatUptime(now - stats.startTime)
  }; accepted ${stats.accepted}; ${outcomes}; active ${stats.active}`;
}
