/**
 * Durations as people write them on a command line: `250ms`, `5s`, `1.5s`,
 * `2m`, `1h`, `1m30s`, or a bare whole number of milliseconds (what every
 * duration flag took before units, so old command lines keep their meaning).
 *
 * @module
 */

import { quote } from "../net/escape.ts";
import { MAX_TIMER_MS } from "../server/wait.ts";

/** Milliseconds per unit, longest first: the order components must come in. */
const UNITS: ReadonlyArray<readonly [string, bigint]> = [
  ["h", 3_600_000n],
  ["m", 60_000n],
  ["s", 1_000n],
  ["ms", 1n],
];

/** How a duration is written, for the end of a duration error. */
const HINT = "as in 250ms, 5s or 2m (units ms, s, m, h; a number alone is " +
  "milliseconds)";

/**
 * A duration in milliseconds for messages and help, in the largest unit
 * that writes it whole: `10s`, `2m`, `250ms`.
 */
export function formatDuration(ms: number): string {
  const [unit, size] = UNITS.find(([unit, size]) =>
    unit === "ms" || (ms !== 0 && ms % Number(size) === 0)
  )!;
  return `${ms / Number(size)}${unit}`;
}

/**
 * What to write instead of a duration that is not written as one, by what
 * is wrong with it (`unit` is the unit at fault): the end of the command
 * line's one line, which names the flag and the value before it.
 */
const SYNTAX_ADVICE = {
  empty: () => `write a duration ${HINT}`,
  "not-a-number": () => `write a duration ${HINT}`,
  "unknown-unit": (unit = "") =>
    `${quote(unit)} is not a unit: write a duration ${HINT}`,
  "unit-order": () => "write each unit once, the largest first, as in 1m30s",
  "bare-fraction": () =>
    "a number alone is whole milliseconds; add a unit for a fraction, as in 1.5s",
};

/** Why a duration was refused; see {@linkcode DurationSyntaxError}. */
export type DurationSyntaxReason = keyof typeof SYNTAX_ADVICE;

/**
 * What to write instead of a duration out of range, by what is wrong with
 * it (`min` is the shortest allowed).
 */
const RANGE_ADVICE = {
  negative: (min: number) => `use ${formatDuration(min)} or more, ${HINT}`,
  "too-small": (min: number) => `use ${formatDuration(min)} or more, ${HINT}`,
  "too-large": () => `the longest is ${MAX_TIMER_MS}ms (about 24.8 days)`,
  "sub-millisecond": () =>
    "durations are whole milliseconds; round it, as in 2ms",
};

/** Why a duration was refused; see {@linkcode DurationRangeError}. */
export type DurationRangeReason = keyof typeof RANGE_ADVICE;

/**
 * A duration that is not written as one: empty, no number, a unit that is
 * not `ms`, `s`, `m` or `h`, units out of order or repeated, or a fraction
 * without a unit.
 */
export class DurationSyntaxError extends SyntaxError {
  /**
   * Makes the error and its message from the fields.
   *
   * @param text The text as given.
   * @param reason What is wrong with it.
   * @param unit The unit at fault, for `unknown-unit` and `unit-order`.
   */
  constructor(
    readonly text: string,
    readonly reason: DurationSyntaxReason,
    readonly unit?: string,
  ) {
    super(SYNTAX_ADVICE[reason](unit));
    this.name = "DurationSyntaxError";
  }
}

/**
 * A duration written correctly but out of range: negative, shorter than
 * asked, above {@linkcode MAX_TIMER_MS}, or finer than a millisecond.
 */
export class DurationRangeError extends RangeError {
  /** The largest duration allowed, in milliseconds. */
  readonly limit = MAX_TIMER_MS;

  /**
   * Makes the error and its message from the fields.
   *
   * @param text The text as given.
   * @param reason What is wrong with it.
   * @param min The shortest allowed, for `negative` and `too-small`.
   */
  constructor(
    readonly text: string,
    readonly reason: DurationRangeReason,
    min = 0,
  ) {
    super(RANGE_ADVICE[reason](min));
    this.name = "DurationRangeError";
  }
}

/** One component: digits, an optional fraction, then letters (maybe none). */
const COMPONENT = /(\d+)(?:\.(\d+))?([a-zA-Zµμ]*)/y;

/**
 * Parses a duration into milliseconds.
 *
 * Accepted: a bare whole number (milliseconds, `1500`), or one or more
 * components of a number (a decimal fraction allowed) and a unit (`ms`,
 * `s`, `m`, `h`), the largest unit first and each at most once: `250ms`,
 * `1.5s`, `2m`, `1h`, `1m30s`. Units are lower case. The result must be a
 * whole number of milliseconds from 0 to {@linkcode MAX_TIMER_MS}; the
 * arithmetic is exact, so `1.1s` is 1100, not 1100.0000000000002.
 *
 * @param min The shortest allowed, in milliseconds.
 * @throws {DurationSyntaxError} If `text` is not a duration.
 * @throws {DurationRangeError} If it is negative, shorter than `min`, too
 * long or finer than a millisecond. Each message says what to write
 * instead, for the command line to put after the flag and value.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { parseDuration } from "./duration.ts";
 *
 * assertEquals(parseDuration("250ms"), 250);
 * assertEquals(parseDuration("1.5s"), 1500);
 * assertEquals(parseDuration("1m30s"), 90_000);
 * assertEquals(parseDuration("5000"), 5000);
 * ```
 */
export function parseDuration(text: string, min = 0): number {
  if (text.length === 0) throw new DurationSyntaxError(text, "empty");
  // Parse the rest first: "-abc" is not a duration at all, "-5s" is one
  // that is negative. "-0" is zero.
  const body = text.startsWith("-") ? text.slice(1) : text;
  // A bare whole number is milliseconds. Components use exact decimal
  // arithmetic: each is counted in 1/scale ms, which no fraction in the
  // text can be finer than.
  const bare = /^\d+$/.test(body);
  const scale = bare ? 1n : 10n ** BigInt(body.length);
  let total = bare ? BigInt(body) : 0n;
  let next = 0; // Index in UNITS the next component's unit may start at.
  COMPONENT.lastIndex = 0;
  while (!bare && (next === 0 || COMPONENT.lastIndex < body.length)) {
    const match = COMPONENT.exec(body);
    if (match === null) throw new DurationSyntaxError(text, "not-a-number");
    const [, digits, fraction = "", unit] = match;
    const noUnit = fraction === "" ? "not-a-number" : "bare-fraction";
    if (unit === "") throw new DurationSyntaxError(text, noUnit);
    const index = UNITS.findIndex(([name]) => name === unit);
    if (index === -1) throw new DurationSyntaxError(text, "unknown-unit", unit);
    if (index < next) throw new DurationSyntaxError(text, "unit-order", unit);
    next = index + 1;
    total += BigInt(digits + fraction) * UNITS[index][1] *
      10n ** BigInt(body.length - fraction.length);
  }
  const range = (reason: DurationRangeReason) =>
    new DurationRangeError(text, reason, min);
  if (total > BigInt(MAX_TIMER_MS) * scale) throw range("too-large");
  if (total % scale !== 0n) throw range("sub-millisecond");
  const value = Number(total / scale);
  if (body !== text && value !== 0) throw range("negative");
  if (value < min) throw range("too-small");
  return value;
}
