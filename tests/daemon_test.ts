// greeter as a daemon: reload on SIGHUP under load, systemd readiness over
// a real Unix datagram socket, and a Unix socket file that is removed only
// while it is still greeter's. Linux only: POSIX signals, and python3 as an
// independent systemd notification receiver.
import { assert, assertEquals, assertMatch } from "@std/assert";
import {
  canRun,
  closedPort,
  readAll,
  startCli,
  withTempDir,
} from "./_helpers.ts";
import { openssl, run, selfSigned } from "./_tools.ts";

const LINUX = Deno.build.os === "linux";
const HAS_PYTHON = await canRun("python3");
const LOCAL = ["-H", "127.0.0.1", "--port", "0"];
const PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write"];
const decoder = new TextDecoder();

/** Reads everything one connection sends. */
async function fetchText(port: number): Promise<string> {
  return decoder.decode(await readAll(port));
}

Deno.test({
  name:
    "greeter reloads its message file on SIGHUP under load: every greeting whole, old or new",
  ignore: !LINUX,
  async fn() {
    await withTempDir(async (dir) => {
      const file = `${dir}/message.txt`;
      await Deno.writeTextFile(file, "Old greeting\n");
      await using server = await startCli(
        [...LOCAL, "-q", "--message-file", file],
        { permissions: PERMISSIONS },
      );
      const OLD = "Old greeting\r\n";
      const NEW = "New greeting, longer than the old one\r\n";
      // Half before the reload, half after it: thousands each side.
      const total = 6_000;
      const seen: Record<string, number> = {};
      let done = 0;
      let reloadedAt = -1;
      let reloadAsked = false;
      // Each connection notes whether it started after the reload was
      // logged: those must all get the new greeting.
      const afterReload: string[] = [];
      const worker = async () => {
        while (done < total) {
          done++;
          const started = reloadedAt >= 0;
          const text = await fetchText(server.port);
          seen[text] = (seen[text] ?? 0) + 1;
          if (started) afterReload.push(text);
          if (done >= total / 2 && !reloadAsked) {
            reloadAsked = true;
            await Deno.writeTextFile(file, NEW.slice(0, -2) + "\n");
            server.process.kill("SIGHUP");
            await server.waitFor(/^Configuration reloaded$/m);
            reloadedAt = done;
          }
        }
      };
      await Promise.all(Array.from({ length: 50 }, worker));
      assertEquals(
        Object.keys(seen).sort(),
        [NEW, OLD].sort(),
        "only whole greetings",
      );
      assertEquals(seen[OLD] + seen[NEW], total);
      assert(afterReload.length > 1_000, `${afterReload.length} after`);
      assertEquals(afterReload.filter((text) => text !== NEW), []);

      // A broken file on reload: the old greeting stays, the process runs.
      await Deno.writeFile(file, new Uint8Array([0x62, 0x61, 0x64, 0xe9]));
      server.process.kill("SIGHUP");
      await server.waitFor(/^Reload failed, the old configuration stays: /m);
      assertEquals(await fetchText(server.port), NEW);
      const { code, stdout } = await server.stop();
      assertEquals(code, 0);
      assertMatch(
        stdout,
        /Reload failed, the old configuration stays: Message file has byte 0xE9 at offset 3, which is not ascii: use --encoding utf-8 or latin1 \(".*message\.txt"\)\n/,
      );
    });
  },
});

Deno.test({
  name: "greeter --workers 2 reloads every worker on SIGHUP",
  ignore: !LINUX,
  async fn() {
    await withTempDir(async (dir) => {
      const file = `${dir}/message.txt`;
      await Deno.writeTextFile(file, "one\n");
      await using server = await startCli(
        [...LOCAL, "-q", "--workers", "2", "--message-file", file],
        { permissions: [...PERMISSIONS, "--unstable-net"] },
      );
      assertEquals(await fetchText(server.port), "one\r\n");
      await Deno.writeTextFile(file, "two\n");
      server.process.kill("SIGHUP");
      await server.waitFor(/^Configuration reloaded$/m);
      // SO_REUSEPORT spreads clients over both workers: enough of them reach
      // each one.
      const texts = new Set<string>();
      for (let i = 0; i < 40; i++) texts.add(await fetchText(server.port));
      assertEquals([...texts], ["two\r\n"]);
    });
  },
});

/**
 * A systemd stand-in: python3 receives notifications on a Unix datagram
 * socket and, on READY=1, connects to `port` at once to see that greeter
 * really accepts. Prints each datagram, then `accepting:true|false`.
 */
const RECEIVER = `
import socket, sys, json
path, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("bound", flush=True)
s.settimeout(20)
while True:
    data = s.recv(4096).decode()
    line = {"state": data}
    if data.startswith("READY=1") and "accepting" not in globals():
        accepting = True
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=1)
            line["greeting"] = c.recv(100).decode()
            c.close()
        except OSError as e:
            line["greeting"] = repr(e)
    print(json.dumps(line), flush=True)
    if data.startswith("STOPPING=1"):
        break
`;

Deno.test({
  name:
    "greeter tells NOTIFY_SOCKET READY=1 once it accepts, RELOADING=1/READY=1 around a reload, STOPPING=1 at shutdown",
  ignore: !LINUX || !HAS_PYTHON,
  async fn() {
    await withTempDir(async (dir) => {
      const socketPath = `${dir}/notify`;
      const port = closedPort();
      const receiver = new Deno.Command("python3", {
        args: ["-c", RECEIVER, socketPath, String(port)],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const lines = receiver.stdout.pipeThrough(new TextDecoderStream());
      const reader = lines.getReader();
      let buffer = "";
      const nextLine = async () => {
        while (!buffer.includes("\n")) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`receiver ended: ${buffer}`);
          buffer += value;
        }
        const at = buffer.indexOf("\n");
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 1);
        return line;
      };
      try {
        assertEquals(await nextLine(), "bound");
        const server = await startCli(
          ["-H", "127.0.0.1", "--port", String(port), "-q"],
          {
            prefix: ["env", `NOTIFY_SOCKET=${socketPath}`],
            permissions: [
              ...PERMISSIONS,
              "--allow-env=NOTIFY_SOCKET",
              "--allow-sys",
              "--unstable-net",
            ],
          },
        );
        const ready = JSON.parse(await nextLine());
        assertEquals(
          ready.state,
          `READY=1\nSTATUS=Greeting on 127.0.0.1:${port}`,
        );
        assertEquals(ready.greeting, "Connection Established\r\n");
        server.process.kill("SIGHUP");
        const reloading = JSON.parse(await nextLine()).state;
        assertMatch(
          reloading,
          /^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=Reloading$/,
        );
        assertEquals(
          JSON.parse(await nextLine()).state,
          `READY=1\nSTATUS=Greeting on 127.0.0.1:${port}`,
        );
        const { code } = await server.stop("SIGTERM");
        assertEquals(code, 0);
        assertEquals(
          JSON.parse(await nextLine()).state,
          "STOPPING=1\nSTATUS=Draining",
        );
      } finally {
        reader.releaseLock();
        await receiver.stdout.cancel().catch(() => {});
        try {
          receiver.kill();
        } catch {
          // Already gone.
        }
        await receiver.status;
      }
    });
  },
});

Deno.test({
  name:
    "greeter leaves a Unix socket file alone at exit once another server has bound the path",
  ignore: !LINUX || !HAS_PYTHON,
  async fn() {
    await withTempDir(async (dir) => {
      const path = `${dir}/greeter.sock`;
      const server = await startCli(["--unix", path, "-q"], {
        permissions: PERMISSIONS,
      });
      // Another server takes the path over: greeter's file is replaced.
      await Deno.remove(path);
      const other = Deno.listen({ transport: "unix", path });
      try {
        const { ino } = await Deno.lstat(path);
        const { code } = await server.stop();
        assertEquals(code, 0);
        assertEquals(
          (await Deno.lstat(path)).ino,
          ino,
          "the other socket stays",
        );
        // And it still works.
        const accepted = other.accept();
        const client = await Deno.connect({ transport: "unix", path });
        (await accepted).close();
        client.close();
      } finally {
        other.close();
      }
    });
    // Without a takeover, greeter removes its own file.
    await withTempDir(async (dir) => {
      const path = `${dir}/greeter.sock`;
      const server = await startCli(["--unix", path, "-q"], {
        permissions: PERMISSIONS,
      });
      await server.stop();
      const gone = await Deno.lstat(path).then(() => false, () => true);
      assert(gone, "greeter's own socket file is removed");
    });
  },
});

Deno.test({
  name:
    "greeter goes on serving when its stdout closes, counts every lost line and warns once",
  ignore: !LINUX,
  async fn() {
    const process = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--unstable-net",
        "--allow-net",
        new URL("../main.ts", import.meta.url).pathname,
        ...LOCAL,
        "--log-rate",
        "0",
        "--metrics",
        "127.0.0.1:0",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = process.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    try {
      // Read the two start lines, then close the pipe, as `| head -2` would.
      const reader = process.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      let text = "";
      while ((text.match(/\n/g) ?? []).length < 2) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stdout ended: ${text}`);
        text += value;
      }
      await reader.cancel();
      const port = Number(/on 127\.0\.0\.1:(\d+)\n/.exec(text)![1]);
      const metrics = Number(/127\.0\.0\.1:(\d+)\/metrics/.exec(text)![1]);
      for (let i = 0; i < 1_000; i++) {
        assertEquals(await fetchText(port), "Connection Established\r\n");
      }
      // Every connection line is lost, and counted: no more, no fewer.
      let dropped = -1;
      for (let tries = 0; tries < 100 && dropped !== 1_000; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const body = await (await fetch(`http://127.0.0.1:${metrics}/metrics`))
          .text();
        dropped = Number(
          /^greeter_log_lines_dropped_total (\d+)$/m.exec(body)?.[1] ?? -1,
        );
      }
      assertEquals(dropped, 1_000);
    } finally {
      process.kill("SIGTERM");
      const { code } = await process.status;
      let errors = "";
      while (true) {
        const { value, done } = await stderr.read();
        if (done) break;
        errors += value;
      }
      assertEquals(code, 0);
      const warnings = errors.match(
        /^greeter: warning: cannot write the log/gm,
      );
      assertEquals(warnings?.length, 1, errors);
    }
  },
});

const HAS_PRLIMIT = await canRun("prlimit", ["--version"]);

Deno.test({
  name:
    "greeter lowers --max-connections to fit the open-file limit and says so once",
  ignore: !LINUX || !HAS_PRLIMIT,
  async fn() {
    // Deno 2.9 reads the limit (/proc/self/limits) only with --allow-all.
    await using server = await startCli([...LOCAL, "-q"], {
      prefix: ["prlimit", "--nofile=256:256"],
      permissions: ["--allow-all"],
    });
    assertEquals(await fetchText(server.port), "Connection Established\r\n");
    const { code, stderr } = await server.stop();
    assertEquals(code, 0);
    assertEquals(
      stderr.match(/^greeter: warning: --max-connections .*$/gm),
      [
        "greeter: warning: --max-connections 10000 does not fit in the limit " +
        "of 256 open files; serving at most 192 at once. Raise the limit " +
        "(ulimit -n, or LimitNOFILE= in the systemd unit) to serve more",
      ],
    );
  },
});

const HAS_OPENSSL = await canRun("openssl", ["version"]);

/** The serial of the certificate the server at `port` presents, by openssl. */
async function servedSerial(port: number): Promise<string> {
  // s_client exits 0 or 1 with a self-signed certificate: its text is what
  // counts.
  const session = (await run(
    "openssl",
    ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost"],
    "",
  )).stdout;
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/
    .exec(session)?.[0];
  if (!pem) throw new Error(`no certificate from s_client: ${session}`);
  return (await openssl(["x509", "-noout", "-serial"], pem)).trim();
}

Deno.test({
  name:
    "greeter serves a renewed TLS certificate after SIGHUP, and keeps the old one when the new pair is bad",
  ignore: !LINUX || !HAS_OPENSSL,
  async fn() {
    await withTempDir(async (dir) => {
      await selfSigned(dir, 0x1111);
      await using server = await startCli(
        [
          ...LOCAL,
          "-q",
          "--tls-cert",
          `${dir}/cert.pem`,
          "--tls-key",
          `${dir}/key.pem`,
        ],
        { permissions: PERMISSIONS },
      );
      assertEquals(await servedSerial(server.port), "serial=1111");
      await selfSigned(dir, 0x2222);
      server.process.kill("SIGHUP");
      await server.waitFor(/^Configuration reloaded$/m);
      assertEquals(await servedSerial(server.port), "serial=2222");
      // A key that is not the certificate's: refused, the old pair stays.
      const good = await Deno.readTextFile(`${dir}/key.pem`);
      await selfSigned(dir, 0x3333);
      await Deno.writeTextFile(`${dir}/key.pem`, good);
      server.process.kill("SIGHUP");
      await server.waitFor(/^Reload failed, the old configuration stays: /m);
      assertEquals(await servedSerial(server.port), "serial=2222");
    });
  },
});

Deno.test({
  name:
    "greeter re-reads --deny-file on SIGHUP, keeping the listeners and refusing from then on",
  ignore: !LINUX,
  async fn() {
    await withTempDir(async (dir) => {
      const file = `${dir}/deny.txt`;
      await Deno.writeTextFile(file, "# nobody yet\n");
      await using server = await startCli(
        [...LOCAL, "-q", "--deny-file", file],
        { permissions: PERMISSIONS },
      );
      assertEquals(await fetchText(server.port), "Connection Established\r\n");
      await Deno.writeTextFile(file, "# this host\n127.0.0.0/8\n");
      server.process.kill("SIGHUP");
      await server.waitFor(/^Configuration reloaded$/m);
      assertEquals(await fetchText(server.port), "", "refused: no greeting");
      // A bad line keeps the list that works.
      await Deno.writeTextFile(file, "127.0.0.0/8\nnot-a-block\n");
      server.process.kill("SIGHUP");
      const [line] = await server.waitFor(
        /^Reload failed, the old configuration stays: .*$/m,
      );
      assertMatch(line, /Invalid CIDR "not-a-block" at line 2 of --deny-file/);
      assertEquals(await fetchText(server.port), "");
    });
  },
});
