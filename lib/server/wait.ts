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
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
