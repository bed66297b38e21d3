import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import {
  closedPort,
  readAll,
  runCli,
  startCli,
  UNIX_SOCKETS,
  withTempDir,
} from "./_helpers.ts";
import { makeCertificates, run } from "./_tools.ts";

const decoder = new TextDecoder();
const text = async (port: number, hostname = "127.0.0.1") =>
  decoder.decode(await readAll(port, hostname));

Deno.test("greeter fills in template placeholders per connection", async () => {
  await using server = await startCli([
    "-H",
    "::",
    "-p",
    "0",
    "-m",
    "You are {remote_addr}:{remote_port} on {local_addr}:{local_port}, #{count}, {{literal}}",
  ]);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const clientPort = conn.localAddr.port;
  const bytes = new Uint8Array(200);
  let received = "";
  for (let n; (n = await conn.read(bytes)) !== null;) {
    received += decoder.decode(bytes.subarray(0, n));
  }
  conn.close();
  assertEquals(
    received,
    `You are 127.0.0.1:${clientPort} on 127.0.0.1:${server.port}, #1, {literal}\r\n`,
  );
  assertMatch(
    await text(server.port, "::1"),
    /^You are ::1:\d+ on ::1:\d+, #2, \{literal\}\r\n$/,
  );
});

Deno.test("greeter {time} is RFC 3339 UTC and {hostname} the machine's name", async () => {
  await using server = await startCli(
    ["-H", "127.0.0.1", "-p", "0", "-m", "{time} {hostname}"],
    { permissions: ["--allow-net", "--allow-sys=hostname"] },
  );
  const before = Math.floor(Date.now() / 1000);
  const [time, host] = (await text(server.port)).trim().split(" ");
  assertMatch(time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert(Math.abs(Date.parse(time) / 1000 - before) <= 1);
  assertEquals(host, Deno.hostname());
});

Deno.test("greeter rejects an unknown placeholder with exit 2", async () => {
  const result = await runCli(["-m", "Hi {name}"]);
  assertEquals(result.code, 2);
  assertStringIncludes(result.stderr, "{name}");
  assertEquals(result.stdout, "");
});

Deno.test("greeter --preset time sends RFC 868 seconds since 1900", async () => {
  await using server = await startCli([
    "-H",
    "127.0.0.1",
    "-p",
    "0",
    "--preset",
    "time",
  ]);
  const bytes = await readAll(server.port);
  assertEquals(bytes.length, 4);
  const seconds = new DataView(bytes.buffer).getUint32(0);
  const expected = Math.floor(Date.now() / 1000) + 2_208_988_800;
  assert(Math.abs(seconds - expected) <= 1, `${seconds} vs ${expected}`);
});

Deno.test("greeter --preset daytime sends an RFC 867 line", async () => {
  await using server = await startCli([
    "-H",
    "127.0.0.1",
    "-p",
    "0",
    "--preset",
    "daytime",
  ]);
  const line = await text(server.port);
  assertMatch(
    line,
    /^[A-Z][a-z]+day, [A-Z][a-z]+ \d{1,2}, \d{4} \d\d:\d\d:\d\d-UTC\r\n$/,
  );
});

Deno.test("greeter --preset qotd serves quotes from the file", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "First quote\n%\nSecond\nquote\n%\n");
    await using server = await startCli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--preset",
      "qotd",
      "--quotes-file",
      file,
    ]);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add(await text(server.port));
    assertEquals([...seen].sort(), ["First quote\r\n", "Second\r\nquote\r\n"]);
  } finally {
    await Deno.remove(file);
  }
  const missing = await runCli(["--preset", "qotd"]);
  assertEquals(missing.code, 2);
  assertStringIncludes(
    missing.stderr,
    "--preset qotd needs --quotes-file PATH",
  );
});

Deno.test("greeter answers on every port of a range, each saying which", async () => {
  const first = closedPort();
  const range = `${first}-${first + 4}`;
  let server;
  try {
    server = await startCli([
      "-H",
      "127.0.0.1",
      "-p",
      range,
      "-m",
      "port {local_port}",
    ]);
  } catch {
    return; // Another process took a port of the range meanwhile; rare.
  }
  await using _ = server;
  for (let port = first; port <= first + 4; port++) {
    assertEquals(await text(port), `port ${port}\r\n`);
  }
  const lines = server.stdout().match(/listening for incoming connections/g);
  assertEquals(lines?.length, 5);
});

Deno.test("greeter names the listener that cannot bind and leaves none open", async () => {
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = closedPort();
  const result = await runCli([
    "-H",
    "127.0.0.1",
    "-p",
    String(free),
    "-p",
    String(busy.addr.port),
  ]);
  assertEquals(result.code, 1);
  assertStringIncludes(
    result.stderr,
    `Cannot listen on 127.0.0.1:${busy.addr.port}: the address is already in use`,
  );
  assertEquals(result.stdout, "");
  // The listener that did bind was closed before exit.
  const again = Deno.listen({ hostname: "127.0.0.1", port: free });
  again.close();
});

Deno.test("greeter serves TLS that greeter connect and openssl verify", async () => {
  await withTempDir(async (dir) => {
    const { caFile: ca, certFile: cert, keyFile: key } = await makeCertificates(
      dir,
    );
    await using server = await startCli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--tls-cert",
      cert,
      "--tls-key",
      key,
    ]);
    assertStringIncludes(server.stdout(), "(TLS)");
    const verified = await runCli([
      "connect",
      `localhost:${server.port}`,
      "--tls",
      "--ca",
      ca,
    ]);
    assertEquals(verified, {
      code: 0,
      stdout: "Connection Established\r\n",
      stderr: "",
    });
    const probe = await runCli([
      "check",
      `localhost:${server.port}`,
      "--tls",
      "--ca",
      ca,
    ]);
    assertEquals(probe.code, 0, probe.stdout);
    assertMatch(probe.stdout, /^OK localhost:\d+ sent the expected greeting/);
    const insecure = await runCli([
      "connect",
      `127.0.0.1:${server.port}`,
      "--tls",
      "--insecure",
    ]);
    assertEquals(insecure.stdout, "Connection Established\r\n");
    // Without the CA the certificate is not trusted.
    const untrusted = await runCli([
      "connect",
      `localhost:${server.port}`,
      "--tls",
    ]);
    assertEquals(untrusted.code, 1);
    assertStringIncludes(
      untrusted.stderr,
      "greeter: Cannot connect to localhost:",
    );
    // A client that fails its handshake (it speaks plain text) disturbs no
    // other client; a real TLS client verifies the server too.
    const plain = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await plain.write(new TextEncoder().encode("HELLO\r\n\r\n"));
    const openssl = await run("openssl", [
      "s_client",
      "-connect",
      `127.0.0.1:${server.port}`,
      "-CAfile",
      ca,
      "-verify_return_error",
      "-servername",
      "localhost",
      "-quiet",
    ], "");
    assertEquals(openssl.stdout, "Connection Established\r\n", openssl.stderr);
    plain.close();
  });
});

/** What a Unix socket needs under deno run. */
const permissions = ["--allow-net", "--allow-read", "--allow-write"];

Deno.test(
  "greeter --unix serves a socket, replaces a stale one, refuses a live one",
  UNIX_SOCKETS,
  async () => {
    await withTempDir(async (dir) => {
      const path = `${dir}/greeter.sock`;
      // A stale socket file: bound by a process that is gone (Python does not
      // remove it on exit).
      const bind = await run("python3", [
        "-c",
        `import socket; socket.socket(socket.AF_UNIX).bind(${
          JSON.stringify(path)
        })`,
      ]);
      assertEquals(bind.code, 0, bind.stderr);
      assert((await Deno.lstat(path)).isSocket);
      const server = await startCli(["--unix", path], { permissions });
      const result = await runCli(["connect", "--unix", path], { permissions });
      assertEquals(result.stdout, "Connection Established\r\n");
      const probe = await runCli(["check", "--unix", path], { permissions });
      assertEquals(probe.code, 0, probe.stdout);
      assertStringIncludes(
        probe.stdout,
        `OK ${path} sent the expected greeting`,
      );
      const live = await runCli(["--unix", path], { permissions });
      assertEquals(live.code, 1);
      assertStringIncludes(live.stderr, "another server is listening on it");
      const { code } = await server.stop();
      assertEquals(code, 0);
      // The socket file is removed on shutdown.
      assertEquals(await Deno.lstat(path).then(() => true, () => false), false);
      await Deno.writeTextFile(path, "not a socket");
      const notSocket = await runCli(["--unix", path], { permissions });
      assertStringIncludes(
        notSocket.stderr,
        "the path exists and is not a socket",
      );
    });
  },
);

Deno.test(
  "greeter on a Unix socket logs its clients and fills in templates",
  UNIX_SOCKETS,
  async () => {
    await withTempDir(async (dir) => {
      const path = `${dir}/greeter.sock`;
      const server = await startCli(
        [
          "--unix",
          path,
          "-m",
          "to [{remote_addr}] on {local_addr}",
          "--log-format",
          "json",
          "--log-rate",
          "0",
        ],
        { permissions },
      );
      const client = await runCli(["connect", "--unix", path], { permissions });
      assertEquals(client.stdout, `to [] on ${path}\r\n`);
      await server.waitFor(/"event.action":"connection"/);
      const { stdout } = await server.stop();
      const connection = stdout.trim().split("\n").map((line) =>
        JSON.parse(line)
      )
        .find((line) => line["event.action"] === "connection");
      assertEquals(connection.message, "Connection received from unix socket");
      assertEquals(connection["network.transport"], "unix");
      assertEquals(
        [connection["server.address"], connection["server.port"]],
        [path, null],
      );
      assertEquals(
        [connection["client.address"], connection["client.port"]],
        [null, null],
      );
      assertEquals(connection["greeter.outcome"], "greeted");
    });
  },
);
