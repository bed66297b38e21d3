import { formatTextSuppressedLine } from "./log_format.ts";
import { startTimer, stopTimer } from "../server/wait.ts";

/** Options for {@linkcode createLogThrottle}. */
export interface LogThrottleOptions {
  /** Receives the summaries. */
  emit: (line: string) => void;
  /**
   * Connection lines logged per second from one source; the rest are
   * counted and summarized.
   *
   * @default {10}
   */
  perSourcePerSecond?: number;
  /**
   * Connection lines logged per second from all sources together.
   *
   * @default {1000}
   */
  perSecond?: number;
  /**
   * How often pending counts are summarized, in milliseconds.
   *
   * @default {5000}
   */
  interval?: number;
  /**
   * Sources tracked one by one; beyond it (a flood from many addresses)
   * the others are limited and counted together, as one source, so memory
   * stays bounded.
   *
   * @default {10000}
   */
  maxSources?: number;
  /**
   * Summary lines per interval; sources beyond it (the smallest counts) are
   * folded into the "other sources" line.
   *
   * @default {10}
   */
  maxSummaries?: number;
  /**
   * Formats a summary; `source` is undefined for the other sources.
   *
   * @default {formatTextSuppressedLine}
   */
  formatSuppressed?: (source: string | undefined, count: number) => string;
  /**
   * The monotonic clock, in milliseconds. Only tests replace it: a stepped
   * wall clock must not reopen or freeze a second's window.
   *
   * @default {() => performance.now()}
   */
  now?: () => number;
}

/** Limits per-connection log lines; see {@linkcode createLogThrottle}. */
export type LogThrottle = ReturnType<typeof createLogThrottle>;

/**
 * Creates a flood limiter for per-connection lines. Up to the rates, lines
 * are allowed (the caller makes and writes them). Beyond them each line is
 * only counted, per
 * source, and once per interval a summary such as "15 more connections
 * from 192.0.2.1 suppressed" is emitted with the exact count, so logged
 * lines plus summarized counts always add up to the connections offered.
 *
 * It runs at most one timer, only while there are counts to report.
 */
export function createLogThrottle(options: LogThrottleOptions) {
  const { emit, perSourcePerSecond = 10, perSecond = 1_000 } = options;
  const { interval = 5_000, maxSources = 10_000, maxSummaries = 10 } = options;
  const { formatSuppressed = formatTextSuppressedLine } = options;
  const { now: clock = () => performance.now() } = options;
  // The current second's window, named by when it ends on the clock, and
  // the lines logged in it.
  let window = 0;
  let windowCount = 0;
  let prunedWindow = -1;
  // A source: the window its `count` (lines logged) belongs to, and its
  // lines suppressed and not yet summarized. Sources beyond maxSources
  // share this one: limited and counted as one.
  const other = { window: 0, count: 0, pending: 0 };
  const sources = new Map<string, typeof other>();
  let timer: AbortSignal | undefined;
  let closed = false;

  // Drops sources with nothing pending and nothing logged in this window:
  // forgetting them changes nothing. At most once per window.
  function prune() {
    prunedWindow = window;
    for (const [key, source] of sources) {
      if (source.pending === 0 && source.window !== window) sources.delete(key);
    }
  }

  function flush() {
    timer = stopTimer(timer);
    const waiting = [...sources].filter((entry) => entry[1].pending > 0);
    // The largest counts by source; the rest join the untracked ones.
    if (waiting.length > maxSummaries) {
      waiting.sort((a, b) => b[1].pending - a[1].pending);
    }
    waiting.forEach(([key, source], i) => {
      if (i < maxSummaries) emit(formatSuppressed(key, source.pending));
      else other.pending += source.pending;
      source.pending = 0;
    });
    // Untracked sources last, as "other sources".
    if (other.pending > 0) emit(formatSuppressed(undefined, other.pending));
    other.pending = 0;
  }

  const throttle = {
    /**
     * True if a line from `source` may be logged now; false when `source` (or
     * everyone) is over its rate: the line is then only counted, for the
     * summary. The caller makes the line only when it is allowed.
     */
    allow(key: string): boolean {
      const now = clock();
      if (now >= window) {
        window = now + 1_000;
        windowCount = 0;
      }
      let source = sources.get(key);
      if (source === undefined) {
        if (sources.size >= maxSources && prunedWindow !== window) prune();
        if (sources.size >= maxSources) source = other;
        else sources.set(key, source = { window, count: 0, pending: 0 });
      }
      if (source.window !== window) {
        source.window = window;
        source.count = 0;
      }
      if (windowCount < perSecond && source.count < perSourcePerSecond) {
        windowCount++;
        source.count++;
        throttle.logged++;
        return true;
      }
      throttle.suppressed++;
      source.pending++;
      if (timer === undefined && !closed) {
        timer = startTimer(interval, flush);
      }
      return false;
    },
    /** Emits the pending summaries now. */
    flush,
    /**
     * Emits the pending summaries and stops the timer; call it at shutdown,
     * after the last connection. Later offers are still limited, and their
     * summaries wait for {@linkcode LogThrottle.flush}.
     */
    close() {
      closed = true;
      flush();
    },
    /** Connection lines logged so far. */
    logged: 0,
    /** Connection lines suppressed so far (reported or pending). */
    suppressed: 0,
    /** Sources tracked one by one right now. */
    get sources() {
      return sources.size;
    },
  };
  return throttle;
}
