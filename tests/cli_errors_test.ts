// Issue 13, point 8: every error is one line that names the flag as typed,
// escapes what it echoes, and says how to fix it. Run as a subprocess.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  runCli,
  startCli,
  waitForMetricsPort,
  withTempDir,
} from "./_helpers.ts";

/**
 * C0, DEL and C1 controls: none may reach the terminal raw. Checked by code,
 * not a regular expression, which the lint rule against control characters
 * would refuse.
 */
function hasRawControl(text: string): boolean {
  return [...text].some((char) => {
    const code = char.charCodeAt(0);
    return code < 0x20 || (code >= 0x7f && code <= 0x9f);
  });
}

/** One failing run: the exit code, and the one stderr line, checked. */
function assertOneLine(
  result: { code: number; stdout: string; stderr: string },
  code: number,
  includes: string[],
  where: string,
): string {
  const context = `${where}: ${JSON.stringify(result.stderr)}`;
  assertEquals(result.code, code, context);
  assertEquals(result.stdout, "", context);
  assert(result.stderr.endsWith("\n"), context);
  const lines = result.stderr.slice(0, -1).split("\n");
  assertEquals(lines.length, 1, context);
  assert(lines[0].startsWith("greeter: "), context);
  assert(!result.stderr.includes("    at "), context);
  assert(!hasRawControl(lines[0]), context);
  for (const text of includes) assertStringIncludes(lines[0], text, context);
  return lines[0];
}

/** Runs every case at once (each a `deno run`), then checks each. */
async function assertUsageErrors(cases: [string[], string[]][]) {
  const results = await Promise.all(cases.map(([args]) => runCli(args)));
  for (const [i, [args, includes]] of cases.entries()) {
    assertOneLine(results[i], 2, includes, JSON.stringify(args));
  }
}

Deno.test("greeter names the flag as the user spelt it", async () => {
  await assertUsageErrors([
    [["-p", "70000"], ['Invalid value "70000" for -p:']],
    [["--port", "70000"], ['Invalid value "70000" for --port:']],
    [["-p"], ["Missing value for -p: write -p PORT"]],
    [["--port"], ["Missing value for --port: write --port PORT"]],
    [["-H", ""], ["Invalid value for -H: the host is empty"]],
    [["-H", "127.0.0.1", "-p", "0", "--host", ""], [
      "Invalid value for --host: the host is empty",
    ]],
    [["-m", "x", "--message-file", "f"], [
      "-m and --message-file cannot be used together",
    ]],
    [["connect", "-t", "0"], ['Invalid value "0" for -t:']],
    [["check", "-e", "é"], ["Invalid value for -e:"]],
    [["-p", "8000", "--port", "x"], ['Invalid value "x" for --port:']],
  ]);
});

Deno.test("greeter suggests the flag a mistyped one was meant to be", async () => {
  await assertUsageErrors([
    [["--prot", "80"], [
      "Unknown option --prot: did you mean --port? See --help for the options",
    ]],
    [["--tiemout", "5s"], ["did you mean --timeout?"]],
    [["--metric", "0"], ["did you mean --metrics?"]],
    [["connect", "--timout", "1s"], ["did you mean --timeout?"]],
    [["check", "--expext", "hi"], ["did you mean --expect?"]],
    [["--no-quiet"], ["options cannot be negated; leave out --quiet"]],
    [["--zzzzzzzz"], ["Unknown option --zzzzzzzz: see --help for the options"]],
    // A short letter after two dashes is no flag (it was read as its long
    // flag: "--p 81" listened on port 81).
    [["--p", "81"], [
      "Unknown option --p: did you mean -p? See --help for the options",
    ]],
    [["connect", "--t", "1s"], ["Unknown option --t: did you mean -t?"]],
    [["--encoding", "utf8"], ["use one of ascii, utf-8, latin1", "utf-8?"]],
  ]);
});

Deno.test("greeter escapes control characters in echoed values and keeps them", async () => {
  const lines = await Promise.all(
    ([
      [["-p", "8\n0\x1b[31m"], ['"8\\n0\\x1b[31m" for -p']],
      [["--bo\x1bgus"], ["Unknown option --bo\\x1bgus"]],
      [["--deny", "2001:db8::/200"], [
        'Invalid CIDR "2001:db8::/200" for --deny',
      ]],
      [["--allow", "10.0.0.0/8\u009b2J"], ['"10.0.0.0/8\\x9b2J" for --allow']],
      [["--metrics", "a:b\rc"], ['Invalid value "a:b\\rc" for --metrics']],
      [["--message-file", "/nonexistent/a\nb"], [
        'Cannot read message file "/nonexistent/a\\nb": no such file',
      ]],
      [["stray\u202e"], ['Unexpected argument "stray\\u202e"']],
      [["connect", "--ca", "/x\ty", "--tls"], ['"/x\\ty"']],
      [["-H", "127.0.0.1", "-p", "0", "--preset", "daytime\n"], [
        'Invalid value "daytime\\n" for --preset',
      ]],
    ] as [string[], string[]][]).map(async ([args, includes]) =>
      assertOneLine(
        await runCli(args),
        2,
        includes,
        JSON.stringify(args),
      )
    ),
  );
  assertEquals(lines.length, 9);
});

Deno.test("greeter refuses a listener given twice as a usage error", async () => {
  // A port really held, so that a regression (trying to listen twice)
  // would fail differently: "already in use", exit 1.
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String(held.addr.port);
  await withTempDir(async (dir) => {
    await assertUsageErrors([
      [["-H", "127.0.0.1", "-p", port, "-p", port], [
        `Port ${port} is given twice (-p ${port} and -p ${port}): give each ` +
        "port once",
      ]],
      [["-H", "127.0.0.1", "--port", `${port}-${port}`, "-p", port], [
        `Port ${port} is given twice (--port ${port}-${port} and -p ${port})`,
      ]],
      [["-H", "127.0.0.1", "--host", "127.0.0.1", "-p", port], [
        'Host "127.0.0.1" is given twice (-H 127.0.0.1 and --host 127.0.0.1)',
      ]],
      [["-H", "::1", "-H", "0:0::1", "-p", port], [
        'Host "0:0::1" is given twice',
      ]],
      [["-H", "0.0.0.0", "-H", "127.0.0.1", "-p", port], [
        'Host "0.0.0.0" already listens on every IPv4 address',
        "give either -H 0.0.0.0 or -H 127.0.0.1, not both",
      ]],
      [["--unix", `${dir}/g.sock`, "--unix", `${dir}//g.sock`], [
        `Unix socket "${dir}//g.sock" is given twice (--unix)`,
      ]],
    ]);
  });
  // Port 0 twice is two free ports, not a duplicate.
  await using server = await startCli([
    "-H",
    "127.0.0.1",
    "-p",
    "0",
    "-p",
    "0",
  ]);
  await server.waitFor(/listening[^\n]*\n[^\n]*listening[^\n]*\n/);
  const { code } = await server.stop();
  assertEquals(code, 0);
});

Deno.test("greeter --metrics PORT and :PORT listen on 127.0.0.1", async () => {
  for (const value of ["0", ":0"]) {
    await using server = await startCli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--metrics",
      value,
    ]);
    const metricsPort = await waitForMetricsPort(server);
    const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assertEquals(response.status, 200);
    await response.body?.cancel();
    assertEquals((await server.stop()).code, 0);
  }
});

Deno.test("greeter says to choose another --metrics address when its port is busy", async () => {
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = held.addr.port;
  // The bare port is the one held on 127.0.0.1: proof it means 127.0.0.1.
  for (const value of [String(port), `127.0.0.1:${port}`]) {
    const line = assertOneLine(
      await runCli(["-H", "127.0.0.1", "-p", "0", "--metrics", value]),
      1,
      [
        `Cannot listen on 127.0.0.1:${port}: the address is already in use`,
        "choose another --metrics address",
      ],
      value,
    );
    assert(!line.includes("--port"), line);
  }
});

Deno.test("greeter takes durations with units and explains a bad one", async () => {
  await assertUsageErrors([
    [["--timeout", "5x"], [
      'Invalid value "5x" for --timeout: "x" is not a unit',
      "250ms, 5s or 2m",
      "a number alone is milliseconds",
    ]],
    [["--linger", "soon"], [
      'Invalid value "soon" for --linger',
      "a number alone is milliseconds",
    ]],
    [["--drain-timeout", "1.5"], ["add a unit for a fraction, as in 1.5s"]],
    [["--timeout", "30d"], ['"d" is not a unit']],
    [["--timeout", "30m1h"], ["the largest first, as in 1m30s"]],
    [["--timeout=-5s"], ["use 0ms or more"]],
    [["--timeout", "600h"], ["the longest is 2147483647ms"]],
    [["connect", "--timeout", "0s"], ["use 1ms or more", "250ms"]],
    [["check", "-t", "0.5ms"], ["whole milliseconds"]],
  ]);
});

Deno.test("greeter --help of every command fits 80 columns and ends with examples", async () => {
  const expected: [string[], string[]][] = [
    [["--help"], [
      "greeter --port 2323",
      "greeter --preset daytime --port 1313",
      "greeter --tls-cert cert.pem --tls-key key.pem",
      "greeter --metrics 9464",
      "--timeout DURATION",
      "(default 10s)",
    ]],
    [["connect", "--help"], ["greeter connect localhost:2323", "(default 5s)"]],
    [["check", "--help"], ["greeter check 127.0.0.1:8080", "(default 2s)"]],
  ];
  const results = await Promise.all(expected.map(([args]) => runCli(args)));
  for (const [i, [args, includes]] of expected.entries()) {
    const { code, stdout, stderr } = results[i];
    assertEquals([code, stderr], [0, ""], args.join(" "));
    for (const line of stdout.split("\n")) {
      assert(line.length <= 80, `${args.join(" ")}: ${line.length}: ${line}`);
    }
    const examples = stdout.lastIndexOf("\nExamples:\n");
    assert(examples > 0, stdout);
    for (const text of includes) assertStringIncludes(stdout, text);
    for (const text of includes.filter((text) => text.startsWith("greeter"))) {
      assert(stdout.indexOf(text) > examples, `${text} is not an example`);
    }
  }
});

Deno.test("greeter takes -Hlocalhost and negative numbers as values, and points each mistyped address at the fix", async () => {
  await assertUsageErrors([
    [["-Hlocalhost", "-p", "x"], ['Invalid value "x" for -p:']],
    [["--timeout", "-1"], [
      'Invalid value "-1" for --timeout: use 0ms or more',
    ]],
    [["-p", "-5"], ['Invalid value "-5" for -p:']],
    [["connect", "127.0.0.1:0"], [
      'Port 0 in "127.0.0.1:0" is no server\'s port',
    ]],
    [["connect", "--unix", ""], ["--unix needs the path of the socket file"]],
    [["--host", "127.0.0.1:8080"], [
      'Invalid value "127.0.0.1:8080" for --host: it takes a host alone; ' +
      "write --host 127.0.0.1 --port 8080",
    ]],
    [["-H", "[::1]:9000"], ["write -H ::1 --port 9000"]],
    [["--metrics", "9464x"], [
      'Invalid value "9464x" for --metrics: not a port',
    ]],
  ]);
  // -Hlocalhost is -H localhost: it listens there.
  await using server = await startCli(["-Hlocalhost", "-p", "0", "-q"]);
  assert(server.port > 0);
});

Deno.test("greeter connect to a port that never answers says so, without suggesting --tls", async () => {
  // A listener whose backlog is full: the kernel drops further SYNs.
  const listener = Deno.listen(
    { hostname: "127.0.0.1", port: 0, tcpBacklog: 1 } as Deno.TcpListenOptions,
  );
  const held: Deno.Conn[] = [];
  try {
    // Linux queues backlog + 1 connections; the next one waits for ever.
    for (let i = 0; i < 2; i++) {
      held.push(
        await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
      );
    }
    const result = await runCli([
      "connect",
      "-t",
      "1s",
      `127.0.0.1:${listener.addr.port}`,
    ]);
    const line = assertOneLine(result, 1, [
      `no connection to 127.0.0.1:${listener.addr.port} within 1000 ms`,
      "is the host up and the port open?",
    ], "full backlog");
    assert(!line.includes("--tls"), line);
  } finally {
    for (const conn of held) conn.close();
    listener.close();
  }
});

Deno.test("greeter check against a --proxy-protocol greeter without --proxy-header says to add it", async () => {
  await using server = await startCli([
    "-H",
    "127.0.0.1",
    "-p",
    "0",
    "--proxy-protocol",
    "--proxy-from",
    "127.0.0.1",
  ]);
  const check = await runCli(["check", `127.0.0.1:${server.port}`]);
  assertEquals(check.code, 1);
  // It waits for the header that never comes: no greeting.
  assertStringIncludes(check.stdout, "FAIL no greeting from");
  assertStringIncludes(check.stdout, "add --proxy-header");
  const fixed = await runCli([
    "check",
    "--proxy-header",
    `127.0.0.1:${server.port}`,
  ]);
  assertEquals(fixed.code, 0, fixed.stdout);
});
