import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import {
  closedPort,
  DEFAULT_BYTES,
  POSIX_SIGNALS,
  readAll,
  ROOT,
  runCli,
  runNode,
  silentServer,
  startCli,
  withoutGuardWarning,
} from "./_helpers.ts";
import config from "../deno.json" with { type: "json" };

/** Asserts a clean one-line failure: the exit code, the text, no trace. */
function assertFails(
  result: { code: number; stdout: string; stderr: string },
  code: number,
  includes: string,
) {
  assertEquals(result.code, code, result.stderr);
  assertStringIncludes(result.stderr, includes);
  assertEquals(result.stderr.trim().split("\n").length, 1, result.stderr);
  assertMatch(result.stderr, /^greeter: /);
  assert(!/\n\s+at /.test(result.stderr), "no stack trace");
  assertEquals(result.stdout, "", "nothing half-started");
}

Deno.test("greeter with no arguments listens on 0.0.0.0:8080", async () => {
  // Binding 8080 for real would fail wherever it is busy. With net access to
  // 127.0.0.1 only, greeter names the address it tried and binds nothing.
  assertFails(
    await runCli([], {
      permissions: ["--allow-net=127.0.0.1", "--allow-read"],
    }),
    1,
    "Cannot listen on 0.0.0.0:8080: missing permission",
  );
});

Deno.test(
  "greeter logs one line per client and exits 0 on SIGTERM",
  POSIX_SIGNALS,
  async () => {
    await using server = await startCli(["-H", "127.0.0.1", "-p", "0"]);
    const conns = await Promise.all([1, 2, 3].map(async () => {
      const conn = await Deno.connect({ port: server.port });
      const port = conn.localAddr.port;
      conn.close();
      return port;
    }));
    await server.waitFor(/(Connection received from.*\n){3}/);
    const { code, stdout } = await server.stop("SIGTERM");
    assertEquals(code, 0);
    for (const port of conns) {
      assertStringIncludes(
        stdout,
        `Connection received from 127.0.0.1:${port}\n`,
      );
    }
    assertMatch(stdout, /Server stopped: 3 connections/);
  },
);

Deno.test(
  "greeter --quiet prints no per-connection lines",
  POSIX_SIGNALS,
  async () => {
    await using server = await startCli(["-H", "127.0.0.1", "-p", "0", "-q"]);
    assertEquals(await readAll(server.port), DEFAULT_BYTES);
    const { code, stdout } = await server.stop();
    assertEquals(code, 0);
    assert(!stdout.includes("Connection received"), stdout);
  },
);

Deno.test("greeter serves --message, --line-ending and --encoding exactly", async () => {
  const cases: [string[], number[]][] = [
    [["-m", "Hi"], [72, 105, 13, 10]],
    [["-m", "Hi", "--line-ending", "lf"], [72, 105, 10]],
    [["-m", "Hi", "--line-ending", "none"], [72, 105]],
    [["-m", "é", "--encoding", "latin1"], [0xe9, 13, 10]],
    [["-m", "é", "--encoding", "utf-8", "--line-ending=none"], [0xc3, 0xa9]],
  ];
  for (const [args, expected] of cases) {
    await using server = await startCli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      ...args,
    ]);
    assertEquals([...await readAll(server.port)], expected, args.join(" "));
  }
});

Deno.test("greeter --message-file serves the file's text", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "Welcome\nto greeter\n");
    await using server = await startCli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--message-file",
      file,
    ]);
    assertEquals(
      new TextDecoder().decode(await readAll(server.port)),
      "Welcome\r\nto greeter\r\n",
    );
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("greeter's greeting reads the same in Node's net client", async () => {
  await using server = await startCli(["-H", "127.0.0.1", "-p", "0"]);
  const node = await runNode(`
    const chunks = [];
    require("node:net").connect(${server.port}, "127.0.0.1")
      .on("data", (c) => chunks.push(c))
      .on("end", () => process.stdout.write(Buffer.concat(chunks).toString("hex")));`);
  assertEquals(node.stdout, "436f6e6e656374696f6e2045737461626c69736865640d0a");
});

Deno.test("greeter connect prints the greeting and exits 0", async () => {
  await using server = await startCli([
    "-H",
    "127.0.0.1",
    "-p",
    "0",
    "-m",
    "Hello there",
  ]);
  const result = await runCli(["connect", `127.0.0.1:${server.port}`]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(result.stdout, "Hello there\r\n");
  assertEquals(result.stderr, "");
});

Deno.test("greeter connect reports a refused connection in one line", async () => {
  const port = closedPort();
  assertFails(
    await runCli(["connect", `127.0.0.1:${port}`]),
    1,
    `Cannot connect to 127.0.0.1:${port}: connection refused; is greeter running there?`,
  );
});

Deno.test("greeter connect reports a timeout in one line", async () => {
  await using silent = silentServer();
  assertFails(
    await runCli([
      "connect",
      `127.0.0.1:${silent.port}`,
      "--timeout",
      "300",
    ]),
    1,
    "within 300 ms; if the server speaks TLS add --tls, otherwise try a longer --timeout",
  );
});

Deno.test("greeter --help and --version print and exit 0", async () => {
  const help = await runCli(["--help"]);
  assertEquals(help.code, 0);
  for (
    const flag of [
      "--host",
      "--port",
      "--message",
      "--message-file",
      "--line-ending",
      "--encoding",
      "--quiet",
      "--help",
      "--version",
      "connect",
    ]
  ) assertStringIncludes(help.stdout, flag);
  const connectHelp = await runCli(["connect", "--help"]);
  assertStringIncludes(connectHelp.stdout, "--timeout");
  const version = await runCli(["-V"]);
  assertEquals(version.code, 0);
  assertEquals(version.stdout, `greeter ${config.version}\n`);
});

Deno.test("greeter rejects bad input with exit 2 and one line", async () => {
  const cases: [string[], string][] = [
    [["--bogus"], "Unknown option --bogus"],
    [["--port"], "Missing value for --port"],
    [["-p", "65536"], 'Invalid value "65536" for -p'],
    [["-p", "http"], 'Invalid value "http" for -p'],
    [["--host="], "the host is empty"],
    [["-m", "naïve"], "ascii cannot encode: use --encoding utf-8"],
    [
      ["--message-file", "/nonexistent/greeting.txt"],
      'Cannot read message file "/nonexistent/greeting.txt": no such file',
    ],
    [["--line-ending", "cr"], "use one of crlf, lf, none"],
    [["connect", "localhost:99999"], 'Invalid port "99999"'],
  ];
  for (const [args, message] of cases) {
    assertFails(await runCli(args), 2, message);
  }
});

Deno.test("greeter reports a busy port with exit 1", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  assertFails(
    await runCli(["-H", "127.0.0.1", "-p", String(listener.addr.port)]),
    1,
    `Cannot listen on 127.0.0.1:${listener.addr.port}: the address is already in use`,
  );
});

Deno.test("greeter names the missing --allow-net permission", async () => {
  assertFails(
    await runCli(["-H", "127.0.0.1", "-p", "0"], { permissions: [] }),
    1,
    "missing permission",
  );
  const result = await runCli(["-p", "0"], { permissions: [] });
  assertStringIncludes(result.stderr, "run deno again with --allow-net");
});

Deno.test("greeter names the missing --allow-read permission for a message file", async () => {
  assertFails(
    await runCli(["--message-file", "greeting.txt"], {
      permissions: ["--allow-net"],
    }),
    2,
    "run deno with --allow-read",
  );
});

// Only Linux has privileged ports for every user here (macOS dropped them in
// 10.14, Windows never had them), and setpriv is Linux's.
Deno.test("greeter explains a privileged port", {
  ignore: Deno.build.os !== "linux",
}, async () => {
  // Root may bind any port, so as root drop the one capability that allows it.
  const prefix = Deno.uid() === 0
    ? [
      "setpriv",
      "--bounding-set=-net_bind_service",
      "--inh-caps=-net_bind_service",
    ]
    : [];
  assertFails(
    await runCli(["-H", "127.0.0.1", "-p", "1"], { prefix }),
    1,
    "Cannot listen on 127.0.0.1:1: permission denied; port 1 is privileged: use a port above 1023",
  );
});

Deno.test("greeter rejects a TLS certificate or key that does not work, naming both", async () => {
  const junk = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(junk, "not a certificate\n");
    assertFails(
      await runCli([
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "--tls-cert",
        junk,
        "--tls-key",
        junk,
      ]),
      2,
      `Invalid TLS certificate or key (--tls-cert ${JSON.stringify(junk)}`,
    );
  } finally {
    await Deno.remove(junk);
  }
});

Deno.test("greeter rejects a --metrics address that is not HOST:PORT", async () => {
  assertFails(
    await runCli(["-H", "127.0.0.1", "-p", "0", "--metrics", "bad:host:1"]),
    2,
    'Invalid value "bad:host:1" for --metrics',
  );
});

Deno.test("greeter connect --tls --insecure reports a server that never answers", async () => {
  await using silent = silentServer();
  assertFails(
    await runCli([
      "connect",
      `127.0.0.1:${silent.port}`,
      "--tls",
      "--insecure",
      "-t",
      "300",
    ]),
    1,
    "within 300 ms",
  );
});

Deno.test({
  name: "deno task start writes nothing of Deno's own to stderr (its update " +
    "check is off), even where Deno would warn about CA files",
  ignore: Deno.build.os === "windows",
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "start", "-H", "127.0.0.1", "-p", "0", "-q"],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // A CA file Deno cannot read makes its update checker warn, in colour.
      env: { NODE_EXTRA_CA_CERTS: "/nonexistent/ca.pem" },
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const stdout = new Response(child.stdout).text();
    // Long enough for the update check, which starts at once.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    child.kill("SIGTERM");
    await child.status;
    assertStringIncludes(await stdout, "Server is listening");
    // greeter's own line about a host that holds 127.0.0.1:9229 aside.
    assertEquals(withoutGuardWarning(await stderr), "");
  },
});
