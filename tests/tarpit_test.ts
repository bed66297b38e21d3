// Tarpit mode (--tarpit, serveGreeting's tarpit option): held clients, the
// bytes of each style, ghost clients freed, shutdown, and real clients held.
import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertLessOrEqual,
  assertMatch,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  type ConnectionRecord,
  encodeGreeting,
  parseCidr,
  serveGreeting,
} from "../mod.ts";
import { createTarpit, tarpitLines } from "../lib/server/tarpit_host.ts";
import type { ConnectionContext } from "../lib/server/connection.ts";
import { createServerStats } from "../lib/server/stats.ts";
import type { Slot } from "../lib/server/connection_table.ts";
import { readFdLimit } from "../lib/observe/process_metrics.ts";
import {
  canRun,
  pool,
  POSIX_SIGNALS,
  runCli,
  scrapeSeries,
  startCli,
  waitForMetricsPort,
  waitUntil,
} from "./_helpers.ts";
import { SSH_TEST_OPTIONS } from "./_tools.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs a real client (under `timeout 5`) against a tarpit until its stderr
 * shows three lines matching `pattern` (global) while it still waits: held,
 * and fed line by line. Then ends it; returns its stderr.
 */
async function assertHolds(
  server: { readonly tarpit: { readonly clients: number } | undefined },
  args: string[],
  pattern: RegExp,
): Promise<string> {
  const child = new Deno.Command("timeout", {
    args: ["5", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  let exited = false;
  const status = child.status.then(() => exited = true);
  const pump = (async () => {
    for await (
      const text of child.stderr.pipeThrough(new TextDecoderStream())
    ) stderr += text;
  })();
  try {
    await waitUntil(
      () => exited || (stderr.match(pattern)?.length ?? 0) >= 3,
      4_000,
      `three lines of ${pattern}`,
    ).catch((error) => {
      throw new Error(`${error.message}: ${stderr}`);
    });
    assertEquals(exited, false, stderr);
    assertEquals(server.tarpit!.clients, 1);
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // Exited already.
    }
    await status;
    await pump;
  }
  return stderr;
}

/** Checks ssh-style bytes: CRLF lines of printable ASCII, none `SSH-`. */
function checkSshLines(text: string, lineLength: number): number {
  assert(text.endsWith("\r\n"), `ends mid-line: ${JSON.stringify(text)}`);
  const lines = text.slice(0, -2).split("\r\n");
  for (const line of lines) {
    assertLessOrEqual(line.length + 2, lineLength, JSON.stringify(line));
    assert(!line.startsWith("SSH-"), JSON.stringify(line));
    assertMatch(line, /^[ -~]*$/);
  }
  return lines.length;
}

/** Reads what arrives on `conn` for `ms` (or until it ends), as text. */
async function readFor(conn: Deno.Conn, ms: number): Promise<string> {
  const chunks: string[] = [];
  const buffer = new Uint8Array(4096);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stop = new Promise<"stop">((resolve) => {
    timer = setTimeout(() => resolve("stop"), ms);
  });
  try {
    while (true) {
      // A read the timer beat ends when the test closes the connection.
      const read = conn.read(buffer).catch(() => null);
      const n = await Promise.race([read, stop]);
      if (n === null || n === "stop") break;
      chunks.push(decoder.decode(buffer.subarray(0, n)));
    }
  } finally {
    clearTimeout(timer);
  }
  return chunks.join("");
}

Deno.test("tarpitLines ssh makes printable CRLF lines within the limit, none starting SSH-", () => {
  for (const limit of [3, 4, 32, 255]) {
    const lines = tarpitLines("ssh", limit, 2000);
    assertEquals(lines.length, 2000);
    checkSshLines(lines.map((line) => decoder.decode(line)).join(""), limit);
    assert(lines.every((line) => line.length >= 3));
  }
  // The pool is random: not every line the same.
  assertGreaterOrEqual(
    new Set(tarpitLines("ssh", 32).map((l) => l.join())).size,
    900,
  );
});

Deno.test("tarpitLines http makes header lines within the limit, never a blank line", () => {
  for (const limit of [8, 32, 255]) {
    for (const line of tarpitLines("http", limit, 2000)) {
      const text = decoder.decode(line);
      assertLessOrEqual(text.length, limit);
      assertMatch(text, /^X-[a-z0-9]+: [!-~]+\r\n$/);
    }
  }
});

Deno.test("serveGreeting tarpit options out of range are refused before listening", () => {
  const bad: [unknown, ErrorConstructor][] = [
    [{ style: "telnet" }, RangeError],
    [{ interval: 0 }, RangeError],
    [{ interval: 1.5 }, RangeError],
    [{ interval: "10" }, TypeError],
    [{ lineLength: 2 }, RangeError],
    [{ lineLength: 256 }, RangeError],
    [{ style: "http", lineLength: 7 }, RangeError],
    [null, TypeError],
  ];
  for (const [tarpit, Kind] of bad) {
    assertThrows(
      () =>
        serveGreeting({
          hostname: "127.0.0.1",
          port: 0,
          tarpit: tarpit as never,
        }),
      Kind,
      "tarpit",
    );
  }
});

Deno.test("serveGreeting tarpit counts each of successive clients afresh: its own bytes, its own time held", async () => {
  const records: ConnectionRecord[] = [];
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    tarpit: { interval: 20, lineLength: 16 },
    onClose: (record) => records.push(record),
  });
  const received: number[] = [];
  for (let i = 0; i < 3; i++) {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    received.push((await readFor(conn, 100 + 60 * i)).length);
    conn.close();
    await waitUntil(() => records.length === i + 1, 1_000, "the release");
  }
  // Each counts its own bytes only: what it received, and a write or two
  // more that reached no one.
  for (const [i, record] of records.entries()) {
    assertGreaterOrEqual(record.bytesWritten, received[i]);
    assertLessOrEqual(record.bytesWritten, received[i] + 2 * 16);
    assertGreaterOrEqual(record.held!, 100 + 60 * i);
  }
  assertEquals(
    records.reduce((sum, record) => sum + record.bytesWritten, 0),
    server.tarpit!.bytesSent,
  );
  assertEquals(server.tarpit!.clients, 0);
});

Deno.test("serveGreeting tarpit ssh style sends a line per interval, frees a client that resets at once", async () => {
  const records: ConnectionRecord[] = [];
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    tarpit: { interval: 30, lineLength: 20 },
    onClose: (record) => records.push(record),
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const text = await readFor(conn, 200);
  assertGreaterOrEqual(checkSshLines(text, 20), 3);
  assertEquals(server.tarpit!.clients, 1);
  // Unread bytes at close make the kernel send a reset.
  await sleep(80);
  conn.close();
  const closedAt = performance.now();
  await waitUntil(() => server.tarpit!.clients === 0, 1_000, "the release");
  // Seen by the next write: within an interval and a bit.
  assertLessOrEqual(performance.now() - closedAt, 150);
  assertEquals(records.length, 1);
  assertEquals(records[0].outcome, "reset");
  assertGreaterOrEqual(records[0].held!, 200);
  assertEquals(records[0].bytesWritten, server.tarpit!.bytesSent);
  assertEquals(server.stats.active, 0);
  assertEquals(server.stats.outcomes.reset, 1);
});

Deno.test("serveGreeting tarpit frees a client that closes cleanly within two writes", async () => {
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    tarpit: { interval: 100 },
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  // Closed right after a line, with nothing unread: a clean FIN. The next
  // write draws the client's reset, the one after fails.
  assertGreaterOrEqual((await conn.read(new Uint8Array(256)))!, 3);
  conn.close();
  const closedAt = performance.now();
  await waitUntil(() => server.tarpit!.clients === 0, 1_000, "the release");
  assertLessOrEqual(performance.now() - closedAt, 2 * 100 + 100);
});

Deno.test("serveGreeting tarpit greeting style drips the greeting and repeats it", async () => {
  const greeting = encodeGreeting("220-mail.example ESMTP");
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    greeting,
    tarpit: { style: "greeting", interval: 20, lineLength: 5 },
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const text = await readFor(conn, 300);
  const whole = decoder.decode(greeting);
  assertGreaterOrEqual(text.length, 5 * 6);
  assertEquals(text, whole.repeat(20).slice(0, text.length));
  // A few bytes at a time: never the whole greeting in one interval.
  assertLessOrEqual(text.length, 5 * 300 / 20 + 5);
});

Deno.test("serveGreeting tarpit greeting style drips a template's own greeting", async () => {
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    greeting: ({ remoteAddr }) => encoder.encode(`hi ${remoteAddr.port}\r\n`),
    tarpit: { style: "greeting", interval: 20, lineLength: 4 },
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const text = await readFor(conn, 250);
  const whole = `hi ${(conn.localAddr as Deno.NetAddr).port}\r\n`;
  assertGreaterOrEqual(text.length, whole.length + 4);
  assertEquals(text, whole.repeat(20).slice(0, text.length));
});

Deno.test("serveGreeting tarpit records the greeting's length in the greeting style only, and frees at once a client whose greeting is empty", async () => {
  const cases = [
    ["greeting", encodeGreeting("hi"), "reset"],
    ["ssh", encodeGreeting("hi"), "reset"],
    ["greeting", new Uint8Array(0), "greeted"],
  ] as const;
  for (const [style, greeting, outcome] of cases) {
    const records: ConnectionRecord[] = [];
    await using server = serveGreeting({
      hostname: "127.0.0.1",
      port: 0,
      greeting,
      tarpit: { style, interval: 20 },
      onClose: (record) => records.push(record),
    });
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    const text = await readFor(conn, 100);
    const label = `${style}, ${greeting.length} bytes`;
    // Freed before the client closes only when there is nothing to drip.
    assertEquals(records.length, outcome === "greeted" ? 1 : 0, label);
    conn.close();
    await waitUntil(() => records.length === 1, 1_000, "the release");
    assertEquals(text === "", outcome === "greeted", label);
    assertEquals(records[0].outcome, outcome, label);
    assertEquals(
      records[0].greetingLength,
      style === "greeting" ? greeting.length : 0,
      label,
    );
  }
});

Deno.test("serveGreeting tarpit http style sends a status line, then header lines", async () => {
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    tarpit: { style: "http", interval: 20, lineLength: 24 },
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  // Three header lines at least: read until they came (bounded), as a slow
  // machine may need more than a few intervals.
  let text = "";
  const by = performance.now() + 5_000;
  while (text.split("\r\n").length < 5 && performance.now() < by) {
    text += await readFor(conn, 100);
  }
  assert(text.startsWith("HTTP/1.1 200 OK\r\n"), text);
  const headers = text.slice(17).split("\r\n");
  assertEquals(headers.pop(), "");
  assertGreaterOrEqual(headers.length, 3);
  for (const header of headers) {
    assertMatch(header, /^X-[a-z0-9]+: [!-~]+$/);
    assertLessOrEqual(header.length + 2, 24);
  }
});

Deno.test("serveGreeting tarpit keeps --max-per-ip's count until a held client leaves", async () => {
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    maxPerIp: 1,
    refuseMessage: encoder.encode("busy\r\n"),
    tarpit: { interval: 20 },
  });
  const address = { hostname: "127.0.0.1", port: server.addr.port };
  const held = await Deno.connect(address);
  await waitUntil(() => server.tarpit!.clients === 1, 1_000, "the hold");
  {
    using refused = await Deno.connect(address);
    assertEquals(await readFor(refused, 300), "busy\r\n");
  }
  held.close();
  await waitUntil(() => server.tarpit!.clients === 0, 1_000, "the release");
  using again = await Deno.connect(address);
  const text = await readFor(again, 100);
  // Held, not refused ("busy" would pass for an SSH line too).
  assertEquals(server.stats.refused.per_ip_limit, 1);
  assert(text !== "busy\r\n", "the client was refused again");
  assertGreaterOrEqual(checkSshLines(text, 32), 1);
});

Deno.test("serveGreeting tarpit holds the client a PROXY header names, and refuses untrusted peers", async () => {
  const records: ConnectionRecord[] = [];
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    proxyProtocol: { from: [parseCidr("127.0.0.1/32")] },
    tarpit: { interval: 20 },
    onClose: (record) => records.push(record),
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(
    encoder.encode("PROXY TCP4 192.0.2.7 127.0.0.1 4242 22\r\n"),
  );
  assertGreaterOrEqual(checkSshLines(await readFor(conn, 100), 32), 1);
  conn.close();
  await waitUntil(() => server.tarpit!.clients === 0, 1_000, "the release");
  assertEquals(
    (records[0].remoteAddr as Deno.NetAddr).hostname,
    "192.0.2.7",
  );
  assertEquals(records[0].held !== undefined, true);
  // A peer that may not send a header is refused, not held.
  await using strict = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    proxyProtocol: { from: [parseCidr("10.0.0.0/8")] },
    tarpit: { interval: 20 },
  });
  using untrusted = await Deno.connect({
    hostname: "127.0.0.1",
    port: strict.addr.port,
  });
  assertEquals(await readFor(untrusted, 1_000), "");
  assertEquals(strict.stats.refused.proxy_untrusted, 1);
  assertEquals(strict.tarpit!.clients, 0);
  assertEquals(strict.tarpit!.bytesSent, 0);
});

Deno.test("serveGreeting tarpit shutdown releases held clients at once, not after the drain timeout", async () => {
  const server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    drainTimeout: 10_000,
    tarpit: { interval: 20 },
  });
  const conns = await Promise.all(
    Array.from(
      { length: 20 },
      () => Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }),
    ),
  );
  await waitUntil(() => server.tarpit!.clients === 20, 1_000, "the holds");
  const started = performance.now();
  await server.shutdown();
  assertLessOrEqual(performance.now() - started, 1_000);
  assertEquals(server.tarpit!.clients, 0);
  assertEquals(server.stats.outcomes.aborted, 20);
  for (const conn of conns) {
    await readFor(conn, 1_000); // ends at the close
    conn.close();
  }
});

/** A slot for a fake connection whose writes never complete. */
function stuckSlot(): Slot {
  const conn = {
    write: () => new Promise<number>(() => {}),
  } as unknown as Deno.Conn;
  return {
    conn,
    deadline: Infinity,
    client: undefined,
    list: {} as Slot["list"],
    prev: undefined,
    next: undefined,
  };
}

Deno.test("createTarpit frees a client whose write stays blocked past its deadline", async () => {
  const ends: string[] = [];
  const released: Slot[] = [];
  const stats = createServerStats();
  // The part of a server's state a tarpit uses.
  const server = {
    core: {
      closing: false,
      table: {
        release: (slot: Slot) => {
          released.push(slot);
          return true;
        },
      },
      stats,
    },
    onClose: (record: ConnectionRecord) =>
      ends.push(`${record.outcome} ${record.reason}`),
  } as unknown as ConnectionContext;
  const tarpit = createTarpit(
    { style: "ssh", interval: 20, lineLength: 32 },
    server,
    undefined,
    60,
  );
  const started = performance.now();
  const slot = stuckSlot();
  tarpit.hold(slot, new Uint8Array(0));
  await waitUntil(() => ends.length === 1, 1_000, "the release");
  assertEquals(ends, ["timed_out tarpit_blocked"]);
  assertGreaterOrEqual(performance.now() - started, 60);
  assertEquals(released, [slot]);
  assertEquals(tarpit.stats.clients, 0);
  assertEquals(stats.outcomes.timed_out, 1);
});

// Both ends hold a descriptor per client: fewer where the limit is low.
const softLimit = readFdLimit()?.soft ?? 1024;
const HELD = Math.max(
  100,
  Math.min(2_000, Math.floor((Number(softLimit) - 200) / 2)),
);

Deno.test(
  `greeter --tarpit holds ${HELD} clients for several intervals, frees one that leaves, and SIGTERM releases the rest within 1 s`,
  POSIX_SIGNALS,
  async () => {
    await using server = await startCli([
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--quiet",
      "--metrics",
      "127.0.0.1:0",
      "--tarpit",
      "--tarpit-interval",
      "50ms",
      "--drain-timeout",
      "10s",
    ], { permissions: ["--allow-net", "--allow-read"] });
    const metricsPort = await waitForMetricsPort(server);
    const conns = await pool(
      HELD,
      100,
      () => Deno.connect({ hostname: "127.0.0.1", port: server.port }),
    );
    // Each client gathers what comes, until the server closes it.
    const received = conns.map(() => "");
    const closedAt: number[] = [];
    const readers = conns.map(async (conn, i) => {
      const buffer = new Uint8Array(4096);
      try {
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          received[i] += decoder.decode(buffer.subarray(0, n));
        }
      } catch {
        // A reset is a release too.
      }
      closedAt[i] = performance.now();
    });
    let series = await scrapeSeries(metricsPort);
    const deadline = Date.now() + 3_000;
    while (series.get("greeter_tarpit_clients") !== HELD) {
      assert(Date.now() < deadline, "not every client is held");
      await sleep(20);
      series = await scrapeSeries(metricsPort);
    }
    // Several intervals for every one of them.
    await waitUntil(
      () => received.every((text) => text.split("\r\n").length > 4),
      3_000,
      "four lines for each client",
    );
    for (const text of received) {
      // A read may stop between two writes, never inside a line.
      assertGreaterOrEqual(checkSshLines(text, 32), 4);
    }
    // What arrived was sent, and counted once its write completed.
    const total = received.reduce((sum, text) => sum + text.length, 0);
    await sleep(300);
    series = await scrapeSeries(metricsPort);
    assertGreaterOrEqual(series.get("greeter_tarpit_bytes_sent_total")!, total);
    // One client leaves: the gauge drops within two intervals or so.
    conns[0].close();
    const leftAt = performance.now();
    while (
      (await scrapeSeries(metricsPort)).get("greeter_tarpit_clients") !==
        HELD - 1
    ) {
      assertLessOrEqual(performance.now() - leftAt, 1_000, "the gauge stays");
      await sleep(10);
    }
    const sentAt = performance.now();
    server.process.kill("SIGTERM");
    await Promise.all(readers);
    assertLessOrEqual(
      Math.max(...closedAt.slice(1)) - sentAt,
      1_000,
      "a client held longer than 1 s after SIGTERM",
    );
    const { code } = await server.stop();
    assertEquals(code, 0);
    for (const conn of conns.slice(1)) conn.close();
  },
);

Deno.test("greeter --tarpit logs a line when a held client leaves", async () => {
  await using server = await startCli([
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--tarpit",
    "--tarpit-interval",
    "20ms",
  ]);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await readFor(conn, 100);
  const port = (conn.localAddr as Deno.NetAddr).port;
  conn.close();
  const [line] = await server.waitFor(
    /Tarpit released 127\.0\.0\.1:\d+ after \d+\.\ds, \d+ bytes sent \(\w+\)/,
  );
  assertStringIncludes(line, `127.0.0.1:${port} `);
  assertStringIncludes(
    server.stdout(),
    `Connection received from 127.0.0.1:${port}`,
  );
});

Deno.test("greeter --tarpit flags: bad values and strays are usage errors", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--tarpit-style", "ssh"],
      /^greeter: --tarpit-style goes with --tarpit\n$/,
    ],
    [
      ["--tarpit-interval", "1s"],
      /^greeter: --tarpit-interval goes with --tarpit\n$/,
    ],
    [
      ["--tarpit", "--tarpit-style", "telnet"],
      /^greeter: Invalid value "telnet" for --tarpit-style: use one of ssh, greeting, http/,
    ],
    [
      ["--tarpit", "--tarpit-interval", "0"],
      /^greeter: Invalid value "0" for --tarpit-interval: use 1ms or more/,
    ],
    [
      ["--tarpit", "--tarpit-line-length", "2"],
      /^greeter: Invalid value "2" for --tarpit-line-length: use a whole number from 3 to 255\n$/,
    ],
    [
      ["--tarpit", "--tarpit-style", "http", "--tarpit-line-length", "7"],
      /^greeter: Invalid value "7" for --tarpit-line-length: use a whole number from 8 to 255\n$/,
    ],
    [
      ["--tarpit", "--workers", "2"],
      /^greeter: --tarpit serves from one thread: drop --workers/,
    ],
  ];
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await runCli(args);
    assertEquals(code, 2, args.join(" "));
    assertEquals(stdout, "");
    assertMatch(stderr, message);
  }
});

const ssh = await canRun("ssh", ["-V"]);
const curl = await canRun("curl");

Deno.test(
  `greeter --tarpit holds OpenSSH's ssh waiting for the version line${
    ssh
      ? ""
      : " (skipped: ssh is not installed; apt-get install openssh-client)"
  }`,
  { ignore: !ssh },
  async () => {
    await using server = serveGreeting({
      hostname: "127.0.0.1",
      port: 0,
      tarpit: { interval: 50 },
    });
    // ssh -v shows each line it read while waiting for "SSH-".
    const stderr = await assertHolds(server, [
      "ssh",
      "-v",
      "-F",
      "/dev/null",
      ...SSH_TEST_OPTIONS,
      "-o",
      "ConnectTimeout=4",
      "-p",
      String(server.addr.port),
      "tarpit@127.0.0.1",
      "true",
    ], /banner line \d+:/g);
    assert(
      !/Protocol major versions differ|Remote protocol version/.test(stderr),
    );
  },
);

Deno.test(
  `greeter --tarpit http style holds curl waiting for the end of the headers${
    curl ? "" : " (skipped: curl is not installed; apt-get install curl)"
  }`,
  { ignore: !curl },
  async () => {
    await using server = serveGreeting({
      hostname: "127.0.0.1",
      port: 0,
      tarpit: { style: "http", interval: 50 },
    });
    const stderr = await assertHolds(server, [
      "curl",
      "-sS",
      "-v",
      "-o",
      "/dev/null",
      `http://127.0.0.1:${server.addr.port}/`,
    ], /^< X-[a-z0-9]+: /gm);
    assertStringIncludes(stderr, "< HTTP/1.1 200 OK");
  },
);

Deno.test(
  `greeter --tarpit greeting style holds curl's SMTP client waiting for the final 220 line${
    curl ? "" : " (skipped: curl is not installed; apt-get install curl)"
  }`,
  { ignore: !curl },
  async () => {
    await using server = serveGreeting({
      hostname: "127.0.0.1",
      port: 0,
      greeting: encodeGreeting("220-mail.example.com ESMTP"),
      tarpit: { style: "greeting", interval: 50 },
    });
    await assertHolds(
      server,
      ["curl", "-sS", "-v", `smtp://127.0.0.1:${server.addr.port}/`],
      /^< 220-mail\.example\.com ESMTP/gm,
    );
  },
);

Deno.test("serveGreeting tarpit ends a held client at an explicit timeout", async () => {
  const records: ConnectionRecord[] = [];
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    timeout: 150,
    tarpit: { interval: 20 },
    onClose: (record) => records.push(record),
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const started = performance.now();
  const text = await readFor(conn, 2_000); // until the server closes it
  const lasted = performance.now() - started;
  assertGreaterOrEqual(lasted, 140);
  assertLessOrEqual(lasted, 1_000);
  assertGreaterOrEqual(checkSshLines(text, 32), 3);
  await waitUntil(() => records.length === 1, 1_000, "the record");
  assertEquals(records[0].outcome, "timed_out");
  assertEquals(server.tarpit!.clients, 0);
});

Deno.test("serveGreeting tarpit lets go at once of a client its timeout ends between two lines", async () => {
  const records: ConnectionRecord[] = [];
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    timeout: 150,
    maxPerIp: 1,
    // A line every 5 s: the timeout comes long before the next one.
    tarpit: { interval: 5_000 },
    onClose: (record) => records.push(record),
  });
  const address = { hostname: "127.0.0.1", port: server.addr.port };
  {
    using _conn = await Deno.connect(address);
    await waitUntil(() => records.length === 1, 2_000, "the release");
  }
  assertEquals(records[0].outcome, "timed_out");
  assertLessOrEqual(records[0].held!, 1_000);
  assertEquals(server.tarpit!.clients, 0);
  assertEquals(server.stats.active, 0);
  // Its place from that address is free again: the next one is held.
  using _again = await Deno.connect(address);
  await waitUntil(() => server.tarpit!.clients === 1, 1_000, "the hold");
  assertEquals(server.stats.refused.per_ip_limit, 0);
});

Deno.test(
  "greeter --tarpit under --log-rate logs both lines of a client or neither, and sums up each client once",
  POSIX_SIGNALS,
  async () => {
    await using server = await startCli([
      ..."-H 127.0.0.1 -p 0 --tarpit --tarpit-interval 20ms".split(" "),
      ..."--log-rate 5 --log-timestamps off".split(" "),
    ]);
    await pool(30, 10, async () => {
      using conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      await readFor(conn, 50);
    });
    const count = (text: string, pattern: RegExp) =>
      text.match(pattern)?.length ?? 0;
    const ARRIVED = /^Connection received from 127\.0\.0\.1:\d+$/gm;
    const RELEASED = /^Tarpit released 127\.0\.0\.1:\d+ after /gm;
    // Every client has left once its next line fails (20 ms at most).
    await waitUntil(
      () => count(server.stdout(), RELEASED) >= count(server.stdout(), ARRIVED),
      2_000,
      "a release line for each arrival line",
    );
    const { code, stdout } = await server.stop();
    assertEquals(code, 0);
    const arrived = count(stdout, ARRIVED);
    const summed = [
      ...stdout.matchAll(
        /^(\d+) more connections? from 127\.0\.0\.1 suppressed$/gm,
      ),
    ].reduce((sum, match) => sum + Number(match[1]), 0);
    assert(arrived >= 5 && arrived < 30, `${arrived} arrival lines`);
    assertEquals(count(stdout, RELEASED), arrived);
    assertEquals(arrived + summed, 30);
  },
);

Deno.test("greeter --tarpit --log-format json logs the held time when a client leaves", async () => {
  await using server = await startCli([
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--log-format",
    "json",
    "--tarpit",
    "--tarpit-interval",
    "20ms",
  ]);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await readFor(conn, 150);
  conn.close();
  const [line] = await server.waitFor(/\{[^\n]*"greeter\.held":[^\n]*\}\n/);
  const record = JSON.parse(line);
  assertEquals(record["event.action"], "connection");
  assertEquals(record["greeter.outcome"], "reset");
  assertGreaterOrEqual(record["greeter.held"], 0.1);
  assertGreaterOrEqual(record["greeter.bytes"], 3);
  assertMatch(record.message, /^Tarpit released 127\.0\.0\.1:\d+ after /);
});

Deno.test("serveGreeting tarpit reload: new clients get the new greeting, held ones keep theirs", async () => {
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    greeting: encodeGreeting("old"),
    tarpit: { style: "greeting", interval: 20 },
  });
  const address = { hostname: "127.0.0.1", port: server.addr.port };
  using before = await Deno.connect(address);
  await waitUntil(() => server.tarpit!.clients === 1, 1_000, "the hold");
  server.reload({ greeting: encodeGreeting("new") });
  using after = await Deno.connect(address);
  const [old, fresh] = await Promise.all([
    readFor(before, 200),
    readFor(after, 200),
  ]);
  assertGreaterOrEqual(old.length, 10);
  assertEquals(old, "old\r\n".repeat(40).slice(0, old.length));
  assertGreaterOrEqual(fresh.length, 10);
  assertEquals(fresh, "new\r\n".repeat(40).slice(0, fresh.length));
});
