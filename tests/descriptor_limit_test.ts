import { assertEquals, assertThrows } from "@std/assert";
import { fitConnectionCap, RESERVED_FDS } from "../lib/cli/descriptor_limit.ts";
import { canRun } from "./_helpers.ts";

Deno.test("fitConnectionCap() keeps a cap that fits", () => {
  assertEquals(fitConnectionCap(500, 1024), { cap: 500, lowered: false });
  assertEquals(fitConnectionCap(960, 1024), { cap: 960, lowered: false });
  assertEquals(fitConnectionCap(10_000, 20_000), {
    cap: 10_000,
    lowered: false,
  });
});

Deno.test("fitConnectionCap() lowers a cap that does not fit to the limit less the reserve", () => {
  assertEquals(RESERVED_FDS, 64);
  assertEquals(fitConnectionCap(961, 1024), { cap: 960, lowered: true });
  assertEquals(fitConnectionCap(10_000, 1024), { cap: 960, lowered: true });
  assertEquals(fitConnectionCap(10_000, 128), { cap: 64, lowered: true });
  assertEquals(fitConnectionCap(10_000, 1024, 24), {
    cap: 1000,
    lowered: true,
  });
  assertEquals(fitConnectionCap(10_000, 1024, 0), { cap: 1024, lowered: true });
});

Deno.test("fitConnectionCap() never goes below one connection", () => {
  assertEquals(fitConnectionCap(10_000, 64), { cap: 1, lowered: true });
  assertEquals(fitConnectionCap(10_000, 10), { cap: 1, lowered: true });
  assertEquals(fitConnectionCap(10_000, 0), { cap: 1, lowered: true });
  assertEquals(fitConnectionCap(1, 0), { cap: 1, lowered: false });
});

Deno.test("fitConnectionCap() leaves the cap alone when the limit is unknown or unlimited", () => {
  assertEquals(fitConnectionCap(10_000, undefined), {
    cap: 10_000,
    lowered: false,
  });
  assertEquals(fitConnectionCap(10_000, Infinity), {
    cap: 10_000,
    lowered: false,
  });
});

Deno.test("fitConnectionCap() refuses numbers that are not whole or in range", () => {
  for (const max of [0, -1, 1.5, NaN, Infinity]) {
    assertThrows(
      () => fitConnectionCap(max, 1024),
      RangeError,
      "Connection cap",
    );
  }
  for (const limit of [-1, 1.5, NaN]) {
    assertThrows(
      () => fitConnectionCap(100, limit),
      RangeError,
      "Descriptor limit",
    );
  }
  for (const reserved of [-1, 0.5]) {
    assertThrows(
      () => fitConnectionCap(100, 1024, reserved),
      RangeError,
      "Reserved",
    );
  }
});

Deno.test("readSoftFdLimit() reads the limit greeter runs under, where /proc is open to it", async (t) => {
  if (!(await canRun("prlimit", ["--version"]))) {
    t.step({
      name: "skipped: prlimit is not installed",
      ignore: true,
      fn() {},
    });
    return;
  }
  const module =
    new URL("../lib/observe/process_metrics.ts", import.meta.url).href;
  const script = `import { readSoftFdLimit } from "${module}";\n` +
    "console.log(String(readSoftFdLimit()));";
  // `deno eval` runs with every permission, which Deno 2.9 wants for /proc.
  // Without it the answer is undefined: see process_metrics_test.ts.
  for (const [nofile, expected] of [["128", "128"], ["200:300", "300"]]) {
    const output = await new Deno.Command("prlimit", {
      args: [`--nofile=${nofile}`, Deno.execPath(), "eval", script],
      stdin: "null",
    }).output();
    assertEquals(
      new TextDecoder().decode(output.stdout),
      `${expected}\n`,
      new TextDecoder().decode(output.stderr),
    );
  }
});
