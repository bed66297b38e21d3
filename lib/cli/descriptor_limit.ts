/**
 * Fitting `--max-connections` into the file descriptor limit: each client
 * holds one descriptor, and a cap above the soft `RLIMIT_NOFILE` only means
 * accepts fail with EMFILE (or worse, a file cannot be opened) under load.
 *
 * @module
 */

/**
 * Descriptors kept free for everything but clients by default: stdio,
 * listeners, the metrics port and its clients, Deno's own (epoll, event
 * and signal fds, worker channels) and a reload's file reads.
 */
export const RESERVED_FDS = 64;

function checkCount(name: string, value: number, min: number): void {
  if (!(Number.isSafeInteger(value) && value >= min)) {
    throw new RangeError(
      `${name} must be a whole number, ${min} or more; got ${value}`,
    );
  }
}

/**
 * The connection cap (`cap`, and whether it was `lowered`) that fits in
 * `softLimit` descriptors with `reserved` of them kept for other uses: `maxConnections` itself if it fits, else
 * `softLimit - reserved`, and never below 1 (a server that may not accept
 * anyone is not one; with so few descriptors, accept errors are counted
 * and survived anyway). An unknown limit (undefined) leaves the cap as it is.
 *
 * @param maxConnections The cap asked for: a whole number ≥ 1.
 * @param softLimit The soft `RLIMIT_NOFILE`; undefined if unknown, Infinity
 * if unlimited (both leave the cap as it is).
 * @param reserved Descriptors kept for other uses.
 * @throws {RangeError} If a number is not a whole number in range.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { fitConnectionCap } from "./descriptor_limit.ts";
 *
 * assertEquals(fitConnectionCap(10_000, 1024), { cap: 960, lowered: true });
 * assertEquals(fitConnectionCap(500, 1024), { cap: 500, lowered: false });
 * ```
 */
export function fitConnectionCap(
  maxConnections: number,
  softLimit: number | undefined,
  reserved: number = RESERVED_FDS,
): { cap: number; lowered: boolean } {
  checkCount("Connection cap", maxConnections, 1);
  checkCount("Reserved descriptors", reserved, 0);
  const limit = softLimit ?? Infinity;
  if (limit !== Infinity) checkCount("Descriptor limit", limit, 0);
  const fits = Math.max(1, limit - reserved);
  const lowered = maxConnections > fits;
  return { cap: lowered ? fits : maxConnections, lowered };
}
