// The helpers behind the CLI's messages and help: spelt flag names, sizes,
// durations, wrapping, and the last escaping of a runtime error.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { parseCommand } from "../lib/cli/main.ts";
import {
  ExitError,
  formatColumns,
  formatFlagHelp,
  formatGroupedFlagHelp,
  groupFlags,
  parseFlags,
  parseSizeFlag,
  UsageError,
  wrapText,
} from "../lib/cli/flags.ts";
import { explainError, explainListen } from "../lib/cli/explain.ts";
import { ListenError } from "../lib/server/listeners.ts";
import { formatDuration } from "../lib/cli/duration.ts";
import { SERVE_FLAGS } from "../lib/cli/commands/serve.ts";
import { CONNECT_FLAGS } from "../lib/cli/commands/connect.ts";

Deno.test("parseFlags() records how each flag was spelt, per occurrence", () => {
  const flags = parseFlags(
    ["-p", "1", "--port=2", "-qH", "h", "--host", "i", "-p3"],
    SERVE_FLAGS,
  );
  assertEquals(flags.all("port"), ["1", "2", "3"]);
  assertEquals([0, 1, 2].map((i) => flags.flag("port", i)), [
    "-p",
    "--port",
    "-p",
  ]);
  assertEquals([0, 1].map((i) => flags.flag("host", i)), ["-H", "--host"]);
  assertEquals(flags.all("host"), ["h", "i"]);
  assertEquals(flags.flag("port", 1), "--port");
  assertEquals(flags.flag("host"), "--host");
  assertEquals(flags.flag("quiet"), "-q");
  assertEquals(flags.flag("timeout"), "--timeout");
});

Deno.test("parseCommand() takes durations with units; a bare number is milliseconds", () => {
  const serve = parseCommand([
    "--timeout",
    "5s",
    "--linger",
    "250ms",
    "--drain-timeout",
    "2m",
  ]);
  if (serve.command !== "serve") throw new Error("not serve");
  const { timeout, linger, drainTimeout } = serve.options;
  assertEquals([timeout, linger, drainTimeout], [
    5000,
    250,
    120_000,
  ]);
  const bare = parseCommand(["--timeout", "1500"]);
  assertEquals(bare.command === "serve" && bare.options.timeout, 1500);
  const connect = parseCommand(["connect", "-t", "1m30s"]);
  assertEquals(connect.command === "connect" && connect.timeout, 90_000);
  const check = parseCommand(["check", "--timeout", "1.5s"]);
  assertEquals(check.command === "check" && check.timeout, 1500);
});

Deno.test("parseCommand() reads --metrics PORT and :PORT as 127.0.0.1:PORT", () => {
  for (const text of ["9464", ":9464"]) {
    const command = parseCommand(["--metrics", text]);
    assertEquals(command.command === "serve" && command.metrics, {
      hostname: "127.0.0.1",
      port: 9464,
    });
  }
  const host = parseCommand(["--metrics", "0.0.0.0:9100"]);
  assertEquals(host.command === "serve" && host.metrics, {
    hostname: "0.0.0.0",
    port: 9100,
  });
  assertThrows(
    () => parseCommand(["--metrics", "70000"]),
    UsageError,
    'Invalid value "70000" for --metrics: use a whole number from 0 to 65535',
  );
});

Deno.test("a flag reader's duration() says the default unit and shows an example", () => {
  /** The reader of `connect` with `args`. */
  const read = (...args: string[]) => parseFlags(args, CONNECT_FLAGS);
  assertEquals(read("--timeout", "0").duration("timeout"), 0);
  assertEquals(read("--timeout", "2h").duration("timeout"), 7_200_000);
  for (const text of ["5x", "five", "", "5 s"]) {
    assertThrows(
      () => read("-t", text).duration("timeout"),
      UsageError,
      "(units ms, s, m, h; a number alone is milliseconds)",
    );
  }
  assertThrows(
    () => read("-t", "0").duration("timeout", 1),
    UsageError,
    'Invalid value "0" for -t: use 1ms or more, as in 250ms',
  );
});

Deno.test("formatDuration() writes the largest whole unit", () => {
  assertEquals(
    [0, 250, 1000, 1500, 10_000, 120_000, 3_600_000].map(formatDuration),
    ["0ms", "250ms", "1s", "1500ms", "10s", "2m", "1h"],
  );
});

Deno.test("parseSizeFlag() takes bytes and binary units up to 1 GiB", () => {
  assertEquals(
    ["1", "4096", "512KiB", "4MiB", "4mib", "2M", "1GiB", "16k"].map((text) =>
      parseSizeFlag(text, "--max-file-size")
    ),
    [1, 4096, 524_288, 4_194_304, 4_194_304, 2_097_152, 1_073_741_824, 16_384],
  );
  for (const text of ["0", "", "1.5MiB", "4MB", "2GiB", "-1", "1e6", "x"]) {
    assertThrows(
      () => parseSizeFlag(text, "--max-file-size"),
      UsageError,
      "for --max-file-size: use a size from 1 byte to 1GiB",
    );
  }
});

Deno.test("wrapText() breaks at spaces within the width; a long word keeps its line", () => {
  assertEquals(wrapText("aa bb cc dd", 5), ["aa bb", "cc dd"]);
  assertEquals(wrapText("a " + "x".repeat(9) + " b", 5), [
    "a",
    "xxxxxxxxx",
    "b",
  ]);
});

Deno.test("formatColumns() wraps with a hanging indent and gives a wide entry its own line", () => {
  const text = formatColumns([
    ["-a", "word ".repeat(30).trim()],
    ["--a-very-long-option NAME|OTHER", "short"],
  ]);
  const lines = text.split("\n");
  assert(lines.every((line) => line.length <= 80), text);
  // The column is capped at 32: the long entry would push it to 37.
  const indent = " ".repeat(32);
  assertEquals(lines[0], `  -a${" ".repeat(28)}${"word ".repeat(9).trim()}`);
  assertEquals(lines[1], `${indent}${"word ".repeat(9).trim()}`);
  assertEquals(lines.at(-2), "  --a-very-long-option NAME|OTHER");
  assertEquals(lines.at(-1), `${indent}short`);
});

Deno.test("formatFlagHelp() keeps every serve option within 80 columns", () => {
  const text = formatFlagHelp(SERVE_FLAGS);
  for (const line of text.split("\n")) assert(line.length <= 80, line);
  // Every help text is still there, only wrapped.
  const flat = text.replace(/\s+/g, " ");
  for (const spec of SERVE_FLAGS) {
    assert(flat.includes(spec.help.replace(/\s+/g, " ")), spec.name);
  }
});

Deno.test("formatGroupedFlagHelp() lists every serve option once, under its group's heading, in 80 columns", () => {
  const text = formatGroupedFlagHelp(SERVE_FLAGS);
  for (const line of text.split("\n")) assert(line.length <= 80, line);
  const headings = text.split("\n").filter((line) => /^\S.*:$/.test(line));
  assertEquals(headings, [
    "Listening:",
    "Greeting:",
    "Limits and access:",
    "Logs and metrics:",
    "Sensor:",
    "Fleet:",
    "Process:",
  ]);
  const listed = groupFlags(SERVE_FLAGS).flatMap((topic) =>
    topic.specs.map((spec) => `${topic.group} ${spec.name}`)
  );
  assertEquals(
    listed.sort(),
    SERVE_FLAGS.map((spec) => `${spec.group} ${spec.name}`).sort(),
  );
  // Under its heading: --deny sits in "Limits and access", before "Logs".
  const deny = text.indexOf("--deny CIDR");
  assert(text.lastIndexOf("Limits and access:", deny) !== -1);
  assert(text.indexOf("Logs and metrics:") > deny);
});

Deno.test("explainError() keeps the whole message of a runtime error, escaped", () => {
  assertEquals(
    explainError(new Error("first line\nsecond \x1b[2J line (os error 5)")),
    {
      message: "first line\\nsecond \\x1b[2J line",
      exitCode: 1,
    },
  );
});

Deno.test("explainError() says an ExitError as it is, with its exit code", () => {
  const { message, exitCode } = explainError(new ExitError("a\nb", 3));
  assertEquals({ message, exitCode }, { message: "a\nb", exitCode: 3 });
});

Deno.test("explainListen() names --metrics, or the port flag as spelt, for a busy port", () => {
  const busy = new ListenError(
    "127.0.0.1:9",
    9,
    new Deno.errors.AddrInUse("Address in use"),
  );
  const metrics = assertThrows(
    () => explainListen(busy, "--metrics"),
    ExitError,
  );
  assert(metrics.message.includes("choose another --metrics address"));
  assert(!metrics.message.includes("--port"), metrics.message);
  const greeting = assertThrows(
    () => explainListen(busy, "-H", "-p"),
    ExitError,
  );
  assert(greeting.message.endsWith("choose another -p (0 picks a free one)"));
});

Deno.test("parseFlags() reads bundled short flags as the same flags one by one", () => {
  const bundled = parseFlags(["-qp80", "-qH", "h"], SERVE_FLAGS);
  assertEquals(bundled.all("port"), ["80"]);
  assertEquals(bundled.all("host"), ["h"]);
  assertEquals(bundled.has("quiet"), true);
  assertEquals([0, 1].map((i) => bundled.flag("quiet", i)), ["-q", "-q"]);
  // A value flag ending a bundle needs its value, as it does alone.
  for (const args of [["-qH"], ["-H"], ["-qH", "--quiet"]]) {
    assertThrows(
      () => parseFlags(args, SERVE_FLAGS),
      UsageError,
      "Missing value for -H: write -H HOST",
    );
  }
  // An unknown letter leaves the whole bundle unknown.
  assertThrows(
    () => parseFlags(["-qx"], SERVE_FLAGS),
    UsageError,
    "Unknown option -qx",
  );
  // parseArgs would read "-qx5" as -q with the value "x5", in silence.
  for (const arg of ["-qx5", "-q\u00e9", "-qVx1"]) {
    assertThrows(
      () => parseFlags([arg], SERVE_FLAGS),
      UsageError,
      `Unknown option ${arg}:`,
    );
  }
});

Deno.test("parseCommand() refuses a value given to a switch, whatever it says", () => {
  for (
    const [args, flag, value] of [
      [["--quiet=false"], "--quiet", "false"],
      [["--tarpit=yes"], "--tarpit", "yes"],
      [["--help=1"], "--help", "1"],
      [["--quiet="], "--quiet", ""],
      [["connect", "127.0.0.1:1", "--tls=0"], "--tls", "0"],
      // Short switches with a value attached, which parseArgs would take
      // for the switch's value and then drop the switch.
      [["-q5"], "-q", "5"],
      [["-q=1"], "-q", "1"],
      [["-q-"], "-q", "-"],
      [["-qV5"], "-V", "5"],
      [["-h0.5"], "-h", "0.5"],
      [["-q\u{1F600}"], "-q", "\u{1F600}"],
      [["-h250ms"], "-h", "250ms"],
    ] as const
  ) {
    const error = assertThrows(() => parseCommand([...args]), UsageError);
    assertEquals(
      error.message,
      `${flag} takes no value; got "${value}": give ${flag} alone, or ` +
        "leave it out",
    );
  }
});
