import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  DurationRangeError,
  DurationSyntaxError,
  parseDuration,
} from "../lib/cli/duration.ts";
import { MAX_TIMER_MS } from "../lib/server/wait.ts";

Deno.test("parseDuration() reads each unit", () => {
  assertEquals(parseDuration("250ms"), 250);
  assertEquals(parseDuration("5s"), 5_000);
  assertEquals(parseDuration("2m"), 120_000);
  assertEquals(parseDuration("1h"), 3_600_000);
  assertEquals(parseDuration("0s"), 0);
  assertEquals(parseDuration("0ms"), 0);
});

Deno.test("parseDuration() reads a bare whole number as milliseconds", () => {
  assertEquals(parseDuration("0"), 0);
  assertEquals(parseDuration("5000"), 5000);
  assertEquals(parseDuration("007"), 7);
  assertEquals(parseDuration(String(MAX_TIMER_MS)), MAX_TIMER_MS);
});

Deno.test("parseDuration() reads fractions exactly", () => {
  assertEquals(parseDuration("1.5s"), 1500);
  assertEquals(parseDuration("1.1s"), 1100); // 1.1 * 1000 is 1100.0000000000002
  assertEquals(parseDuration("0.001s"), 1);
  assertEquals(parseDuration("0.25m"), 15_000);
  assertEquals(parseDuration("1.000ms"), 1);
  assertEquals(parseDuration("2.5h"), 9_000_000);
});

Deno.test("parseDuration() reads components, largest unit first", () => {
  assertEquals(parseDuration("1m30s"), 90_000);
  assertEquals(parseDuration("1h2m3s4ms"), 3_723_004);
  assertEquals(parseDuration("1.5m0.5s"), 90_500);
  assertEquals(parseDuration("1s500ms"), 1_500);
});

Deno.test("parseDuration() accepts exactly the timer limit and no more", () => {
  assertEquals(parseDuration("2147483647ms"), MAX_TIMER_MS);
  assertEquals(parseDuration("2147483.647s"), MAX_TIMER_MS);
  for (const text of ["2147483648", "2147483648ms", "2147483.648s", "597h"]) {
    const error = assertThrows(() => parseDuration(text), DurationRangeError);
    assertEquals(error.reason, "too-large");
    assertEquals(error.limit, MAX_TIMER_MS);
    assertEquals(error.text, text);
  }
  const huge = "9".repeat(400) + "h";
  assertEquals(
    assertThrows(() => parseDuration(huge), DurationRangeError).reason,
    "too-large",
  );
});

Deno.test("parseDuration() refuses negatives, and allows minus zero", () => {
  for (const text of ["-1", "-5s", "-0.5s", "-1m30s"]) {
    const error = assertThrows(() => parseDuration(text), DurationRangeError);
    assertEquals(error.reason, "negative");
    assertEquals(error.text, text);
    assertEquals(
      error.message,
      "use 0ms or more, as in 250ms, 5s or 2m (units ms, s, m, h; a " +
        "number alone is milliseconds)",
    );
  }
  assertEquals(parseDuration("-0"), 0);
  assertEquals(parseDuration("-0s"), 0);
  // A minus sign in front of something that is not a duration says so.
  assertEquals(
    assertThrows(() => parseDuration("-x"), DurationSyntaxError).reason,
    "not-a-number",
  );
  assertEquals(
    assertThrows(() => parseDuration("--5s"), DurationSyntaxError).text,
    "--5s",
  );
});

Deno.test("parseDuration() refuses durations finer than a millisecond", () => {
  for (const text of ["0.5ms", "1.0001s", "1.5ms"]) {
    const error = assertThrows(() => parseDuration(text), DurationRangeError);
    assertEquals(error.reason, "sub-millisecond");
  }
});

Deno.test("parseDuration() names what is wrong with text that is not a duration", () => {
  const cases: [string, string, string | undefined][] = [
    ["", "empty", undefined],
    ["-", "not-a-number", undefined],
    ["abc", "not-a-number", undefined],
    ["NaN", "not-a-number", undefined],
    ["Infinity", "not-a-number", undefined],
    ["1e3", "unknown-unit", "e"],
    ["0x10", "unknown-unit", "x"],
    [" 5s", "not-a-number", undefined],
    ["5 s", "not-a-number", undefined],
    ["5s ", "not-a-number", undefined],
    ["+5s", "not-a-number", undefined],
    [".5s", "not-a-number", undefined],
    ["5.s", "not-a-number", undefined],
    ["5s10", "not-a-number", undefined],
    ["5x", "unknown-unit", "x"],
    ["5sec", "unknown-unit", "sec"],
    ["5S", "unknown-unit", "S"],
    ["5us", "unknown-unit", "us"],
    ["5µs", "unknown-unit", "µs"],
    ["1d", "unknown-unit", "d"],
    ["30s1m", "unit-order", "m"],
    ["1s1s", "unit-order", "s"],
    ["1.5", "bare-fraction", undefined],
  ];
  for (const [text, reason, unit] of cases) {
    const error = assertThrows(
      () => parseDuration(text),
      DurationSyntaxError,
      undefined,
      text,
    );
    assertEquals([error.reason, error.unit, error.text], [reason, unit, text]);
  }
});

Deno.test("parseDuration() messages say what to write, on one line, without flag names", () => {
  const hint = "as in 250ms, 5s or 2m (units ms, s, m, h; a number alone " +
    "is milliseconds)";
  assertEquals(
    assertThrows(() => parseDuration("5x"), DurationSyntaxError).message,
    `"x" is not a unit: write a duration ${hint}`,
  );
  assertEquals(
    assertThrows(() => parseDuration("abc"), DurationSyntaxError).message,
    `write a duration ${hint}`,
  );
  assertEquals(
    assertThrows(() => parseDuration("1.5"), DurationSyntaxError).message,
    "a number alone is whole milliseconds; add a unit for a fraction, as " +
      "in 1.5s",
  );
  assertEquals(
    assertThrows(() => parseDuration("30s1m"), DurationSyntaxError).message,
    "write each unit once, the largest first, as in 1m30s",
  );
  assertEquals(
    assertThrows(() => parseDuration("2147483648"), DurationRangeError).message,
    "the longest is 2147483647ms (about 24.8 days)",
  );
  assertEquals(
    assertThrows(() => parseDuration("1.5ms"), DurationRangeError).message,
    "durations are whole milliseconds; round it, as in 2ms",
  );
  const short = assertThrows(() => parseDuration("0", 1), DurationRangeError);
  assertEquals([short.reason, short.message], [
    "too-small",
    `use 1ms or more, ${hint}`,
  ]);
  // The value itself is the command line's to show, escaped there.
  assertEquals(
    assertThrows(() => parseDuration("5\n\x1bs"), DurationSyntaxError).message,
    `write a duration ${hint}`,
  );
});

/** xorshift32 with a fixed seed: the same cases every run. */
function random(seed: number): () => number {
  return () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x1_0000_0000;
  };
}

Deno.test("parseDuration() reads back every duration it is given in any unit mix (fuzz)", () => {
  const next = random(0x9e3779b9);
  for (let round = 0; round < 3000; round++) {
    const ms = Math.floor(next() * (MAX_TIMER_MS + 1));
    const h = Math.floor(ms / 3_600_000);
    const m = Math.floor(ms / 60_000) % 60;
    const s = Math.floor(ms / 1000) % 60;
    const rest = ms % 1000;
    // A random choice of spellings for the same amount.
    const style = Math.floor(next() * 4);
    const text = style === 0
      ? String(ms)
      : style === 1
      ? `${ms}ms`
      : style === 2
      ? `${ms / 1000}s`
      : [h && `${h}h`, m && `${m}m`, s && `${s}s`, rest && `${rest}ms`]
        .filter(Boolean).join("") || "0s";
    assertEquals(parseDuration(text), ms, text);
  }
});

Deno.test("parseDuration() returns a whole number in range or throws its own errors (fuzz)", () => {
  const next = random(0x1234567);
  const alphabet = "0123456789.-+hmsdµ x\n\x1b";
  for (let round = 0; round < 20_000; round++) {
    let text = "";
    const length = Math.floor(next() * 10);
    for (let i = 0; i < length; i++) {
      text += alphabet[Math.floor(next() * alphabet.length)];
    }
    try {
      const ms = parseDuration(text);
      assert(
        Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_TIMER_MS,
        text,
      );
    } catch (error) {
      if (
        !(error instanceof DurationSyntaxError ||
          error instanceof DurationRangeError)
      ) {
        throw new Error(`${JSON.stringify(text)} threw ${error}`);
      }
      assertEquals(error.text, text);
      // deno-lint-ignore no-control-regex
      assert(!/[\x00-\x1f\x7f]/.test(error.message), error.message);
    }
  }
});
