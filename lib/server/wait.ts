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
