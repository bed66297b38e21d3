import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import { type CheckCommand, parseCheck } from "../lib/cli/commands/check.ts";
import { UsageError } from "../lib/cli/flags.ts";
import { DEFAULT_BYTES } from "./_helpers.ts";

const encoder = new TextEncoder();

/** Parses arguments that must make a check command. */
function check(args: string[]): CheckCommand {
  const command = parseCheck(args);
  if (command.command !== "check") throw new Error(`Got ${command.command}`);
  return command;
}

Deno.test("parseCheck() defaults to localhost:8080, the default greeting and 2000 ms", () => {
  assertEquals(parseCheck([]), {
    command: "check",
    hostname: "localhost",
    port: 8080,
    expect: DEFAULT_BYTES,
    timeout: 2000,
    unix: undefined,
    tls: false,
    ca: undefined,
    insecure: false,
  });
  assertEquals(
    parseCheck(["h:1", "--tls", "--ca", "ca.pem"]),
    {
      command: "check",
      hostname: "h",
      port: 1,
      expect: DEFAULT_BYTES,
      timeout: 2000,
      unix: undefined,
      tls: true,
      ca: "ca.pem",
      insecure: false,
    },
  );
});

Deno.test("parseCheck() reads the address, --expect, --line-ending, --encoding and --timeout", () => {
  assertEquals(
    parseCheck([
      "[::1]:2323",
      "--expect",
      "Grüße\nzwei",
      "--line-ending=lf",
      "--encoding",
      "utf-8",
      "-t",
      "500",
    ]),
    {
      command: "check",
      hostname: "::1",
      port: 2323,
      expect: encoder.encode("Grüße\nzwei\n"),
      timeout: 500,
      unix: undefined,
      tls: false,
      ca: undefined,
      insecure: false,
    },
  );
  assertEquals(
    check([":9000", "-e", "Hi"]).expect,
    encoder.encode("Hi\r\n"),
  );
  assertEquals(check(["example.com"]).port, 8080);
  assertEquals(
    check(["--expect", "x", "--line-ending", "none"]).expect,
    encoder.encode("x"),
  );
});

Deno.test("parseCheck() answers --help and --version", () => {
  const help = parseCheck(["--help"]);
  assertEquals(help.command, "help");
  if (help.command === "help") {
    assertStringIncludes(help.text, "greeter check [HOST][:PORT] [OPTIONS]");
    assertStringIncludes(help.text, "--expect TEXT");
    assertStringIncludes(help.text, "HEALTHCHECK");
  }
  assertEquals(parseCheck(["-V"]), { command: "version" });
});

Deno.test("parseCheck() rejects mistakes with a message that says how to fix them", () => {
  for (
    const [args, message] of [
      [["a", "b"], 'Unexpected argument "b": check takes one [HOST][:PORT]'],
      [
        ["host:99999"],
        'Invalid port "99999": use a whole number from 0 to 65535',
      ],
      [
        ["--timeout", "0"],
        'Invalid value "0" for --timeout: use 1ms or more, as in 250ms, 5s or 2m (units ms, s, m, h; a number alone is milliseconds)',
      ],
      [
        ["--encoding", "utf8"],
        'Invalid value "utf8" for --encoding: use one of ascii, utf-8, latin1',
      ],
      [
        ["--expect", "é"],
        'Invalid value for --expect: message has "é" (U+00E9) at position 1, which ascii cannot encode: use --encoding utf-8',
      ],
      [["--expect"], "Missing value for --expect: write --expect TEXT"],
      [["--nope"], "Unknown option --nope: see --help for the options"],
    ] as const
  ) {
    assertThrows(() => parseCheck([...args]), UsageError, message);
  }
});
