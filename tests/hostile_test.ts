// Hostile clients against greeter (issue 11): nothing a client does may stop
// the server from greeting the next one.
//
// LINUX ONLY (every test below is ignored elsewhere): the descriptor count
// comes from /proc/PID/fd, and the resetting clients rely on Linux keeping a
// connection reset before accept() in the listen queue, so that accept()
// fails for it ("Transport endpoint is not connected", os error 107).
// Resetting clients are Python (tests/_hostile_clients.py), so python3 must
// be on PATH; openssl makes the TLS certificate.
//
// Time: each test is bounded by its own deadlines. The two 10 s trickles are
// soak tests: they run only with GREETER_SOAK=1 (see docs/development.md), as
// tests/accept_loop_test.ts proves deterministically what they show (one
// client's failed accept never makes the loop wait, however many come in a
// row), and the bursts below prove it with real resets. Servers are killed
// and sockets closed whatever the outcome.

import { assert, assertEquals } from "@std/assert";
import { serveGreeting } from "../mod.ts";
import {
  type CliServer,
  DEFAULT_BYTES,
  SOAK,
  SOAK_SKIP,
  startCli,
  waitUntil,
  withTempDir,
} from "./_helpers.ts";

const LINUX = Deno.build.os === "linux";
const GREETING = new TextDecoder().decode(DEFAULT_BYTES);
/** What `deno task start` grants the server (the cap test needs no more). */
const SERVER_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-sys",
  "--unstable-net",
];
/** The promise to a normal client: its whole greeting within this, in ms. */
const SERVED_WITHIN = 1_000;

const decoder = new TextDecoder();
const sleep = (ms: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Starts the CLI on 127.0.0.1 with `args`, as `deno task start` would. */
function startGreeter(args: string[]): Promise<CliServer> {
  return startCli(["-H", "127.0.0.1", ...args], {
    permissions: SERVER_PERMISSIONS,
  });
}

/** What one normal client saw. */
interface Visit {
  /** Every byte received before the server closed, as text. */
  text: string;
  /** From connect to the server's close (or to giving up), in ms. */
  ms: number;
  /** Why it did not get to the end: a timeout or a connection error. */
  error?: string;
}

/** True if the client got exactly the greeting, then the close, in time. */
function served(visit: Visit): boolean {
  return visit.error === undefined && visit.text === GREETING &&
    visit.ms <= SERVED_WITHIN;
}

function describe(visit: Visit): string {
  return `${JSON.stringify(visit.text)} in ${Math.round(visit.ms)} ms${
    visit.error ? ` (${visit.error})` : ""
  }`;
}

/**
 * A normal client: connects, reads until the server closes, gives up after
 * `ms` (connect included: a full listen queue must not hang the test).
 */
async function visit(port: number, ms = SERVED_WITHIN): Promise<Visit> {
  const start = performance.now();
  const controller = new AbortController();
  let conn: Deno.Conn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
    try {
      conn?.close();
    } catch {
      // Closed already.
    }
  }, ms);
  let text = "";
  let error: string | undefined;
  try {
    conn = await Deno.connect({
      hostname: "127.0.0.1",
      port,
      signal: controller.signal,
    });
    const buffer = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n));
    }
  } catch (caught) {
    error = timedOut
      ? `no close within ${ms} ms`
      : caught instanceof Error
      ? caught.message
      : String(caught);
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // Closed by the timer.
    }
  }
  return { text, ms: performance.now() - start, error };
}

/** What the Python resetting clients report. */
interface Resets {
  connected: number;
  failed: number;
  errors: Record<string, number>;
  skipped: number;
  seconds: number;
}

/**
 * Fails unless at least 90% of `count` resetting clients got through the
 * handshake, so no test passes because the hostile load never arrived. Not
 * all: with the default --backlog (511) a slow start may drop a few SYNs,
 * which does not make the burst any less hostile.
 */
function assertDelivered(resets: Resets, count: number) {
  assert(
    resets.connected >= count * 0.9,
    `only ${resets.connected} of ${count} resetting clients connected: ` +
      JSON.stringify(resets),
  );
}

/** Runs tests/_hostile_clients.py with `args`; see its usage. */
async function resetClients(args: (string | number)[]): Promise<Resets> {
  const output = await new Deno.Command("python3", {
    args: [
      `${import.meta.dirname}/_hostile_clients.py`,
      ...args.map(String),
    ],
    stdin: "null",
  }).output();
  const stderr = decoder.decode(output.stderr);
  assertEquals(output.code, 0, `python3 resetting clients failed: ${stderr}`);
  return JSON.parse(decoder.decode(output.stdout));
}

for (const count of [1, 50, 1_000]) {
  Deno.test({
    name: `greeter serves 20 normal clients within 1 s each after a burst of ${
      count.toLocaleString("en")
    } resetting client${count === 1 ? "" : "s"}`,
    ignore: !LINUX,
    async fn() {
      await using server = await startGreeter(["-p", "0"]);
      const resets = await resetClients(["burst", server.port, count]);
      // One after the other, as the next visitors would come; the first that
      // is not served fails the test (so a stalled server costs 1 s, not 20).
      for (let i = 1; i <= 20; i++) {
        const seen = await visit(server.port);
        assert(
          served(seen),
          `After ${count} resetting clients (${JSON.stringify(resets)}), ` +
            `normal client ${i} of 20 got ${describe(seen)}; ` +
            `want ${JSON.stringify(GREETING)} within ${SERVED_WITHIN} ms`,
        );
      }
      assertDelivered(resets, count);
    },
  });
}

// The issue's steady trickle, in two shapes of the same 20 resets per second:
// spread evenly (one every 50 ms), and pulsed (20 back to back at the start of
// each second, as the issue's field test sent them). Spread, a normal client's
// accept comes after every 2 resets; pulsed, 20 failed accepts come in a row,
// which is what a back-off that grows per failed accept cannot survive.
for (const shape of ["spread", "pulsed"] as const) {
  Deno.test({
    name:
      `greeter serves a normal client every 100 ms within 1 s each during 20 resets per second for 10 s, ${shape}` +
      SOAK_SKIP,
    ignore: !LINUX || !SOAK,
    async fn() {
      await using server = await startGreeter(["-p", "0"]);
      const trickle = resetClients([shape, server.port, 20, 10]);
      const visits: Promise<Visit>[] = [];
      const start = performance.now();
      for (let i = 0; i < 100; i++) {
        // A monotonic schedule: one client every 100 ms, whatever the others
        // do (each gives up after 1 s, so the test ends after about 11 s).
        const wait = start + i * 100 - performance.now();
        if (wait > 0) await sleep(wait);
        visits.push(visit(server.port));
      }
      const seen = await Promise.all(visits);
      const resets = await trickle;
      const missed = seen
        .map((visit, i) => ({ i, visit }))
        .filter(({ visit }) => !served(visit));
      const slowest = Math.max(...seen.map((visit) => visit.ms));
      assertEquals(
        missed.length,
        0,
        `${100 - missed.length} of 100 normal clients served (slowest ${
          Math.round(slowest)
        } ms) with resets ${JSON.stringify(resets)}; first misses: ${
          missed.slice(0, 5).map(({ i, visit }) => `#${i} ${describe(visit)}`)
            .join("; ")
        }`,
      );
      assertDelivered(resets, 200);
    },
  });
}

/** A client that reads its greeting but never closes (so it keeps its place). */
interface Holder {
  conn: Deno.Conn;
  /** Bytes received so far, as text. */
  text: string;
  /** True once the server has sent its whole greeting and closed its side. */
  done: boolean;
  /** Settles when reading stops (server's close, or ours). */
  reading: Promise<void>;
}

async function hold(port: number): Promise<Holder> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const holder: Holder = {
    conn,
    text: "",
    done: false,
    reading: Promise.resolve(),
  };
  holder.reading = (async () => {
    const buffer = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        holder.text += decoder.decode(buffer.subarray(0, n));
      }
      holder.done = true;
    } catch {
      // Closed by the test.
    }
  })();
  return holder;
}

Deno.test({
  name:
    "greeter --max-connections 1 serves one client at a time across 3 listeners",
  ignore: !LINUX,
  async fn() {
    // Each greeted client keeps its place for the whole test: the server
    // lingers up to 20 s for it to close (and it does not).
    await using server = await startGreeter([
      ...["-p", "0", "-p", "0", "-p", "0"],
      ...["--max-connections", "1", "--linger", "20000", "--timeout", "30000"],
    ]);
    await server.waitFor(/(?:listening for incoming connections on .*\n.*){3}/);
    const ports = [
      ...server.stdout().matchAll(
        /listening for incoming connections on 127\.0\.0\.1:(\d+)/g,
      ),
    ].map((match) => Number(match[1]));
    assertEquals(ports.length, 3, server.stdout());
    assertEquals(new Set(ports).size, 3, server.stdout());

    // One client on each listener, at the same moment.
    const holders = await Promise.all(ports.map(hold));
    const greeted = () => holders.filter((h) => h.text.length > 0);
    const left = new Set<Holder>();
    try {
      for (let round = 1; round <= 3; round++) {
        // The next client is served promptly: the first at once, each later
        // one as soon as the client before it leaves...
        await waitUntil(
          () => greeted().length >= round,
          2_000,
          `client ${round} of 3 to be greeted (greeted: ${greeted().length})`,
        );
        // ...and no other is served while it holds the only place.
        await sleep(round === 1 ? 1_000 : 500);
        assertEquals(
          greeted().length,
          round,
          `with --max-connections 1, ${greeted().length} of 3 clients were ` +
            `greeted while one client held the only place`,
        );
        const current = greeted().filter((h) => !left.has(h));
        assertEquals(current.length, 1);
        assertEquals(current[0].text, GREETING);
        assert(current[0].done, "the server did not end the greeting");
        // Leave: the place is free for the next client.
        left.add(current[0]);
        current[0].conn.close();
      }
    } finally {
      for (const h of holders) {
        if (!left.has(h)) h.conn.close();
      }
      await Promise.all(holders.map((h) => h.reading));
    }
  },
});

/**
 * Descriptors the process `pid` has open, from /proc/PID/fd. Listed by `ls`
 * because Deno reads /proc/PID/fd only with --allow-all, and the tests run
 * with `deno task test`'s permissions.
 */
async function openDescriptors(pid: number): Promise<number> {
  const output = await new Deno.Command("ls", {
    args: ["-1", `/proc/${pid}/fd`],
    stdin: "null",
  }).output();
  assertEquals(output.code, 0, decoder.decode(output.stderr));
  return decoder.decode(output.stdout).split("\n").filter(Boolean).length;
}

/** A self-signed certificate for 127.0.0.1 (not a CA), made with openssl. */
async function selfSignedCertificate(dir: string) {
  const output = await new Deno.Command("openssl", {
    args: [
      ...["req", "-x509", "-newkey", "ec"],
      ...["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
      ...["-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`],
      ...["-days", "1", "-subj", "/CN=localhost"],
      ...["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
      ...["-addext", "basicConstraints=critical,CA:FALSE"],
    ],
    stdin: "null",
  }).output();
  assertEquals(output.code, 0, decoder.decode(output.stderr));
  return { cert: `${dir}/cert.pem`, key: `${dir}/key.pem` };
}

/**
 * Connects over TLS, trusting `cert`, and reads until the server closes;
 * bounded by the server's --timeout, which closes a connection that lasts.
 */
async function visitTls(port: number, cert: string): Promise<string> {
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port,
    caCerts: [await Deno.readTextFile(cert)],
  });
  let text = "";
  try {
    const buffer = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n));
    }
  } finally {
    conn.close();
  }
  return text;
}

/**
 * The start of a ClientHello: a record header announcing 200 bytes, the
 * handshake header and a few bytes of it. The rest never comes.
 */
const HALF_CLIENT_HELLO = new Uint8Array([
  ...[0x16, 0x03, 0x01, 0x00, 0xc8], // a handshake record of 200 bytes
  ...[0x01, 0x00, 0x00, 0xc4], // a ClientHello of 196 bytes
  ...[0x03, 0x03, 0x2a, 0x2a, 0x2a, 0x2a], // TLS 1.2, then its random begins
]);
const STALLED = 200;
const TLS_TIMEOUT = 2_000;
/**
 * Descriptors the server may hold above its baseline once the stalled
 * clients are gone. Not 0, so a descriptor the runtime opens once, lazily,
 * under load (an eventfd or a timer) is no failure; 2 is 1% of the stalled
 * clients, so a leak of even a few of them fails.
 */
const FD_TOLERANCE = 2;

Deno.test({
  name:
    "greeter --timeout 2000 frees the descriptors of 200 stalled TLS handshakes within 3 s",
  ignore: !LINUX,
  async fn() {
    await withTempDir(async (dir) => {
      const { cert, key } = await selfSignedCertificate(dir);
      await using server = await startGreeter([
        ...["-p", "0", "--tls-cert", cert, "--tls-key", key],
        ...["--timeout", String(TLS_TIMEOUT)],
      ]);
      const pid = server.process.pid;
      // A first client warms up the TLS path, so what the runtime opens once
      // is in the baseline.
      assertEquals(await visitTls(server.port, cert), GREETING);
      await sleep(200);
      const baseline = await openDescriptors(pid);

      const stalled: Deno.Conn[] = [];
      try {
        for (let i = 0; i < STALLED; i++) {
          const conn = await Deno.connect({
            hostname: "127.0.0.1",
            port: server.port,
          });
          stalled.push(conn);
          // Half of them send nothing at all, half a ClientHello.
          if (i % 2) await conn.write(HALF_CLIENT_HELLO);
        }
        // The server really holds them: else the count below proves nothing.
        let peak = 0;
        // Bounded, not timed: a loaded machine may take a while to accept.
        const holdBy = performance.now() + 10_000;
        while ((peak = await openDescriptors(pid)) < baseline + STALLED) {
          assert(
            performance.now() < holdBy,
            `the server holds ${peak} descriptors with ${STALLED} stalled ` +
              `clients, ${baseline} without: they were not accepted`,
          );
          await sleep(50);
        }
        // Every one was accepted by now, so its timeout passes by
        // `accepted + TLS_TIMEOUT`; then the server has 3 s to close it.
        const accepted = performance.now();
        const deadline = accepted + TLS_TIMEOUT + 3_000;
        let now = peak;
        while (performance.now() < deadline) {
          now = await openDescriptors(pid);
          if (now <= baseline + FD_TOLERANCE) break;
          await sleep(50);
        }
        assert(
          now <= baseline + FD_TOLERANCE,
          `${STALLED} stalled TLS handshakes: the server had ${baseline} ` +
            `descriptors open before, ${peak} with them, and still ${now} ` +
            `${TLS_TIMEOUT + 3_000} ms after all were accepted ` +
            `(--timeout ${TLS_TIMEOUT}; want at most ${
              baseline + FD_TOLERANCE
            })`,
        );
        // And a real TLS client is still greeted.
        assertEquals(await visitTls(server.port, cert), GREETING);
      } finally {
        for (const conn of stalled) conn.close();
      }
    });
  },
});

Deno.test({
  name:
    "serveGreeting with maxPerIp 2 still admits an address after its greeting threw 3 times",
  ignore: !LINUX,
  async fn() {
    let calls = 0;
    await using server = serveGreeting({
      hostname: "127.0.0.1",
      port: 0,
      maxPerIp: 2,
      greeting: () => {
        if (++calls <= 3) throw new Error("boom");
        return DEFAULT_BYTES;
      },
    });
    // One after the other: never more than one open from 127.0.0.1.
    const texts: string[] = [];
    for (let i = 0; i < 5; i++) {
      texts.push((await visit(server.addr.port, 5_000)).text);
    }
    const ended = () =>
      Object.values(server.stats.outcomes).reduce((sum, n) => sum + n, 0);
    await waitUntil(() => ended() === 5, 2_000, "5 outcomes");
    assertEquals(server.stats.refused.per_ip_limit, 0, "refused per IP");
    assertEquals(server.stats.outcomes.refused, 0, "refused");
    assertEquals(server.stats.outcomes.error, 3, "errors");
    assertEquals(texts, ["", "", "", GREETING, GREETING]);
    assertEquals(calls, 5);
  },
});
