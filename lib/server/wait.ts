/**
 * The largest delay a timer takes, 2^31 − 1 ms (about 24.8 days): a longer
 * `setTimeout` delay fires at once. Every duration and whole-number option
 * and flag is bounded by it, so no value is turned into no wait at all.
 */
export const MAX_TIMER_MS = 2_147_483_647;

// Timers of `startTimer` that have neither fired nor been cancelled.
let live = 0;

/**
 * Calls `fn` once, `ms` milliseconds from now, unless {@linkcode stopTimer}
 * comes first: the timer of the serving path (the sweep, the log's batches
 * and summaries). It runs on the runtime's own timers, those of
 * `AbortSignal.timeout`: Deno's `setTimeout` loads its Node timers on first
 * use (8 ms in Deno 2.9.6), which delayed a server's first greeting. Like
 * `AbortSignal.timeout`, it does not keep the process alive; a server's
 * listeners and connections do. The test sanitizer does not see it: tests
 * count {@linkcode liveTimers}.
 */
export function startTimer(ms: number, fn: () => void): AbortSignal {
  const timer = AbortSignal.timeout(Math.min(Math.max(ms, 0), MAX_TIMER_MS));
  live++;
  timer.onabort = () => {
    stopTimer(timer);
    fn();
  };
  return timer;
}

/**
 * Stops a timer of {@linkcode startTimer}, unless it has fired (or is none),
 * and returns undefined, for `timer = stopTimer(timer)`.
 */
export function stopTimer(timer: AbortSignal | undefined): undefined {
  if (!timer?.onabort) return;
  timer.onabort = null;
  live--;
}

/** How many timers of {@linkcode startTimer} are waiting to fire. */
export const liveTimers = (): number => live;

/**
 * Waits for `promise`, or `ms` milliseconds if that comes first; never
 * rejects on the timer's account. The one timeout race of the code base.
 */
export async function waitAtMost(
  promise: Promise<unknown>,
  ms: number,
): Promise<void> {
  const timeout = Promise.withResolvers<void>();
  const timer = setTimeout(timeout.resolve, ms);
  try {
    await Promise.race([promise, timeout.promise]);
  } finally {
    clearTimeout(timer);
  }
}
