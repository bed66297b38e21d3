// The reliability issue's scenarios, run for real: greeter as a subprocess
// (with a lowered open-file limit where the scenario says so), loopback
// clients from this process, counts of how every connection ended.
import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertLess,
  assertMatch,
} from "@std/assert";
import {
  canRun,
  DEFAULT_BYTES,
  readAll,
  scrapeSeries,
  SOAK,
  SOAK_SKIP,
  startCli,
  waitForMetricsPort,
} from "./_helpers.ts";
import {
  connectOnce,
  formatResult,
  hammer,
  type LoadResult,
  openFileLimit,
  rssKiB,
} from "./_reliability_client.ts";

const LINUX = Deno.build.os === "linux";
const HAS_PRLIMIT = LINUX && await canRun("prlimit", ["--version"]);
const HAS_NODE = await canRun("node");
const LOCAL = ["-H", "127.0.0.1", "-p", "0"];
/** greeter's open-file limit in the back-pressure scenarios. */
const FD_LIMIT = ["prlimit", "--nofile=64:64"];
/**
 * Connections in the back-pressure scenarios: enough for 500 clients at once
 * to exhaust 64 descriptors thousands of times over; the full 20,000
 * under GREETER_SOAK=1.
 */
const FD_TOTAL = SOAK ? 20_000 : 5_000;
const encoder = new TextEncoder();

/** The clients need their own file descriptors: say so rather than flake. */
async function assertClientFds(needed: number) {
  const limit = await openFileLimit();
  assert(
    limit >= needed,
    `This test opens ${needed} connections at once but the open-file limit ` +
      `is ${limit}: run it after "ulimit -n ${needed}"`,
  );
}

/** Polls the metrics until `condition` holds; fails after `ms`. */
async function waitForMetrics(
  port: number,
  condition: (metrics: Map<string, number>) => boolean,
  what: string,
  ms = 10_000,
): Promise<Map<string, number>> {
  const deadline = Date.now() + ms;
  while (true) {
    const metrics = await scrapeSeries(port);
    if (condition(metrics)) return metrics;
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out waiting for ${what}: ${JSON.stringify([...metrics])}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A temporary file of `size` bytes of printable ASCII, removed on dispose. */
async function messageFile(
  size: number,
): Promise<{ path: string; bytes: Uint8Array } & AsyncDisposable> {
  // The file's one line, and the default line ending greeter adds to it.
  const bytes = new Uint8Array(size + 2);
  for (let i = 0; i < size; i++) bytes[i] = 0x41 + (i % 26);
  bytes.set([13, 10], size);
  const path = await Deno.makeTempFile({ suffix: ".txt" });
  await Deno.writeFile(path, bytes.subarray(0, size));
  return {
    path,
    bytes,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path);
    },
  };
}

/** Connects, reads to the end, and returns the bytes and the client's port. */
async function fetchWithPort(
  port: number,
  hostname: string,
): Promise<{ bytes: Uint8Array; clientPort: number }> {
  const conn = await Deno.connect({ hostname, port });
  const clientPort = conn.localAddr.port;
  const chunks: number[] = [];
  const buffer = new Uint8Array(1024);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(...buffer.subarray(0, n));
    }
  } finally {
    conn.close();
  }
  return { bytes: new Uint8Array(chunks), clientPort };
}

/** Asserts that every connection got the whole greeting. */
function assertNoneLost(result: LoadResult, total: number) {
  const summary = formatResult(result);
  assertEquals(result.connections, total, summary);
  assertEquals(result.partial, 0, `${summary}; ${result.samples}`);
  assertEquals(result.wrong, 0, `${summary}; ${result.samples}`);
  assertEquals(result.lost, 0, summary);
  assertEquals(result.complete, total, summary);
}

/**
 * The back-pressure scenario: greeter limited to 64 open files, 500
 * clients at once making `FD_TOTAL` connections. Returns the clients'
 * counts and the server's metrics.
 */
async function runFdLimited(extraArgs: string[], stderr: string) {
  await assertClientFds(1_024);
  await using server = await startCli(
    [...LOCAL, "-q", "--metrics", "127.0.0.1:0", ...extraArgs],
    { prefix: FD_LIMIT },
  );
  const metrics = await waitForMetricsPort(server);
  assertEquals(await openFileLimit(server.process.pid), 64);
  const result = await hammer({
    port: server.port,
    expected: DEFAULT_BYTES,
    total: FD_TOTAL,
    concurrency: 500,
    deadlineMs: 30_000,
  });
  console.log(`greeter under ulimit -n 64: ${formatResult(result)}`);
  assertNoneLost(result, FD_TOTAL);
  // Still up: one more client is greeted.
  assertEquals(await readAll(server.port), DEFAULT_BYTES);
  const counters = await waitForMetrics(
    metrics,
    (m) => m.get("greeter_connections_active") === 0,
    "no connection active",
  );
  assertEquals(
    counters.get("greeter_connections_accepted_total"),
    FD_TOTAL + 1,
  );
  assertEquals(
    counters.get('greeter_connections_total{outcome="greeted"}'),
    FD_TOTAL + 1,
  );
  const stopped = await server.stop();
  assertEquals(stopped.code, 0, stopped.stderr);
  assertMatch(
    stopped.stdout,
    new RegExp(
      `\nServer stopped: ${FD_TOTAL + 1} connections, ${
        FD_TOTAL + 1
      } greeted\n$`,
    ),
  );
  // On stderr at most greeter's one line about a cap it could not fit (it
  // may not read the limit without --allow-all), however many accepts
  // failed: not Deno's update checker failing to read CA files for want of
  // descriptors (it is off, as in deno task start; see
  // docs/limitations.md).
  assertEquals(stopped.stderr, stderr);
  return { result, counters };
}

Deno.test({
  name: "greeter under ulimit -n 64 greets 500 clients making " +
    `${FD_TOTAL.toLocaleString("en")} connections`,
  ignore: !HAS_PRLIMIT,
  async fn() {
    // It may not read the limit (no --allow-all): the first EMFILE says so.
    const { counters } = await runFdLimited(
      [],
      "greeter: warning: out of open files (EMFILE) below --max-connections " +
        "10000: greeter could not read the open-file limit to fit the cap " +
        "to it (Deno reads /proc only with --allow-all). Raise the limit " +
        "(ulimit -n, or LimitNOFILE= in the systemd unit), lower " +
        "--max-connections, or give --allow-all\n",
    );
    // The limit was really reached: accepting failed with EMFILE and the
    // clients waited in the backlog.
    const emfile = counters.get('greeter_accept_errors_total{code="EMFILE"}') ??
      0;
    console.log(`accept errors EMFILE: ${emfile}`);
    assert(emfile > 0, "expected greeter to run out of file descriptors");
  },
});

Deno.test({
  name: "greeter under ulimit -n 64 with --max-connections 32 pauses instead",
  ignore: !HAS_PRLIMIT,
  async fn() {
    // The cap keeps greeter within its descriptors: nothing to say.
    const { counters } = await runFdLimited([
      "--max-connections",
      "32",
      "--backlog",
      "1024",
    ], "");
    const paused = counters.get("greeter_accept_paused_total") ?? 0;
    console.log(`accept paused at the cap: ${paused} times`);
    assert(paused > 0, "expected the accept loop to pause at the cap");
  },
});

Deno.test({
  // Informational only, it asserts nothing of greeter: a soak.
  name: "a Node net server under ulimit -n 64 loses greetings (for contrast)" +
    SOAK_SKIP,
  ignore: !HAS_PRLIMIT || !HAS_NODE || !SOAK,
  async fn() {
    // Informational only: the figure is logged, nothing is asserted on Node.
    const script = `const s = require("node:net").createServer((c) => {
      c.on("error", () => {});
      c.end("Connection Established\\r\\n");
    });
    s.on("error", () => {});
    s.listen(0, "127.0.0.1", 511, () => console.log(s.address().port));`;
    const node = new Deno.Command(FD_LIMIT[0], {
      args: [...FD_LIMIT.slice(1), "node", "-e", script],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const lines = node.stdout.pipeThrough(new TextDecoderStream());
    const reader = lines.getReader();
    try {
      const port = Number((await reader.read()).value);
      const result = await hammer({
        port,
        expected: DEFAULT_BYTES,
        total: FD_TOTAL,
        concurrency: 500,
        deadlineMs: 30_000,
      });
      console.log(`Node net under ulimit -n 64: ${formatResult(result)}`);
    } finally {
      node.kill();
      await node.status;
      await reader.cancel();
    }
  },
});

Deno.test({
  name: "greeter --max-per-ip refuses the extra client of one source only",
  async fn() {
    // Larger than loopback's socket buffers: a client that does not read
    // keeps its connection (and its slot) busy.
    await using file = await messageFile(16 * 1024 * 1024);
    await using server = await startCli([
      "-H",
      "::",
      "-p",
      "0",
      "-q",
      "--message-file",
      file.path,
      // Over the 1 MiB a message file may have by default.
      "--max-file-size",
      "16MiB",
      "--max-per-ip",
      "2",
      "--refuse-message",
      "Busy",
      "--timeout",
      "30000",
    ]);
    const held: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const conn = await Deno.connect({
          hostname: "127.0.0.1",
          port: server.port,
        });
        held.push(conn);
        // The first bytes prove the server admitted it; then it stops reading.
        assert((await conn.read(new Uint8Array(1024)))! > 0);
      }
      const third = await connectOnce({
        port: server.port,
        expected: encoder.encode("Busy\r\n"),
      });
      assertEquals(third, { kind: "complete" });
      // Another source (IPv6 loopback) is still served, in full.
      const v6 = await connectOnce({
        hostname: "::1",
        port: server.port,
        expected: file.bytes,
      });
      assertEquals(v6, { kind: "complete" });
    } finally {
      for (const conn of held) conn.close();
    }
    // Once they are gone, 127.0.0.1 is greeted again.
    const deadline = Date.now() + 10_000;
    let again;
    do {
      again = await connectOnce({ port: server.port, expected: file.bytes });
    } while (again.kind !== "complete" && Date.now() < deadline);
    assertEquals(again, { kind: "complete" });
    assertEquals((await server.stop()).code, 0);
  },
});

Deno.test({
  name:
    "greeter --rate-per-ip refuses a burst beyond the rate, then serves again",
  async fn() {
    await using server = await startCli([
      "-H",
      "::",
      "-p",
      "0",
      "-q",
      "--rate-per-ip",
      "5",
    ]);
    const burst = await hammer({
      port: server.port,
      expected: DEFAULT_BYTES,
      total: 20,
      concurrency: 20,
    });
    // Tokens refill at 5 a second, so a slow burst may earn one or two more.
    const summary = formatResult(burst);
    assert(burst.complete >= 5 && burst.complete <= 10, summary);
    assertEquals(burst.errors.closed, 20 - burst.complete, summary);
    assertEquals(burst.partial + burst.wrong, 0, summary);
    // Another source is not limited by this one's burst.
    assertEquals(await readAll(server.port, "::1"), DEFAULT_BYTES);
    // The service is never disabled: the bucket refills (a token every
    // 200 ms), and a refused try takes none.
    const deadline = Date.now() + 5_000;
    let again;
    do {
      await new Promise((resolve) => setTimeout(resolve, 100));
      again = await connectOnce({ port: server.port, expected: DEFAULT_BYTES });
    } while (again.kind !== "complete" && Date.now() < deadline);
    assertEquals(again, { kind: "complete" });
    assertEquals((await server.stop()).code, 0);
  },
});

Deno.test({
  name:
    "greeter --deny 127.0.0.0/8 on :: refuses IPv4 and greets ::1, logged right",
  async fn() {
    await using server = await startCli([
      "-H",
      "::",
      "-p",
      "0",
      "--deny",
      "127.0.0.0/8",
      "--log-format",
      "json",
      "--log-rate",
      "0",
    ]);
    const v4 = await fetchWithPort(server.port, "127.0.0.1");
    assertEquals(v4.bytes.length, 0);
    const v6 = await fetchWithPort(server.port, "::1");
    assertEquals(v6.bytes, DEFAULT_BYTES);
    await server.waitFor(
      /"event.action":"connection".*\n.*"event.action":"connection"/,
    );
    const { code, stdout } = await server.stop();
    assertEquals(code, 0);
    const connections = stdout.trim().split("\n").map((line) =>
      JSON.parse(line)
    ).filter((line) => line["event.action"] === "connection");
    const byRemote = new Map(
      connections.map((line) => [
        `${line["client.address"]}|${line["client.port"]}`,
        line,
      ]),
    );
    const refused = byRemote.get(`127.0.0.1|${v4.clientPort}`);
    assert(refused, `no line for 127.0.0.1:${v4.clientPort}: ${stdout}`);
    assertEquals(
      [refused["greeter.outcome"], refused["greeter.reason"]],
      ["refused", "denied"],
    );
    assertEquals(refused["event.outcome"], "failure");
    assertEquals(refused["greeter.bytes"], 0);
    const greeted = byRemote.get(`::1|${v6.clientPort}`);
    assert(greeted, `no line for [::1]:${v6.clientPort}: ${stdout}`);
    assertEquals(greeted["greeter.outcome"], "greeted");
    assertEquals(greeted["greeter.bytes"], 24);
    assert(!stdout.includes("::ffff:"), stdout);
  },
});

Deno.test({
  name: "greeter --timeout frees 200 never-reading clients of a 1 MiB greeting",
  ignore: !LINUX,
  async fn() {
    await assertClientFds(512);
    await using file = await messageFile(1024 * 1024 - 2);
    await using server = await startCli([
      ...LOCAL,
      "-q",
      "--message-file",
      file.path,
      "--timeout",
      "1000",
      "--metrics",
      "127.0.0.1:0",
    ]);
    const metrics = await waitForMetricsPort(server);
    const pid = server.process.pid;
    const rssStart = await rssKiB(pid);
    const idle = await Promise.all(
      Array.from(
        { length: 200 },
        () => Deno.connect({ hostname: "127.0.0.1", port: server.port }),
      ),
    );
    try {
      await waitForMetrics(
        metrics,
        (m) => m.get("greeter_connections_accepted_total") === 200,
        "200 accepted",
      );
      const rssBusy = await rssKiB(pid);
      // A normal client is served at once, whatever the idle ones do: its
      // own connection is also bounded by --timeout 1000.
      const started = Date.now();
      const normal = await connectOnce({
        port: server.port,
        expected: file.bytes,
      });
      const took = Date.now() - started;
      assertEquals(normal, { kind: "complete" });
      const freeing = Date.now();
      const freed = await waitForMetrics(
        metrics,
        (m) => m.get("greeter_connections_active") === 0,
        "every slot freed",
        5_000,
      );
      const freedAfter = Date.now() - freeing;
      const rssEnd = await rssKiB(pid);
      const outcome = (name: string) =>
        freed.get(`greeter_connections_total{outcome="${name}"}`) ?? 0;
      console.log(
        `normal client greeted in ${took} ms; every slot free ${freedAfter} ` +
          `ms later (${outcome("greeted")} greeted, ${outcome("timed_out")} ` +
          `timed out); RSS ${rssStart} KiB at start, ${rssBusy} KiB with ` +
          `200 idle, ${rssEnd} KiB after`,
      );
      assertEquals(outcome("greeted") + outcome("timed_out"), 201);
      assertLess(Math.max(rssBusy, rssEnd), 200 * 1024);
    } finally {
      for (const conn of idle) conn.close();
    }
    assertEquals((await server.stop()).code, 0);
  },
});

Deno.test({
  name: "greeter lingers so a client that sends first gets the whole greeting",
  async fn() {
    await using file = await messageFile(4 * 1024 * 1024);
    // A client that sends an HTTP request, waits, then reads to the end.
    const probe = async (port: number) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      let received = 0;
      let error = "eof";
      try {
        const request = "GET / HTTP/1.0\r\n\r\n" + "x".repeat(10_000);
        await conn.write(encoder.encode(request));
        await new Promise((resolve) => setTimeout(resolve, 300));
        const buffer = new Uint8Array(64 * 1024);
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          assertEquals(
            buffer.subarray(0, n),
            file.bytes.subarray(received, received + n),
          );
          received += n;
        }
      } catch (caught) {
        error = (caught as Error).name;
      } finally {
        conn.close();
      }
      return { received, error };
    };
    {
      await using server = await startCli([
        ...LOCAL,
        "-q",
        "--message-file",
        file.path,
        "--max-file-size",
        "4MiB",
      ]);
      const result = await probe(server.port);
      assertEquals(result, { received: file.bytes.length, error: "eof" });
      assertEquals((await server.stop()).code, 0);
    }
    if (SOAK) {
      // For contrast (not asserted, so only in a soak run): without linger
      // the unread request usually makes the close a reset, and the client
      // loses the tail.
      await using server = await startCli([
        ...LOCAL,
        "-q",
        "--message-file",
        file.path,
        "--max-file-size",
        "4MiB",
        "--linger",
        "0",
      ]);
      const result = await probe(server.port);
      console.log(
        `--linger 0: ${result.received} of ${file.bytes.length} bytes, ` +
          result.error,
      );
      assertEquals((await server.stop()).code, 0);
    }
  },
});

/**
 * SIGTERM in the middle of a run: after `after` connections of `total`,
 * `concurrency` at a time. Every client must get the whole greeting or
 * nothing at all, and greeter must exit 0 within its drain timeout.
 */
async function runSigterm(
  options: {
    total: number;
    concurrency: number;
    after: number;
    greeting: Uint8Array;
    args: string[];
  },
) {
  const { total, concurrency, after, greeting, args } = options;
  const drainTimeout = 2_000;
  await using server = await startCli([
    ...LOCAL,
    "-q",
    "--drain-timeout",
    String(drainTimeout),
    ...args,
  ]);
  const stop: { exited?: Promise<{ code: number; stdout: string }> } = {};
  let exitedAfter = 0;
  const result = await hammer({
    port: server.port,
    expected: greeting,
    total,
    concurrency,
    deadlineMs: 30_000,
    onResult(sofar) {
      if (!stop.exited && sofar.connections >= after) {
        const signalled = performance.now();
        stop.exited = server.stop("SIGTERM").then((stopped) => {
          exitedAfter = performance.now() - signalled;
          return stopped;
        });
      }
    },
  });
  if (!stop.exited) throw new Error("SIGTERM was never sent");
  const { code, stdout } = await stop.exited;
  const summary = formatResult(result);
  const [, accepted, greeted] = stdout.match(
    /Server stopped: (\d+) connections, (\d+) greeted\n$/,
  ) ?? [];
  console.log(
    `SIGTERM after ${after} of ${total} (${greeting.length}-byte greeting, ` +
      `${concurrency} at once): ${summary}; exit ${code} ` +
      `${Math.round(exitedAfter)} ms after the signal; server: ${accepted} ` +
      `accepted, ${greeted} greeted`,
  );
  assertEquals(code, 0);
  assertLess(exitedAfter, drainTimeout + 1_000);
  assertEquals(result.connections, total, summary);
  assertEquals(result.partial, 0, `${summary}; ${result.samples}`);
  assertEquals(result.wrong, 0, `${summary}; ${result.samples}`);
  assertGreaterOrEqual(result.complete, after - concurrency, summary);
  // Whatever was not greeted got nothing at all: refused, reset or closed.
  const failed = Object.values(result.errors).reduce((a, b) => a + b, 0);
  assertEquals(result.complete + failed, total, summary);
  // Every greeting the server counts, a client received whole.
  assertEquals(Number(greeted), result.complete, `${summary}; ${stdout}`);
}

Deno.test({
  name: "greeter on SIGTERM under load: no partial greeting, exit 0 in time",
  async fn() {
    // Half the run after the signal: the clients refused once it stops.
    await runSigterm({
      total: 6_000,
      concurrency: 200,
      after: 3_000,
      greeting: DEFAULT_BYTES,
      args: [],
    });
  },
});

Deno.test({
  name: "greeter on SIGTERM drains large greetings in flight, none partial",
  async fn() {
    // Large enough to take many writes, so connections are mid-greeting
    // when the signal comes and the drain has something to finish.
    await using file = await messageFile(256 * 1024);
    await runSigterm({
      total: 2_000,
      concurrency: 100,
      after: 1_000,
      greeting: file.bytes,
      args: ["--message-file", file.path],
    });
  },
});
