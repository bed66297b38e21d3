/**
 * The largest delay a timer takes, 2^31 − 1 ms (about 24.8 days): a longer
 * `setTimeout` delay fires at once. Every duration and whole-number option
 * and flag is bounded by it, so no value is turned into no wait at all.
 */
export const MAX_TIMER_MS = 2_147_483_647;

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
