// greeter itself behind a real load balancer: Debian's HAProxy runs the
// shipped deploy/haproxy/haproxy.cfg on loopback in front of two greeter
// subprocesses started with --proxy-protocol --proxy-from 127.0.0.1/32
// (HAProxy's own address here). Clients bind their own 127.x.y.z source
// addresses; greeter must log, count and limit them by those addresses,
// and HAProxy's health checks (tcp-check expect string) must pass.
import { assert, assertEquals, assertMatch } from "@std/assert";
import net from "node:net";
import {
  type CliServer,
  startCli,
  waitForMetricsPort,
  waitUntil,
} from "./_helpers.ts";
import {
  CONFIG,
  type Haproxy,
  haproxy,
  shippedConfig,
  skipped,
  startHaproxy,
} from "./_haproxy.ts";

const GREETING = "Connection Established\r\n";
const decoder = new TextDecoder();

/** A greeter of the fleet, with its metrics port. */
interface Greeter extends CliServer {
  metricsPort: number;
}

/** Starts a greeter on 127.0.0.1 that takes PROXY headers from 127.0.0.1. */
async function startGreeter(extra: string[]): Promise<Greeter> {
  const server = await startCli([
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--metrics",
    "127.0.0.1:0",
    "--proxy-protocol",
    "--proxy-from",
    "127.0.0.1/32",
    ...extra,
  ]);
  try {
    return Object.assign(server, {
      metricsPort: await waitForMetricsPort(server),
    });
  } catch (error) {
    await server.stop("SIGKILL");
    throw error;
  }
}

/** One counter of a greeter's /metrics, such as `greeter_..._total{reason="x"}`. */
async function metric(greeter: Greeter, series: string): Promise<number> {
  const response = await fetch(
    `http://127.0.0.1:${greeter.metricsPort}/metrics`,
  );
  const text = await response.text();
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  assert(line, `${series} in /metrics`);
  return Number(line.slice(series.length + 1));
}

/** Refusals of one reason, summed over greeters. */
async function refused(greeters: Greeter[], reason: string): Promise<number> {
  let sum = 0;
  for (const g of greeters) {
    sum += await metric(
      g,
      `greeter_connections_refused_total{reason="${reason}"}`,
    );
  }
  return sum;
}

/** One JSON log line. */
type LogRecord = Record<string, unknown>;

/** The greeters' JSON connection lines so far (greeted and refused). */
function connectionRecords(greeters: Greeter[]): LogRecord[] {
  return greeters.flatMap((g) =>
    g.stdout().split("\n").filter((l) => l.startsWith("{"))
      .map((l): LogRecord => JSON.parse(l))
  ).filter((r) => r["event.action"] === "connection");
}

/** A client connection from its own source address, kept open until closed. */
interface Client {
  localPort: number;
  /** Resolves once the whole greeting came, or to what came by the end. */
  greeting: Promise<string>;
  /** Resolves to every byte received once the other side has closed. */
  ended: Promise<string>;
  /** Closes this side too; resolves to every byte received. */
  close(): Promise<string>;
}

/**
 * Connects from `localAddress` to 127.0.0.1:`port` and sends `send`, if
 * given. Half-open allowed: the client does not close when the server
 * does, as a client that does not close (HAProxy keeps the greeter's side
 * open as long as the client's).
 */
function connectFrom(
  port: number,
  localAddress: string,
  send?: string,
): Promise<Client> {
  return new Promise((resolveClient, rejectClient) => {
    const socket = net.connect({
      host: "127.0.0.1",
      port,
      localAddress,
      allowHalfOpen: true,
    });
    let text = "";
    let greeted = (_: string) => {};
    const greeting = new Promise<string>((resolve) => greeted = resolve);
    let end = (_: string) => {};
    const ended = new Promise<string>((resolve) => end = resolve);
    const closed = new Promise<string>((resolve) => {
      socket.on("close", () => {
        greeted(text);
        end(text);
        resolve(text);
      });
    });
    socket.on("end", () => {
      greeted(text);
      end(text);
    });
    // Bounded: every test here ends its connections well within this.
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on("data", (chunk: Uint8Array) => {
      text += decoder.decode(chunk);
      if (text === GREETING) greeted(text);
    });
    socket.on("error", () => {});
    socket.once("error", rejectClient);
    socket.on("connect", () => {
      if (send !== undefined) socket.write(send);
      resolveClient({
        localPort: socket.localPort!,
        greeting,
        ended,
        close() {
          socket.destroy();
          return closed;
        },
      });
    });
  });
}

/** Every byte received until the other side closed; then closes. */
async function received(client: Client): Promise<string> {
  const text = await client.ended;
  await client.close();
  return text;
}

/** Connects, reads the greeting (or nothing) until closed, closes. */
async function greetingFrom(port: number, localAddress: string) {
  const client = await connectFrom(port, localAddress);
  const received = await client.greeting;
  await client.close();
  return { localPort: client.localPort, received };
}

/**
 * Two greeters with `args`, HAProxy with `config` in front; waits until
 * HAProxy's health checks have marked both servers `expected` (by default
 * UP, their last check passed), runs `fn`, and stops everything.
 */
async function withFleet<T>(
  config: string,
  args: string[],
  env: Record<string, string>,
  fn: (fleet: { greeters: Greeter[]; balancer: Haproxy }) => Promise<T>,
  expected: { status: string; check: string } = {
    status: "UP",
    check: "L7OK",
  },
): Promise<T> {
  const started = await Promise.allSettled([
    startGreeter(args),
    startGreeter(args),
  ]);
  const greeters = started.flatMap((s) =>
    s.status === "fulfilled" ? [s.value] : []
  );
  try {
    for (const s of started) if (s.status === "rejected") throw s.reason;
    await using balancer = await startHaproxy(config, {
      GREETER_1: `127.0.0.1:${greeters[0].port}`,
      GREETER_2: `127.0.0.1:${greeters[1].port}`,
      GREETER_CHECK_INTERVAL: "100ms",
      ...env,
    });
    let servers = await balancer.servers();
    const deadline = performance.now() + 10_000;
    // HAProxy starts servers UP; L7OK says the last check ran and its
    // "tcp-check expect string" matched (L7RSP: it did not).
    const reached = () =>
      servers.length === 2 &&
      servers.every((s) =>
        s.status === expected.status && s.check_status === expected.check
      );
    while (!reached() && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      servers = await balancer.servers();
    }
    assert(
      reached(),
      `both servers ${expected.status} (${expected.check}): ${
        JSON.stringify(servers)
      }`,
    );
    return await fn({ greeters, balancer });
  } finally {
    await Promise.all(greeters.map((g) => g.stop("SIGKILL")));
  }
}

const CLIENTS = ["127.0.0.2", "127.0.0.3", "127.1.2.3"];

/** Escapes `text` for a RegExp. */
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

Deno.test({
  name:
    "deploy/haproxy/haproxy.cfg passes haproxy -c with send-proxy (v1) and with GREETER_BALANCE=source" +
    skipped,
  ignore: !haproxy,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "greeter-haproxy-" });
    try {
      const v1 = `${dir}/v1.cfg`;
      await Deno.writeTextFile(v1, await shippedConfig(() => "send-proxy"));
      const check = (file: string, env: Record<string, string> = {}) =>
        new Deno.Command("haproxy", {
          args: ["-c", "-f", file],
          env,
          stdin: "null",
        }).output();
      for (
        const [file, env] of [
          [CONFIG, {}],
          [v1, {}],
          [CONFIG, { GREETER_BALANCE: "source" }],
        ] as const
      ) {
        const { code, stderr } = await check(file, env);
        assertEquals(code, 0, decoder.decode(stderr));
      }
      // A balance HAProxy does not know is refused: the switch is read.
      const bad = await check(CONFIG, { GREETER_BALANCE: "nearest" });
      assertEquals(bad.code, 1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "greeter --proxy-protocol behind HAProxy send-proxy (v1) passes its health checks and logs each client's own address, via the balancer" +
    skipped,
  ignore: !haproxy,
  async fn() {
    const config = await shippedConfig(() => "send-proxy");
    await withFleet(config, [], {}, async ({ greeters, balancer }) => {
      const seen = [];
      for (const from of CLIENTS) {
        const { localPort, received } = await greetingFrom(balancer.port, from);
        assertEquals(received, GREETING, from);
        seen.push(`${from}:${localPort}`);
      }
      const log = () => greeters.map((g) => g.stdout()).join("");
      for (const client of seen) {
        // Logged once, by one greeter, as the client via HAProxy.
        const line = new RegExp(
          `Connection received from ${
            literal(client)
          } \\(via 127\\.0\\.0\\.1:\\d+\\)\\n`,
          "g",
        );
        await waitUntil(() => line.test(log()), 5_000, `${client} logged`);
        assertEquals(log().match(line)?.length, 1, client);
      }
      // Round robin: both greeters served clients, not only health checks.
      for (const g of greeters) {
        assert(
          CLIENTS.some((from) => g.stdout().includes(`from ${from}:`)),
          g.stdout(),
        );
      }
      // v1 health checks name the check's own connection: HAProxy itself.
      for (const g of greeters) {
        assertMatch(
          g.stdout(),
          /Connection received from 127\.0\.0\.1:\d+ \(via 127\.0\.0\.1:\d+\)\n/,
        );
      }
      assertEquals(await refused(greeters, "proxy_header"), 0);
      assertEquals(await refused(greeters, "proxy_untrusted"), 0);
    });
  },
});

Deno.test({
  name:
    "greeter --proxy-protocol --log-format json behind HAProxy send-proxy-v2 logs client.address and network.peer.address, and greets LOCAL health checks" +
    skipped,
  ignore: !haproxy,
  async fn() {
    await withFleet(
      await shippedConfig(),
      ["--log-format", "json"],
      {},
      async ({ greeters, balancer }) => {
        const seen = [];
        for (const from of CLIENTS) {
          const { localPort, received } = await greetingFrom(
            balancer.port,
            from,
          );
          assertEquals(received, GREETING, from);
          seen.push({ from, localPort });
        }
        const records = () => connectionRecords(greeters);
        for (const { from, localPort } of seen) {
          const mine = () =>
            records().filter((r) =>
              r["client.address"] === from && r["client.port"] === localPort
            );
          await waitUntil(() => mine().length > 0, 5_000, `${from} logged`);
          assertEquals(mine().length, 1);
          const [record] = mine();
          assertEquals(record["greeter.outcome"], "greeted");
          assertEquals(record["network.peer.address"], "127.0.0.1");
          assertEquals(typeof record["network.peer.port"], "number");
          assertEquals(record["greeter.greeting_bytes"], GREETING.length);
        }
        // LOCAL health checks: greeted, with HAProxy's own address as the
        // client (no client in the header to name).
        for (const g of greeters) {
          const checks = connectionRecords([g]).filter((r) =>
            r["client.address"] === "127.0.0.1"
          );
          assert(checks.length >= 1, g.stdout());
          for (const check of checks) {
            assertEquals(check["greeter.outcome"], "greeted");
            // No client named, so no balancer either: the peer is the client.
            assertEquals(check["network.peer.address"], undefined);
          }
        }
        assertEquals(await refused(greeters, "proxy_header"), 0);
      },
    );
  },
});

Deno.test({
  name:
    "greeter --max-per-ip 2 behind HAProxy send-proxy-v2 refuses a client's third concurrent connection and serves other clients" +
    skipped,
  ignore: !haproxy,
  async fn() {
    // source: all of one client's connections reach the same greeter, so
    // its limit holds as set (round robin would spread them).
    await withFleet(
      await shippedConfig(),
      [
        "--max-per-ip",
        "2",
        "--linger",
        "30s",
        "--timeout",
        "30s",
        "--log-format",
        "json",
      ],
      { GREETER_BALANCE: "source" },
      async ({ greeters, balancer }) => {
        const open: Client[] = [];
        try {
          for (let i = 0; i < 2; i++) {
            const held = await connectFrom(balancer.port, "127.0.0.2");
            open.push(held);
            // Greeted, and left open: greeter lingers for the close.
            assertEquals(await held.greeting, GREETING);
          }
          assertEquals(await refused(greeters, "per_ip_limit"), 0);
          const third = await connectFrom(balancer.port, "127.0.0.2");
          open.push(third);
          // Refused: closed without a byte.
          assertEquals(
            await third.ended,
            "",
          );
          assertEquals(await refused(greeters, "per_ip_limit"), 1);
          // Other addresses, whichever greeter they reach, are served
          // while 127.0.0.2's two are still open.
          for (const from of ["127.0.0.3", "127.1.2.3"]) {
            for (let i = 0; i < 2; i++) {
              const other = await connectFrom(balancer.port, from);
              open.push(other);
              assertEquals(await other.greeting, GREETING, from);
            }
          }
          assertEquals(await refused(greeters, "per_ip_limit"), 1);
          // The refusal is logged under the client's address (JSON logs
          // refused clients too; text logs only those greeted).
          const refusals = () =>
            connectionRecords(greeters).filter((r) =>
              r["greeter.outcome"] === "refused"
            );
          await waitUntil(() => refusals().length > 0, 5_000, "refusal log");
          assertEquals(refusals().length, 1);
          const [refusal] = refusals();
          assertEquals(refusal["client.address"], "127.0.0.2");
          assertEquals(refusal["greeter.reason"], "per_ip_limit");
          assertEquals(refusal["network.peer.address"], "127.0.0.1");
        } finally {
          await Promise.all(open.map((c) => c.close()));
        }
      },
    );
  },
});

Deno.test({
  name:
    "deploy/haproxy/haproxy.cfg health check marks a greeter with another greeting DOWN" +
    skipped,
  ignore: !haproxy,
  async fn() {
    // The control for the UP checks above: the same config, and greeters
    // that answer, but not with "Connection Established".
    await withFleet(
      await shippedConfig(),
      ["--message", "Hello"],
      {},
      async ({ balancer }) => {
        const client = await connectFrom(balancer.port, "127.0.0.2");
        // No server left: HAProxy closes the client without a byte.
        assertEquals(await received(client), "");
      },
      { status: "DOWN", check: "L7RSP" },
    );
  },
});

Deno.test("greeter --proxy-protocol refuses a client straight from an untrusted address, and a trusted one with no header or a bad one", async () => {
  // No HAProxy: this runs everywhere. The header deadline is --timeout
  // here (under its 3 s default), so the silent client waits 500 ms.
  await using g = await startGreeter(["--timeout", "500ms"]);
  // Untrusted: 127.0.0.2 is not in --proxy-from, even with a good header.
  const untrusted = await connectFrom(
    g.port,
    "127.0.0.2",
    `PROXY TCP4 192.0.2.1 127.0.0.1 5555 ${g.port}\r\n`,
  );
  assertEquals(await received(untrusted), "");
  assertEquals(await refused([g], "proxy_untrusted"), 1);
  // Trusted, but silent: refused at the header deadline.
  const started = performance.now();
  const silent = await connectFrom(g.port, "127.0.0.1");
  assertEquals(await received(silent), "");
  const waited = performance.now() - started;
  assert(waited >= 400 && waited < 3_000, `${waited} ms`);
  assertEquals(await refused([g], "proxy_header"), 1);
  // Trusted, but not a PROXY header.
  const http = await connectFrom(g.port, "127.0.0.1", "GET / HTTP/1.0\r\n\r\n");
  assertEquals(await received(http), "");
  assertEquals(await refused([g], "proxy_header"), 2);
  // The control: the same trusted address with a header is greeted, as
  // the client it names.
  const good = await connectFrom(
    g.port,
    "127.0.0.1",
    `PROXY TCP4 192.0.2.1 127.0.0.1 5555 ${g.port}\r\n`,
  );
  assertEquals(await received(good), GREETING);
  await g.waitFor(
    /Connection received from 192\.0\.2\.1:5555 \(via 127\.0\.0\.1:\d+\)\n/,
  );
  assertEquals(await refused([g], "proxy_untrusted"), 1);
  assertEquals(await refused([g], "proxy_header"), 2);
  assertEquals(
    await metric(g, 'greeter_connections_total{outcome="greeted"}'),
    1,
  );
});
