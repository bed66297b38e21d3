// Socket activation (LISTEN_FDS) and inetd mode (--inetd), under the real
// hosts: systemd-socket-activate, tcpserver, socat, xinetd. Loopback only;
// every host is stopped at the end of its test. A test whose host is not
// installed says so in its name and is skipped.
import { assert, assertEquals, assertMatch } from "@std/assert";
import {
  canRun,
  closedPort,
  DEFAULT_BYTES,
  MAIN,
  ROOT,
  runCli,
} from "./_helpers.ts";
import { INETD_VARIABLES } from "../lib/cli/commands/inetd.ts";
import {
  LISTEN_VARIABLES,
  readPassedSockets,
} from "../lib/cli/socket_activation.ts";
import { BINARY_FLAGS } from "../scripts/permissions.ts";
import { makeCertificates } from "./_tools.ts";
import { UsageError } from "../lib/cli/flags.ts";
import { assertThrows } from "@std/assert";

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const DENO = Deno.execPath();
// --unstable-net: greeters side by side share the SIGUSR1 guard on 9229.
const PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-env",
  "--unstable-net",
];
/** greeter as a host runs it: deno run main.ts, then the arguments. */
const GREETER = [DENO, "run", "--no-prompt", ...PERMISSIONS, MAIN];
const TEMPLATE = "{remote_addr}:{remote_port}";

const [activate, tcpserver, socat, xinetd] = await Promise.all([
  canRun("systemd-socket-activate", ["--help"]),
  canRun("sh", ["-c", "command -v tcpserver"]),
  canRun("socat", ["-V"]),
  canRun("sh", ["-c", "command -v xinetd"]),
]);
const skip = (tool: string, present: boolean) =>
  present ? "" : ` (skipped: ${tool} is not installed)`;

/** A host process: its stderr so far, and a clean stop. */
interface Host extends AsyncDisposable {
  /** The host's pid (greeter's, once systemd-socket-activate execs it). */
  pid: number;
  stderr(): string;
  kill(signal: Deno.Signal): void;
  waitFor(pattern: RegExp, ms?: number): Promise<void>;
  stop(): Promise<{ code: number; stderr: string }>;
}

/** Starts `command args` and waits until its stderr matches `ready`. */
async function startHost(
  command: string,
  args: string[],
  ready: RegExp,
  env: Record<string, string> = {},
): Promise<Host> {
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
  let stderr = "";
  const pump = (async () => {
    for await (
      const text of child.stderr.pipeThrough(new TextDecoderStream())
    ) {
      stderr += text;
    }
  })();
  let exited = false;
  const status = child.status.then((status) => {
    exited = true;
    return status;
  });
  async function waitFor(pattern: RegExp, ms = 8_000) {
    const deadline = Date.now() + ms;
    while (!pattern.test(stderr)) {
      if (exited || Date.now() > deadline) {
        throw new Error(`Waiting for ${pattern}; stderr: ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  let stopped: Promise<{ code: number; stderr: string }> | undefined;
  function stop() {
    stopped ??= (async () => {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch {
          // Gone already.
        }
      }
      const { code } = await status;
      await pump;
      return { code, stderr };
    })();
    return stopped;
  }
  try {
    await waitFor(ready);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    pid: child.pid,
    stderr: () => stderr,
    kill: (signal) => child.kill(signal),
    waitFor,
    stop,
    [Symbol.asyncDispose]: async () => void await stop(),
  };
}

/**
 * Reads `conn` until the server closes it (10 s at most: a first client
 * under a host waits for greeter to start, slow on a loaded machine), then
 * closes it: the text received.
 */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  let text = "";
  const deadline = setTimeout(() => conn.close(), 10_000);
  try {
    const buffer = new Uint8Array(4096);
    for (let n; (n = await conn.read(buffer)) !== null;) {
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  } finally {
    clearTimeout(deadline);
    try {
      conn.close();
    } catch {
      // Closed by the deadline.
    }
  }
  return text;
}

/** Connects, reads until the server closes; the text and the client's port. */
async function greet(port: number): Promise<{ text: string; from: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const from = conn.localAddr.port;
  return { text: await readToEnd(conn), from };
}

Deno.test({
  name: "socket activation serves the socket systemd-socket-activate passes" +
    skip("systemd-socket-activate", activate),
  ignore: !activate,
  async fn() {
    const port = closedPort();
    await using host = await startHost(
      "systemd-socket-activate",
      [
        `--listen=127.0.0.1:${port}`,
        ...GREETER,
        "--linger",
        "0",
        "--port",
        "1",
      ],
      /Listening on 127\.0\.0\.1:\d+ as 3/,
    );
    // greeter starts on the first client, which gets the exact greeting;
    // --port 1 is replaced by the passed socket.
    const first = await greet(port);
    assertEquals(encoder.encode(first.text), DEFAULT_BYTES);
    for (let i = 0; i < 20; i++) {
      assertEquals((await greet(port)).text, "Connection Established\r\n");
    }
    // A client that ends its side at once still gets all of it (node's own
    // stream in Deno 2.9.6 would fail that write with EPIPE).
    for (let i = 0; i < 5; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.closeWrite();
      assertEquals(await readToEnd(conn), "Connection Established\r\n");
    }
    const { stderr } = await host.stop();
    assertMatch(stderr, /Execing .*deno/);
  },
});

Deno.test({
  name: "socket activation routes the socket named metrics to --metrics" +
    skip("systemd-socket-activate", activate),
  ignore: !activate,
  async fn() {
    const [greeting, metrics] = [closedPort(), closedPort()];
    await using host = await startHost(
      "systemd-socket-activate",
      [
        `--listen=127.0.0.1:${greeting}`,
        `--listen=127.0.0.1:${metrics}`,
        "--fdname=greeting:metrics",
        ...GREETER,
        "--message",
        TEMPLATE,
        "--linger",
        "0",
      ],
      /Listening on 127\.0\.0\.1:\d+ as 4/,
    );
    const { text, from } = await greet(greeting);
    assertEquals(text, `127.0.0.1:${from}\r\n`);
    const response = await fetch(`http://127.0.0.1:${metrics}/metrics`);
    const body = await response.text();
    assertEquals(response.status, 200);
    assertMatch(body, /^greeter_connections_accepted_total 1$/m);
    const health = await fetch(`http://127.0.0.1:${metrics}/healthz`);
    assertEquals([health.status, await health.text()], [200, "ok\n"]);
    await host.stop();
  },
});

Deno.test({
  name:
    "socket activation keeps the cap, reads PROXY headers and reloads on SIGHUP" +
    skip("systemd-socket-activate", activate),
  ignore: !activate,
  async fn() {
    const port = closedPort();
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/message`, "first {remote_addr}");
      await using host = await startHost(
        "systemd-socket-activate",
        [
          `--listen=127.0.0.1:${port}`,
          ...GREETER,
          "--message-file",
          `${dir}/message`,
          "--max-connections",
          "1",
          "--linger",
          "5s",
          "--proxy-protocol",
          "--proxy-from",
          "127.0.0.1/32",
        ],
        /Listening on/,
      );
      const proxied = async (client: string) => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(
          encoder.encode(`PROXY TCP4 ${client} 127.0.0.1 5555 23\r\n`),
        );
        return conn;
      };
      const readLine = async (conn: Deno.Conn) => {
        const buffer = new Uint8Array(256);
        const n = await conn.read(buffer);
        return decoder.decode(buffer.subarray(0, n ?? 0));
      };
      // The one place is held by a lingering client: the next one waits.
      const first = await proxied("192.0.2.7");
      assertEquals(await readLine(first), "first 192.0.2.7\r\n");
      // Clients over the cap wait in the kernel's backlog, not inside
      // greeter. (The runtime takes the connections already waiting when it
      // next looks, the second client here, then stops until greeter asks:
      // the 50 after it hold no descriptor of greeter's.)
      // Through ls: Deno 2.9 reads /proc only under --allow-all.
      const descriptors = async () => {
        const { stdout } = await new Deno.Command("ls", {
          args: [`/proc/${host.pid}/fd`],
        }).output();
        return new TextDecoder().decode(stdout).trim().split(/\s+/).length;
      };
      const second = await proxied("192.0.2.8");
      const waiting = readLine(second);
      const early = await Promise.race([
        waiting,
        new Promise((resolve) => setTimeout(() => resolve("waits"), 300)),
      ]);
      assertEquals(early, "waits");
      const before = await descriptors();
      const more = await Promise.all(
        Array.from({ length: 50 }, () => proxied("192.0.2.10")),
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      assertEquals(
        (await descriptors()) - before,
        0,
        "descriptors for waiting clients",
      );
      for (const conn of more) conn.close();
      first.close();
      assertEquals(await waiting, "first 192.0.2.8\r\n");
      second.close();
      // systemd-socket-activate became greeter (exec): SIGHUP reloads it.
      await Deno.writeTextFile(`${dir}/message`, "second {remote_addr}");
      host.kill("SIGHUP");
      const deadline = Date.now() + 3_000;
      let text = "";
      while (!text.startsWith("second") && Date.now() < deadline) {
        const conn = await proxied("192.0.2.9");
        text = await readLine(conn);
        conn.close();
      }
      assertEquals(text, "second 192.0.2.9\r\n");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "socket activation serves a passed Unix socket, even to a client that ended its side" +
    skip("systemd-socket-activate", activate),
  ignore: !activate,
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/greeter.sock`;
    try {
      await using _host = await startHost(
        "systemd-socket-activate",
        [`--listen=${path}`, ...GREETER, "--linger", "0"],
        /Listening on/,
      );
      for (let i = 0; i < 3; i++) {
        const conn = await Deno.connect({ transport: "unix", path });
        await conn.closeWrite();
        assertEquals(await readToEnd(conn), "Connection Established\r\n");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const openssl = await canRun("openssl", ["version"]);
Deno.test({
  name:
    "socket activation with --tls-cert serves TLS on a passed TCP socket and plain text on a passed Unix socket" +
    skip("systemd-socket-activate", activate) + skip("openssl", openssl),
  ignore: !activate || !openssl,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const { ca, certFile, keyFile } = await makeCertificates(dir);
      const port = closedPort();
      const path = `${dir}/greeter.sock`;
      await using _host = await startHost(
        "systemd-socket-activate",
        [
          `--listen=127.0.0.1:${port}`,
          `--listen=${path}`,
          ...GREETER,
          "--tls-cert",
          certFile,
          "--tls-key",
          keyFile,
        ],
        /Listening on/,
      );
      // As with --unix: Unix sockets stay plain.
      const plain = await Deno.connect({ transport: "unix", path });
      assertEquals(await readToEnd(plain), "Connection Established\r\n");
      for (let i = 0; i < 2; i++) {
        const tls = await Deno.connectTls({
          hostname: "127.0.0.1",
          port,
          caCerts: [ca],
        });
        assertEquals(await readToEnd(tls), "Connection Established\r\n");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "socket activation recovers when a burst runs greeter out of descriptors" +
    skip("systemd-socket-activate", activate),
  ignore: !activate,
  async fn() {
    const port = closedPort();
    const quoted = [
      "systemd-socket-activate",
      `--listen=127.0.0.1:${port}`,
      ...GREETER,
      "--max-connections",
      "20",
      "--linger",
      "0",
    ].map((word) => `'${word}'`).join(" ");
    // 128 descriptors: a burst of 300 clients is more than greeter can hold.
    await using _host = await startHost(
      "sh",
      ["-c", `ulimit -n 128 && exec ${quoted}`],
      /Listening on/,
    );
    const burst = await Promise.all(
      Array.from(
        { length: 300 },
        () => Deno.connect({ hostname: "127.0.0.1", port }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const conn of burst) conn.close();
    // Once they are gone, greeter accepts again.
    assertEquals((await greet(port)).text, "Connection Established\r\n");
  },
});

Deno.test({
  name: "socket activation refuses --workers with one usage line" +
    skip("systemd-socket-activate", activate),
  ignore: !activate,
  async fn() {
    const port = closedPort();
    await using host = await startHost(
      "systemd-socket-activate",
      [`--listen=127.0.0.1:${port}`, ...GREETER, "--workers", "2"],
      /Listening on/,
    );
    await greet(port).catch(() => undefined);
    await host.waitFor(/greeter: --workers/);
    const { stderr } = await host.stop();
    const lines = stderr.split("\n").filter((line) => /^greeter:/.test(line));
    assertEquals(lines, [
      "greeter: --workers cannot be used with socket activation: the passed " +
      "sockets are served by one thread; drop --workers, or run one greeter " +
      "per socket",
    ]);
  },
});

/** Runs greeter with the LISTEN_* variables a shell sets for its own pid. */
async function withListenEnv(
  env: string,
  args: string[],
  redirect = "",
): Promise<{ code: number; stdout: string; stderr: string }> {
  const quoted = [...GREETER, ...args].map((word) => `'${word}'`).join(" ");
  const output = await new Deno.Command("sh", {
    args: ["-c", `${env} exec ${quoted} ${redirect}`],
    stdin: "null",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(10_000),
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("socket activation rejects LISTEN_FDS=abc with one line, exit 2", async () => {
  const result = await withListenEnv(
    "LISTEN_FDS=abc LISTEN_PID=$$",
    ["--host", "127.0.0.1", "--port", "0"],
  );
  assertEquals(result.code, 2);
  assertEquals(
    result.stderr,
    'greeter: Invalid LISTEN_FDS "abc": expected the number of sockets ' +
      "passed from descriptor 3 (0 to 1024)\n",
  );
});

Deno.test("socket activation says fd 3 is a regular file in one line, exit 1", async () => {
  const result = await withListenEnv(
    "LISTEN_FDS=1 LISTEN_PID=$$",
    [],
    `3<'${MAIN}'`,
  );
  assertEquals(result.code, 1);
  assertEquals(
    result.stderr,
    "greeter: Cannot listen on file descriptor 3: it is not a listening " +
      "TCP or Unix stream socket; pass sockets of ListenStream= (LISTEN_FDS " +
      "counts those from descriptor 3 on)\n",
  );
  assertEquals(result.stdout, "");
});

Deno.test("socket activation with --socket-activation rejects another process's LISTEN_PID, exit 2", async () => {
  const result = await withListenEnv("LISTEN_FDS=1 LISTEN_PID=1", [
    "--socket-activation",
  ]);
  assertEquals(result.code, 2);
  assertMatch(
    result.stderr,
    /^greeter: --socket-activation: the sockets in LISTEN_FDS are not for greeter \(LISTEN_PID is 1, not greeter's process \d+\); start greeter directly from the service manager, with exec in any wrapper script\n$/,
  );
});

Deno.test("socket activation without the flag ignores another process's sockets, saying so once", async () => {
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `LISTEN_FDS=1 LISTEN_PID=1 exec ${
        GREETER.map((w) => `'${w}'`).join(" ")
      } --host 127.0.0.1 --port 0`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let stdout = "";
  let stopped = false;
  const deadline = setTimeout(() => child.kill("SIGKILL"), 8_000);
  for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += text;
    if (
      !stopped &&
      /listening for incoming connections on 127\.0\.0\.1:\d+/.test(stdout)
    ) {
      stopped = true;
      child.kill("SIGTERM");
    }
  }
  clearTimeout(deadline);
  const { code } = await child.status;
  assertEquals(code, 0, stdout);
  assertMatch(
    await stderr,
    /^greeter: warning: LISTEN_FDS is ignored: LISTEN_PID is 1, not greeter's process \d+ \(the sockets are another process's, as sd_listen_fds decides\)$/m,
  );
});

Deno.test("socket activation with --socket-activation and no LISTEN_FDS is one usage line", async () => {
  const result = await runCli(["--socket-activation"], {
    permissions: PERMISSIONS,
  });
  assertEquals(result.code, 2);
  assertEquals(
    result.stderr,
    "greeter: --socket-activation: no socket was passed (LISTEN_FDS is not " +
      "set); start greeter from a systemd .socket unit or " +
      "systemd-socket-activate, or drop --socket-activation\n",
  );
});

Deno.test("readPassedSockets reads the protocol as sd_listen_fds does", () => {
  const pid = 4242;
  const read = (env: Record<string, string>, forced = false) =>
    readPassedSockets(env, pid, forced);
  assertEquals(read({}), undefined);
  assertEquals(read({ LISTEN_FDS: "2", LISTEN_PID: "4242" }), {
    greeting: [3, 4],
  });
  assertEquals(
    read({
      LISTEN_FDS: "3",
      LISTEN_PID: "4242",
      LISTEN_FDNAMES: "a:metrics:b",
    }),
    { greeting: [3, 5], metrics: 4 },
  );
  // Not ours: ignored, or with the flag an error.
  assertEquals(read({ LISTEN_FDS: "1", LISTEN_PID: "1" }), undefined);
  assertEquals(read({ LISTEN_FDS: "1" }), undefined);
  assertEquals(read({ LISTEN_FDS: "1" }, true), { greeting: [3] });
  assertEquals(read({ LISTEN_FDS: "0", LISTEN_PID: "4242" }), undefined);
  for (
    const [env, message] of [
      [{ LISTEN_FDS: "abc", LISTEN_PID: "4242" }, /Invalid LISTEN_FDS "abc"/],
      [{ LISTEN_FDS: "1", LISTEN_PID: "x" }, /Invalid LISTEN_PID "x"/],
      [
        { LISTEN_FDS: "2", LISTEN_PID: "4242", LISTEN_FDNAMES: "a" },
        /1 name for 2 sockets/,
      ],
      [
        {
          LISTEN_FDS: "2",
          LISTEN_PID: "4242",
          LISTEN_FDNAMES: "metrics:metrics",
        },
        /two sockets "metrics"/,
      ],
      [
        { LISTEN_FDS: "1", LISTEN_PID: "4242", LISTEN_FDNAMES: "metrics" },
        /pass one more for the greetings/,
      ],
    ] as const
  ) {
    assertThrows(() => read(env), UsageError, undefined);
    try {
      read(env);
    } catch (error) {
      assertMatch((error as Error).message, message);
    }
  }
});

Deno.test("takePassedSockets unsets LISTEN_* so that no child takes them", async () => {
  const script = `
    import { takePassedSockets } from "${ROOT}/lib/cli/socket_activation.ts";
    const passed = takePassedSockets(false);
    console.log(JSON.stringify({ passed, left: ["LISTEN_FDS", "LISTEN_PID",
      "LISTEN_FDNAMES"].map((name) => Deno.env.get(name) ?? null) }));`;
  const output = await new Deno.Command("sh", {
    args: [
      "-c",
      `LISTEN_FDS=1 LISTEN_PID=$$ LISTEN_FDNAMES=x exec '${DENO}' eval --no-prompt --allow-env "$0"`,
      script,
    ],
    stdin: "null",
  }).output();
  assertEquals(decoder.decode(output.stderr), "");
  assertEquals(JSON.parse(decoder.decode(output.stdout)), {
    passed: { greeting: [3] },
    left: [null, null, null],
  });
});

Deno.test("binary flags let greeter read every variable of activation and --inetd", () => {
  const flag = BINARY_FLAGS.find((flag) => flag.startsWith("--allow-env="));
  const granted = new Set(flag!.slice("--allow-env=".length).split(","));
  for (const name of [...LISTEN_VARIABLES, ...INETD_VARIABLES]) {
    assert(granted.has(name), `${name} is not in ${flag}`);
  }
});

// --inetd

Deno.test({
  name: "--inetd under systemd-socket-activate --inetd shows the real client" +
    skip("systemd-socket-activate", activate),
  ignore: !activate,
  async fn() {
    const port = closedPort();
    await using host = await startHost(
      "systemd-socket-activate",
      [
        "--inetd",
        "--accept",
        `--listen=127.0.0.1:${port}`,
        ...GREETER,
        "--inetd",
        "--message",
        TEMPLATE,
      ],
      /Listening on/,
    );
    for (let i = 0; i < 2; i++) {
      const { text, from } = await greet(port);
      assertEquals(text, `127.0.0.1:${from}\r\n`);
      await host.waitFor(
        new RegExp(`Connection received from 127\\.0\\.0\\.1:${from}`),
      );
    }
  },
});

/** `greeter --inetd ARGS` under tcpserver on 127.0.0.1:`port`, once it listens. */
function underTcpserver(port: number, args: string[]) {
  return startHost(
    "tcpserver",
    ["-v", "127.0.0.1", String(port), ...GREETER, "--inetd", ...args],
    /status: 0\//,
  );
}

Deno.test({
  name:
    "--inetd under tcpserver greets with the client's address, logging to stderr" +
    skip("tcpserver", tcpserver),
  ignore: !tcpserver,
  async fn() {
    const port = closedPort();
    await using host = await underTcpserver(port, ["--message", TEMPLATE]);
    const { text, from } = await greet(port);
    assertEquals(text, `127.0.0.1:${from}\r\n`);
    await host.waitFor(
      new RegExp(`Connection received from 127\\.0\\.0\\.1:${from}\n`),
    );
  },
});

Deno.test({
  name:
    "--inetd under tcpserver: exact default bytes, --linger 0 and lingering both end promptly" +
    skip("tcpserver", tcpserver),
  ignore: !tcpserver,
  async fn() {
    for (const args of [["--linger", "0"], []]) {
      const port = closedPort();
      await using host = await underTcpserver(port, ["-q", ...args]);
      // The FIN comes with the greeting (shutdown), not at the linger's end
      // (2 s later). Timed from the first byte: tcpserver starts a deno per
      // client, which may take long on a busy machine.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const buffer = new Uint8Array(4096);
      const first = await conn.read(buffer);
      const greeted = performance.now();
      const text = decoder.decode(buffer.subarray(0, first ?? 0)) +
        await readToEnd(conn);
      assert(performance.now() - greeted < 1_900, "the greeting ends at once");
      assertEquals(encoder.encode(text), DEFAULT_BYTES);
      await host.waitFor(/end \d+ status 0/);
      assert(!/Connection received/.test(host.stderr()), "--quiet");
    }
  },
});

Deno.test({
  name:
    "--inetd under tcpserver lingers for a client that wrote first and keeps --timeout" +
    skip("tcpserver", tcpserver),
  ignore: !tcpserver,
  async fn() {
    const port = closedPort();
    await using host = await underTcpserver(port, [
      "-q",
      "--linger",
      "5s",
      "--timeout",
      "400ms",
    ]);
    // A client that sent bytes first still gets the whole greeting, and its
    // end (FIN) at once: greeter shut its side down and lingers.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(encoder.encode("hello\r\n"));
    const buffer = new Uint8Array(256);
    let text = "";
    for (let n; (n = await conn.read(buffer)) !== null;) {
      text += decoder.decode(buffer.subarray(0, n));
    }
    assertEquals(text, "Connection Established\r\n");
    // It never closes: --timeout ends greeter long before the 5 s linger.
    const started = performance.now();
    await host.waitFor(/end \d+ status 0/, 3_000);
    assert(performance.now() - started < 2_000, "ended by --timeout");
    conn.close();
  },
});

Deno.test({
  name: "--inetd under socat EXEC: takes the client from SOCAT_PEERADDR" +
    skip("socat", socat),
  ignore: !socat,
  async fn() {
    const port = closedPort();
    const dir = await Deno.makeTempDir();
    try {
      // socat splits EXEC: at colons: the template comes from a file.
      await Deno.writeTextFile(`${dir}/template`, TEMPLATE);
      await using _host = await startHost(
        "socat",
        [
          "-d",
          "-d",
          `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`,
          `EXEC:${
            [...GREETER, "--inetd", "--message-file", `${dir}/template`].join(
              " ",
            )
          }`,
        ],
        /listening on/,
      );
      const { text, from } = await greet(port);
      assertEquals(text, `127.0.0.1:${from}\r\n`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "--inetd --log-format json under socat EXEC: writes its connection " +
    "line, though socat sends SIGTERM as soon as the client's side closes" +
    skip("socat", socat),
  ignore: !socat,
  async fn() {
    const port = closedPort();
    await using host = await startHost(
      "socat",
      [
        "-d",
        "-d",
        `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`,
        `EXEC:${[...GREETER, "--inetd", "--log-format", "json"].join(" ")}`,
      ],
      /listening on/,
    );
    const { text, from } = await greet(port);
    assertEquals(text, "Connection Established\r\n");
    // JSON's line comes at the close, with the outcome: after socat's EOF.
    await host.waitFor(new RegExp(`"client\\.port":${from},.*"greeted"`));
  },
});

Deno.test({
  name: "--inetd whose stderr is the client's socket writes nothing but the " +
    "greeting to it: not when 127.0.0.1:9229 is held, not when it cannot " +
    "start" + skip("socat", socat),
  ignore: !socat,
  async fn() {
    let holder: Deno.Listener | undefined;
    try {
      holder = Deno.listen({ hostname: "127.0.0.1", port: 9229 });
    } catch {
      // Held by another program already: the case itself.
    }
    try {
      // stderr: the child's stderr is the connection, as under xinetd.
      const host = (greeter: string[]) => {
        const port = closedPort();
        return startHost(
          "socat",
          [
            "-d",
            "-d",
            `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`,
            `EXEC:${[...greeter, "--inetd"].join(" ")},stderr`,
          ],
          /listening on/,
        ).then((started) => ({ started, port }));
      };
      {
        const { started, port } = await host(GREETER);
        await using _host = started;
        assertEquals((await greet(port)).text, "Connection Established\r\n");
      }
      // --allow-net that does not cover 127.0.0.1:9229: exit 1, in silence.
      const narrow = [DENO, "run", "--no-prompt", "--allow-net=127.0.0.1:1"];
      const { started, port } = await host([...narrow, "--allow-env", MAIN]);
      await using _host = started;
      assertEquals((await greet(port)).text, "");
    } finally {
      holder?.close();
    }
  },
});

Deno.test({
  name:
    "--inetd ends on SIGTERM while it lingers for its client, as a host's " +
    "stop sends it" + skip("socat", socat),
  ignore: !socat,
  async fn() {
    const port = closedPort();
    const marker = `sigterm-${crypto.randomUUID().slice(0, 8)}`;
    await using _host = await startHost(
      "socat",
      [
        "-d",
        "-d",
        `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`,
        `EXEC:${
          [...GREETER, "--inetd", "--linger", "15s", "-m", marker].join(" ")
        }`,
      ],
      /listening on/,
    );
    let conn: Deno.Conn | undefined;
    for (let tries = 0; !conn && tries < 100; tries++) {
      conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(
        () => undefined,
      );
      if (!conn) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert(conn, "socat never listened");
    try {
      const buffer = new Uint8Array(64);
      const n = await conn.read(buffer);
      assertEquals(decoder.decode(buffer.subarray(0, n ?? 0)), `${marker}\r\n`);
      // Lingering now, for 15 s: a SIGTERM must end it at once.
      const pgrep = await new Deno.Command("pgrep", { args: ["-f", marker] })
        .output();
      const pids = decoder.decode(pgrep.stdout).trim().split("\n").map(Number)
        .filter((pid) => pid > 0 && pid !== Deno.pid);
      assert(pids.length > 0, "no greeter process");
      const greeter = pids.at(-1)!;
      const started = performance.now();
      Deno.kill(greeter, "SIGTERM");
      let alive = true;
      while (alive && performance.now() - started < 1_000) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        alive = await new Deno.Command("kill", {
          args: ["-0", String(greeter)],
        })
          .output().then((o) => o.success);
      }
      assert(!alive, "greeter --inetd outlived SIGTERM by 1 s");
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name:
    "--inetd under xinetd with deploy/xinetd/greeter greets the real client" +
    skip("xinetd", xinetd) +
    (xinetd && Deno.uid() !== 0
      ? " (skipped: xinetd runs a service as its user= only as root)"
      : ""),
  ignore: !xinetd || Deno.uid() !== 0,
  async fn() {
    const port = closedPort();
    const dir = await Deno.makeTempDir();
    try {
      const file = await Deno.readTextFile(`${ROOT}/deploy/xinetd/greeter`);
      const args = /^\s*server_args\s*=\s*(.*)$/m.exec(file)![1].trim();
      assertEquals(args, "--inetd");
      await Deno.writeTextFile(`${dir}/template`, TEMPLATE);
      // The unit's service, on a free loopback port, run as this user with
      // deno run main.ts, and a template to see whom it greets.
      const config = "defaults\n{\n}\n" + file
        .replace(/^(\s*port\s*=).*$/m, `$1 ${port}\n\tbind = 127.0.0.1`)
        .replace(/^(\s*user\s*=).*$/m, "$1 root")
        .replace(/^(\s*server\s*=).*$/m, `$1 ${DENO}`)
        .replace(
          /^(\s*server_args\s*=).*$/m,
          `$1 ${
            ["run", "--no-prompt", ...PERMISSIONS, MAIN].join(" ")
          } ${args} --message-file ${dir}/template`,
        );
      await Deno.writeTextFile(`${dir}/xinetd.conf`, config);
      await using _host = await startHost(
        "xinetd",
        [
          "-dontfork",
          "-f",
          `${dir}/xinetd.conf`,
          "-pidfile",
          `${dir}/xinetd.pid`,
          "-filelog",
          `${dir}/xinetd.log`,
        ],
        /(?:)/,
      );
      const log = () => Deno.readTextFile(`${dir}/xinetd.log`).catch(() => "");
      const ready = Date.now() + 8_000;
      while (!/Started working: 1 available service/.test(await log())) {
        assert(Date.now() < ready, `xinetd did not start: ${await log()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const { text, from } = await greet(port);
      // stderr is the client too under xinetd: no log line reaches it.
      assertEquals(text, `127.0.0.1:${from}\r\n`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("--inetd says in one line that stdin is a file, a pipe or a device, exit 2", async () => {
  for (
    const [redirect, what] of [
      [`<'${MAIN}'`, "a regular file"],
      ["</dev/null", "a device"],
      ["<&-", "a device"],
    ]
  ) {
    const result = await withListenEnv("", ["--inetd"], redirect);
    assertEquals(result.code, 2, redirect);
    assertEquals(
      result.stderr,
      `greeter: --inetd greets the client connected on stdin, but stdin is ${what}: ` +
        "run greeter --inetd from inetd, xinetd, tcpserver, socat EXEC: or a " +
        "systemd Accept=yes socket (or serve without --inetd)\n",
    );
  }
  const piped = await new Deno.Command("sh", {
    args: [
      "-c",
      `echo | exec ${GREETER.map((w) => `'${w}'`).join(" ")} --inetd`,
    ],
    stdin: "null",
  }).output();
  assertEquals(piped.code, 2);
  assertMatch(decoder.decode(piped.stderr), /^greeter: .*stdin is a pipe: /);
});

const python = await canRun("python3", ["--version"]);
Deno.test({
  name: "--inetd says in one line that a stdin socket has no client (inetd's " +
    "wait mode passes a listening one), exit 2" + skip("python3", python),
  ignore: !python,
  async fn() {
    // The listening socket itself, and a client that reset before greeter
    // started: both name no peer.
    const setups = {
      listening: "stdin = s",
      reset: "c = socket.create_connection(s.getsockname()); " +
        "stdin = s.accept()[0]; " +
        "c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, " +
        "struct.pack('ii', 1, 0)); c.close(); time.sleep(0.1)",
    };
    for (const [what, setup] of Object.entries(setups)) {
      const output = await new Deno.Command("python3", {
        args: [
          "-c",
          "import os, socket, struct, sys, time; s = socket.socket(); " +
          "s.bind(('127.0.0.1', 0)); s.listen(); " + setup + "; " +
          "os.dup2(stdin.fileno(), 0); os.execvp(sys.argv[1], sys.argv[1:])",
          ...GREETER,
          "--inetd",
        ],
        env: { NO_COLOR: "1" },
        signal: AbortSignal.timeout(10_000),
      }).output();
      assertEquals(output.code, 2, what);
      assertEquals(
        decoder.decode(output.stderr),
        "greeter: --inetd greets the client connected on stdin, but stdin " +
          "is a socket with no client (a listening socket, as inetd's wait " +
          "mode passes, or a client that already left): configure the " +
          "service as nowait (xinetd: wait = no)\n",
        what,
      );
    }
  },
});

const script = await canRun("script", ["--version"]);
Deno.test({
  name: "--inetd says in one line that stdin is a terminal, exit 2" +
    skip("script", script),
  ignore: !script,
  async fn() {
    const output = await new Deno.Command("script", {
      args: [
        "-qec",
        `${GREETER.map((w) => `'${w}'`).join(" ")} --inetd`,
        "/dev/null",
      ],
      stdin: "null",
      env: { NO_COLOR: "1" },
    }).output();
    assertEquals(output.code, 2);
    assertMatch(
      decoder.decode(output.stdout),
      /greeter: --inetd greets the client connected on stdin, but stdin is a terminal: /,
    );
  },
});

Deno.test("--inetd names the flags it has no use for in one usage line", async () => {
  const result = await runCli([
    "--inetd",
    "-p",
    "23",
    "--workers",
    "2",
    "--metrics",
    "9464",
    "--message",
    "hi",
  ]);
  assertEquals(result.code, 2);
  assertEquals(
    result.stderr,
    "greeter: --inetd greets the one client its host passed on stdin: -p, " +
      "--workers, --metrics have no meaning there; drop them (the host " +
      "listens, limits and runs one greeter per client)\n",
  );
});
