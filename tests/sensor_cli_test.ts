// The sensor on the command line, against real clients (curl, openssl
// s_client, OpenSSH, nc, nmap -sV): early talkers and what they sent; and
// private logs (--log-address truncate|hash) over thousands of connections
// from many 127.x.y.z addresses, with a key rotated by SIGHUP.
import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import net from "node:net";
import { createHmac } from "node:crypto";
import {
  canRun,
  pool,
  POSIX_SIGNALS,
  runCli,
  startCli,
  waitUntil,
  withTempDir,
} from "./_helpers.ts";
import { run, SSH_TEST_OPTIONS } from "./_tools.ts";

const tools = {
  curl: await canRun("curl"),
  openssl: await canRun("openssl", ["version"]),
  ssh: await canRun("ssh", ["-V"]),
  nc: await canRun("nc", ["-h"]),
  nmap: await canRun("nmap"),
};
const missing = Object.entries(tools).filter(([, ok]) => !ok).map(([name]) =>
  name
);

// deno-lint-ignore no-explicit-any
type Line = Record<string, any>;

function connectionLines(stdout: string): Line[] {
  return stdout.split("\n").filter((line) => line.includes('"connection"'))
    .map((line) => JSON.parse(line)).filter((line) =>
      line["event.action"] === "connection"
    );
}

Deno.test({
  name:
    `greeter --greet-pause 500ms --capture 256 names curl, openssl s_client, ssh and nmap -sV as early talkers, and greets nc${
      missing.length ? ` (skipped: ${missing.join(", ")} missing)` : ""
    }`,
  ignore: missing.length > 0 || POSIX_SIGNALS.ignore,
  async fn() {
    await using server = await startCli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--greet-pause",
      "500ms",
      "--capture",
      "256",
      "--log-format",
      "json",
      "--log-rate",
      "0",
    ]);
    const port = String(server.port);
    const count = () => connectionLines(server.stdout()).length;
    const last = async (before: number) => {
      await waitUntil(() => count() > before, 5_000, "a connection line");
      return connectionLines(server.stdout())[before];
    };

    let before = count();
    const curl = await run("curl", [
      "-s",
      "-m",
      "5",
      "-A",
      "greeter-test/1",
      `http://127.0.0.1:${port}/probe?q=1`,
    ]);
    assertEquals(curl.stdout, "", "refused: no greeting");
    let line = await last(before);
    assertEquals(line["greeter.early_talker"], true);
    assertEquals(line["greeter.outcome"], "refused");
    assertEquals(line["greeter.reason"], "early_talker");
    assertEquals(line["greeter.probe.kind"], "http");
    assertEquals(line["http.request.method"], "GET");
    assertEquals(line["url.path"], "/probe");
    assertEquals(line["url.query"], "q=1");
    assertEquals(line["http.version"], "1.1");
    assertEquals(line["user_agent.original"], "greeter-test/1");
    assertMatch(
      line["greeter.capture.text"],
      /^GET \/probe\?q=1 HTTP\/1\.1\\r\\n/,
    );

    before = count();
    await run("timeout", [
      "5",
      "openssl",
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-servername",
      "example.test",
    ], "");
    line = await last(before);
    assertEquals(line["greeter.early_talker"], true);
    assertEquals(line["greeter.probe.kind"], "tls");
    assertEquals(line["tls.client.server_name"], "example.test");
    assertEquals(line["greeter.capture.bytes"], 256);
    assertEquals(atob(line["greeter.capture.base64"]).charCodeAt(0), 0x16);

    before = count();
    await run("timeout", [
      "10",
      "ssh",
      ...SSH_TEST_OPTIONS,
      "-p",
      port,
      "nobody@127.0.0.1",
      "true",
    ]);
    line = await last(before);
    assertEquals(line["greeter.early_talker"], true);
    assertEquals(line["greeter.probe.kind"], "ssh");
    assertMatch(line["greeter.probe.version"], /^SSH-2\.0-OpenSSH_/);

    // nc waits for the server: greeted after the pause, not early.
    before = count();
    const nc = await run("timeout", ["5", "nc", "-d", "127.0.0.1", port]);
    assertEquals(nc.stdout, "Connection Established\r\n");
    line = await last(before);
    assertEquals(line["greeter.early_talker"], false);
    assertEquals(line["greeter.outcome"], "greeted");
    assertEquals(line["greeter.capture.bytes"], 0);
    assertEquals("greeter.probe.kind" in line, false);

    // telnet waits too (to a port other than 23 it negotiates nothing).
    if (await canRun("sh", ["-c", "command -v telnet"])) {
      before = count();
      const telnet = await run("sh", [
        "-c",
        `sleep 1.5 | timeout 5 telnet 127.0.0.1 ${port}`,
      ]);
      // telnet prints the line in its own line ending.
      assertStringIncludes(telnet.stdout, "\nConnection Established");
      line = await last(before);
      assertEquals(line["greeter.early_talker"], false);
      assertEquals(line["greeter.outcome"], "greeted");
    }

    // nmap -sV: its NULL probe waits and is greeted; its other probes
    // (HTTP, TLS, RDP, SMB, ...) talk first.
    before = count();
    const nmap = await run("nmap", [
      "-sV",
      "-Pn",
      "-n",
      "-p",
      port,
      "--host-timeout",
      "15s",
      "127.0.0.1",
    ]);
    assertEquals(nmap.code, 0, nmap.stderr);
    await waitUntil(() => count() > before + 10, 5_000, "nmap's probes");
    await new Promise((resolve) => setTimeout(resolve, 700));
    const probes = connectionLines(server.stdout()).slice(before);
    const kinds = new Set(
      probes.filter((l) => l["greeter.early_talker"]).map((l) =>
        l["greeter.probe.kind"]
      ),
    );
    for (const kind of ["http", "tls", "rdp", "smb", "unknown"]) {
      assert(kinds.has(kind), `nmap's ${kind} probe in ${[...kinds]}`);
    }
    assert(
      probes.some((l) =>
        !l["greeter.early_talker"] && l["greeter.outcome"] === "greeted"
      ),
      "nmap's NULL probe greeted",
    );
    const { code, stdout } = await server.stop();
    assertEquals(code, 0);
    // No raw control byte in any line (a tab at most).
    // deno-lint-ignore no-control-regex
    assert(!stdout.split("\n").some((l) => /[\x00-\x08\x0a-\x1f]/.test(l)));
  },
});

Deno.test("greeter refuses sensor and private-log flags that cannot work, with one line each", async () => {
  await withTempDir(async (dir) => {
    const short = `${dir}/short.key`;
    await Deno.writeTextFile(short, "too short");
    const cases: [string[], string][] = [
      [
        ["--early-talkers", "greet"],
        "greeter: --early-talkers goes with --greet-pause DURATION",
      ],
      [
        ["--greet-pause", "500ms", "--early-talkers", "maybe"],
        'greeter: Invalid value "maybe" for --early-talkers',
      ],
      [
        ["--greet-pause", "10s"],
        "greeter: --greet-pause 10s is not shorter than --timeout 10s",
      ],
      [
        ["--tarpit", "--capture", "64"],
        "greeter: --capture cannot be used with --tarpit",
      ],
      [["--capture", "4097"], "greeter: Invalid value"],
      [["--capture", "0"], "greeter: Invalid value"],
      [
        ["--log-address", "hash"],
        "greeter: --log-address hash needs --log-key-file PATH",
      ],
      [
        ["--log-key-file", short],
        "greeter: --log-key-file goes with --log-address hash",
      ],
      [
        ["--log-address", "hash", "--log-key-file", short],
        `greeter: The log key file "${short}" holds 9 bytes: --log-address hash needs at least 16`,
      ],
      [
        ["--log-address", "hash", "--log-key-file", `${dir}/none`],
        `greeter: Cannot read log key file "${dir}/none": no such file`,
      ],
    ];
    for (const [args, start] of cases) {
      const { code, stdout, stderr } = await runCli([
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        ...args,
      ]);
      assertEquals(code, 2, `${args.join(" ")}: ${stderr}`);
      assertEquals(stdout, "");
      assert(stderr.startsWith(start), `${args.join(" ")}: ${stderr}`);
      assertEquals(stderr.trim().split("\n").length, 1, stderr);
    }
  });
});

/** Connects from `localAddress`, reads to the end, closes; its local port. */
function visit(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress });
    let localPort = 0;
    socket.on("connect", () => localPort = socket.localPort ?? 0);
    socket.setTimeout(5_000, () => socket.destroy(new Error("timeout")));
    socket.on("data", () => {});
    socket.on("end", () => socket.end());
    socket.on("close", () => resolve(localPort));
    socket.on("error", reject);
  });
}

/** 60 client addresses across 127.1.0.0/16 and 127.2.0.0/16, none a .0. */
const ADDRESSES = Array.from(
  { length: 60 },
  (_, i) => `127.${1 + (i % 2)}.${i % 3}.${10 + i}`,
);
const ANY_CLIENT = new RegExp(
  `(^|[^\\d.])(${
    ADDRESSES.map((a) => a.replaceAll(".", "\\.")).join("|")
  })($|[^\\d])`,
);

function token(key: Uint8Array, address: string): string {
  const bytes = Uint8Array.from(address.split(".").map(Number));
  return createHmac("sha256", key).update(bytes).digest("hex").slice(0, 16);
}

Deno.test({
  name:
    "greeter --log-address truncate logs no client address of 3,000 connections from 60 addresses",
  ...POSIX_SIGNALS,
  async fn() {
    await using server = await startCli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--log-address",
      "truncate",
      "--log-format",
      "json",
      "--log-rate",
      "20",
    ]);
    const ports = await pool(
      3_000,
      64,
      (i) => visit(server.port, ADDRESSES[i % ADDRESSES.length]),
    );
    // Each line is written as its connection closes; stopping flushes.
    const { code, stdout } = await server.stop();
    assertEquals(code, 0);
    const lines = stdout.trim().split("\n");
    const portSet = new Set(ports.map(String));
    let connections = 0;
    let suppressed = 0;
    for (const text of lines) {
      assert(!ANY_CLIENT.test(text), text);
      const line = JSON.parse(text);
      if (line["event.action"] === "connection") {
        connections++;
        assertMatch(line["client.address"], /^127\.[12]\.[0-2]\.0\/24$/);
        assertEquals(line["client.port"], null);
        assert(!portSet.has(String(line["client.port"])));
      }
      if (line["event.action"] === "suppressed") {
        suppressed += line["greeter.suppressed.count"];
        const source = line["greeter.suppressed.source"];
        if (source !== null) assertMatch(source, /^127\.[12]\.[0-2]\.0\/24$/);
      }
    }
    // Every connection is a line or counted in a summary.
    assertEquals(connections + suppressed, 3_000);
    assert(suppressed > 0, "the flood limit summarized some");
  },
});

Deno.test({
  name:
    "greeter --log-address hash gives one token per address under a key, new tokens after SIGHUP with a new key",
  ...POSIX_SIGNALS,
  async fn() {
    await withTempDir(async (dir) => {
      const keyFile = `${dir}/log.key`;
      const key1 = crypto.getRandomValues(new Uint8Array(32));
      const key2 = crypto.getRandomValues(new Uint8Array(32));
      await Deno.writeFile(keyFile, key1);
      await using server = await startCli([
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "--log-address",
        "hash",
        "--log-key-file",
        keyFile,
        "--capture",
        "16",
        "--log-rate",
        "0",
        "--log-timestamps",
        "off",
      ], { permissions: ["--allow-net", "--allow-read"] });
      await pool(
        2_000,
        64,
        (i) => visit(server.port, ADDRESSES[i % ADDRESSES.length]),
      );
      await waitUntil(
        () => server.stdout().split("\n").length > 2_000,
        5_000,
        "2,000 connection lines",
      );
      await Deno.writeFile(keyFile, key2);
      server.process.kill("SIGHUP");
      await server.waitFor(/Configuration reloaded/);
      await pool(60, 16, (i) => visit(server.port, ADDRESSES[i]));
      await waitUntil(
        () => server.stdout().split("\n").length > 2_060,
        5_000,
        "60 more lines",
      );
      const { code, stdout } = await server.stop();
      assertEquals(code, 0);
      const before = new Map(ADDRESSES.map((a) => [token(key1, a), a]));
      const after = new Map(ADDRESSES.map((a) => [token(key2, a), a]));
      const counts = new Map<string, number>();
      let reloaded = false;
      for (const text of stdout.trim().split("\n")) {
        assert(!ANY_CLIENT.test(text), text);
        if (text === "Configuration reloaded") reloaded = true;
        const match = /^Connection received from (\S+) /.exec(text);
        if (!match) continue;
        // One line per connection, the port dropped, nothing raw.
        assertMatch(
          text,
          /^Connection received from [0-9a-f]{16} outcome=greeted early_talker=no captured=""$/,
        );
        const map = reloaded ? after : before;
        assert(map.has(match[1]), `token ${match[1]} of no address`);
        counts.set(match[1], (counts.get(match[1]) ?? 0) + 1);
      }
      // Under each key every address always gave its one token, and the
      // tokens of the two keys differ.
      ADDRESSES.forEach((address, i) => {
        assertEquals(
          counts.get(token(key1, address)),
          Math.floor(2_000 / 60) + (i < 2_000 % 60 ? 1 : 0),
          address,
        );
        assertEquals(counts.get(token(key2, address)), 1, address);
        assert(token(key1, address) !== token(key2, address));
      });
    });
  },
});
