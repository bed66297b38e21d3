import { assertEquals, assertThrows } from "@std/assert";
import { parseCommand } from "../lib/cli/main.ts";
import { UsageError } from "../lib/cli/flags.ts";

Deno.test("parseCommand() gives the documented defaults", () => {
  assertEquals(parseCommand([]), {
    command: "serve",
    options: {
      listen: [{ hostname: "0.0.0.0", port: 8080 }],
      drainTimeout: 5000,
      maxConnections: 10000,
      backlog: undefined,
      timeout: 10000,
      linger: 2000,
      maxPerIp: undefined,
      ratePerIp: undefined,
      allow: [],
      deny: [],
    },
    greeting: {
      message: undefined,
      preset: undefined,
      encoding: "ascii",
      lineEnding: "crlf",
    },
    files: {
      message: undefined,
      quotes: undefined,
      tlsCert: undefined,
      tlsKey: undefined,
      allow: [],
      deny: [],
    },
    log: { format: "text", quiet: false, rate: 100, timestamps: undefined },
    spelled: { host: "--host", port: "--port" },
  });
});

Deno.test("parseCommand() reads every serve option, long and short", () => {
  const command = parseCommand([
    "-H",
    "::1",
    "-p",
    "0",
    "-m",
    "Hi",
    "--line-ending",
    "lf",
    "--encoding=utf-8",
    "-q",
    "--max-connections",
    "5",
    "--backlog",
    "64",
    "--drain-timeout",
    "0",
  ]);
  assertEquals(command, {
    command: "serve",
    options: {
      listen: [{ hostname: "::1", port: 0 }],
      drainTimeout: 0,
      maxConnections: 5,
      backlog: 64,
      timeout: 10000,
      linger: 2000,
      maxPerIp: undefined,
      ratePerIp: undefined,
      allow: [],
      deny: [],
    },
    greeting: {
      message: "Hi",
      preset: undefined,
      encoding: "utf-8",
      lineEnding: "lf",
    },
    files: {
      message: undefined,
      quotes: undefined,
      tlsCert: undefined,
      tlsKey: undefined,
      allow: [],
      deny: [],
    },
    log: { format: "text", quiet: true, rate: 100, timestamps: undefined },
    spelled: { host: "-H", port: "-p" },
  });
});

Deno.test("parseCommand() parses connect targets", () => {
  assertEquals(parseCommand(["connect"]), {
    command: "connect",
    hostname: "localhost",
    port: 8080,
    timeout: 5000,
    unix: undefined,
    tls: false,
    ca: undefined,
    insecure: false,
  });
  assertEquals(parseCommand(["connect", "[::1]:9", "-t", "10"]), {
    command: "connect",
    hostname: "::1",
    port: 9,
    timeout: 10,
    unix: undefined,
    tls: false,
    ca: undefined,
    insecure: false,
  });
});

Deno.test("parseCommand() turns every mistake into a UsageError", () => {
  const cases: [string[], string][] = [
    [["--nope"], "Unknown option --nope"],
    [["-x"], "Unknown option -x"],
    [["--port"], "Missing value for --port"],
    [["--port", "--quiet"], "Missing value for --port"],
    [["-p", "70000"], 'Invalid value "70000" for -p'],
    [["--port", "70000"], 'Invalid value "70000" for --port'],
    [["-p", "-1"], 'Invalid value "-1" for -p'],
    [["-p", "eighty"], 'Invalid value "eighty" for -p'],
    [["--host", ""], "the host is empty"],
    [["--line-ending", "cr"], 'Invalid value "cr" for --line-ending'],
    [["--encoding", "ebcdic"], 'Invalid value "ebcdic" for --encoding'],
    [["--max-connections", "0"], 'Invalid value "0" for --max-connections'],
    [["--backlog", "1.5"], 'Invalid value "1.5" for --backlog'],
    // The library's own ranges, said by the flag (not its option, exit 1).
    [
      ["--max-per-ip", "2000000000"],
      'Invalid value "2000000000" for --max-per-ip: use a whole number from 1 to 1000000000',
    ],
    [
      ["--max-connections", "1000000001"],
      "use a whole number from 1 to 1000000000",
    ],
    [
      ["--rate-per-ip", "1000000001"],
      'Invalid value "1000000001" for --rate-per-ip: use a number above 0, at most 1000000000',
    ],
    [["-m", "a", "--message-file", "f"], "cannot be used together"],
    [["stray"], 'Unexpected argument "stray"'],
    [["connect", "a", "b"], 'Unexpected argument "b"'],
    // Positionals are kept as typed, never read as numbers.
    [["connect", "a", "0x10"], 'Unexpected argument "0x10"'],
    [["1e3"], 'Unexpected argument "1e3"'],
    [["--_=x", "y"], "Unknown option --_"],
    [["connect", "-_", "127.0.0.1:7"], "Unknown option -_"],
    [["connect", "host:99999"], 'Invalid port "99999"'],
    [["connect", "--timeout", "0"], 'Invalid value "0" for --timeout: use 1ms'],
    [["-p", "9000-8000"], "a range runs from a lower port to a higher one"],
    [["-p", "1-2000"], "a range has at most 1024 ports"],
    [["-p", "80-x"], 'Invalid value "80-x" for -p'],
    [["-H", "a", "-H", "b", "-p", "1000-1600"], "Too many listeners (1202)"],
    [
      ["--tls-cert", "c.pem"],
      "TLS needs both --tls-cert FILE and --tls-key FILE",
    ],
    [["--preset", "echo"], 'Invalid value "echo" for --preset'],
    [["--preset", "daytime", "-m", "x"], "--preset daytime fixes the greeting"],
    [["--unix="], "the path is empty"],
    [["connect", "--insecure"], "--ca and --insecure go with --tls"],
    [
      ["connect", "--tls", "--insecure", "--ca", "x"],
      "cannot be used together",
    ],
    [["connect", "--unix", "/x", "h:1"], "--unix connects to a socket file"],
  ];
  for (const [args, message] of cases) {
    assertThrows(() => parseCommand(args), UsageError, message);
  }
});

Deno.test("parseCommand() expands repeated hosts and port ranges", () => {
  const command = parseCommand([
    "-H",
    "127.0.0.1",
    "-H",
    "::1",
    "-p",
    "8000-8002",
    "-p",
    "9000",
  ]);
  assertEquals(command.command === "serve" && command.options.listen, [
    ...["127.0.0.1", "::1"].flatMap((hostname) =>
      [8000, 8001, 8002, 9000].map((port) => ({ hostname, port }))
    ),
  ]);
  const unixOnly = parseCommand(["--unix", "/tmp/g.sock"]);
  assertEquals(
    unixOnly.command === "serve" && unixOnly.options.listen,
    [{ transport: "unix", path: "/tmp/g.sock" }],
  );
});

Deno.test("parseCommand() answers --help and --version first", () => {
  assertEquals(parseCommand(["--help"]).command, "help");
  assertEquals(parseCommand(["-V"]).command, "version");
  assertEquals(parseCommand(["connect", "-h"]).command, "help");
});

Deno.test("parseCommand() lets a switch take a following true or false", () => {
  const quiet = (args: string[]) => {
    const command = parseCommand(args);
    return command.command === "serve" ? command.log.quiet : undefined;
  };
  assertEquals(quiet(["--quiet", "false"]), false);
  assertEquals(quiet(["-q", "true"]), true);
  assertEquals(quiet(["-q", "-q", "false"]), false);
  assertEquals(parseCommand(["-V", "false"]).command, "serve");
  assertEquals(
    parseCommand(["connect", "--tls", "false"]),
    parseCommand(["connect"]),
  );
});
