import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import {
  DEFAULT_BYTES,
  pool,
  readAll,
  ROOT,
  runCli,
  startCli,
  waitForMetricsPort,
  waitUntil,
  withTempDir,
} from "./_helpers.ts";

const LOCAL = ["-H", "127.0.0.1", "-p", "0"];
/** `deno run` flags for --workers: reusePort needs --unstable-net. */
const UNSTABLE = {
  permissions: ["--allow-net", "--allow-read", "--unstable-net"],
};
const linuxOnly = { ignore: Deno.build.os !== "linux" };

/** One scrape of /metrics. */
async function scrape(base: string): Promise<string> {
  return await (await fetch(`${base}/metrics`)).text();
}

/** Scrapes every 50 ms until `done`, for up to 5 s. */
async function scrapeUntilDone(
  base: string,
  done: (metrics: string) => boolean,
): Promise<string> {
  const deadline = Date.now() + 5_000;
  let metrics = await scrape(base);
  while (!done(metrics)) {
    if (Date.now() > deadline) {
      throw new Error(`The metrics never added up; last scrape:\n${metrics}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    metrics = await scrape(base);
  }
  return metrics;
}

function workerCounts(metrics: string): number[] {
  return [
    ...metrics.matchAll(
      /^greeter_worker_connections_accepted_total\{worker="(\d+)"\} (\d+)$/gm,
    ),
  ].map((match) => Number(match[2]));
}

Deno.test(
  "greeter --workers 2 spreads 2,000 connections and logs each once",
  linuxOnly,
  async () => {
    await using server = await startCli([
      "--workers",
      "2",
      ...LOCAL,
      "--log-rate",
      "0",
      "--metrics",
      "127.0.0.1:0",
    ], UNSTABLE);
    const metricsPort = await waitForMetricsPort(server);
    const base = `http://127.0.0.1:${metricsPort}`;
    const greetings = await pool(2_000, 50, () => readAll(server.port));
    assertEquals(
      greetings.filter((bytes) =>
        bytes.length === DEFAULT_BYTES.length &&
        bytes.every((byte, i) => byte === DEFAULT_BYTES[i])
      ).length,
      2_000,
    );

    const metrics = await scrapeUntilDone(
      base,
      // Counted once each connection has closed, after its greeting.
      (text) =>
        text.includes("\ngreeter_connection_duration_seconds_count 2000\n"),
    );
    assertStringIncludes(
      metrics,
      "\ngreeter_connections_accepted_total 2000\n",
    );
    assertStringIncludes(
      metrics,
      '\ngreeter_connections_total{outcome="greeted"} 2000\n',
    );
    assertStringIncludes(metrics, "\ngreeter_bytes_written_total 48000\n");
    const perWorker = workerCounts(metrics);
    assertEquals(perWorker.length, 2);
    assertEquals(perWorker[0] + perWorker[1], 2_000);
    assert(
      perWorker.every((count) => count > 0),
      `connections by worker: ${perWorker}`,
    );
    const health = await fetch(`${base}/healthz`);
    assertEquals([health.status, await health.text()], [200, "ok\n"]);

    const { code, stdout, stderr } = await server.stop("SIGTERM");
    assertEquals(code, 0, stderr);
    const lines = stdout.split("\n");
    assertEquals(lines.pop(), "");
    assertEquals(
      lines.filter((line) => line.startsWith("Connection received from "))
        .length,
      2_000,
    );
    // Lines from two threads never interleave: each is one whole line.
    for (const line of lines) {
      assertMatch(
        line,
        /^(Connection received from 127\.0\.0\.1:\d+|Server is listening for incoming connections on 127\.0\.0\.1:\d+|Metrics are served on http:\/\/127\.0\.0\.1:\d+\/metrics|Shutting down: no new connections, finishing greetings|Server stopped: 2000 connections, 2000 greeted)$/,
      );
    }
    assertMatch(lines[0], /^Server is listening /);
    assertEquals(
      lines.at(-1),
      "Server stopped: 2000 connections, 2000 greeted",
    );
    assertEquals(
      lines.filter((line) => line.startsWith("Server is listening")).length,
      1,
    );
  },
);

Deno.test(
  "greeter --workers 2 logs JSON once per connection with summed totals",
  linuxOnly,
  async () => {
    await using server = await startCli([
      "--workers",
      "2",
      ...LOCAL,
      "-p",
      "0",
      "--log-format",
      "json",
      "--log-rate",
      "0",
    ], UNSTABLE);
    const start = JSON.parse(server.stdout().split("\n")[0]);
    assertEquals(start["event.action"], "start");
    // Two port-0 listeners: the first worker chose both ports, the second
    // listens on the same two.
    assertEquals(start["greeter.listen"].length, 2);
    const ports = start["greeter.listen"].map((addr: string) =>
      Number(addr.split(":")[1])
    );
    assert(ports[0] !== ports[1] && ports.every((p: number) => p > 0));
    for (const port of ports) {
      await pool(200, 20, async () => {
        assertEquals(await readAll(port), DEFAULT_BYTES);
      });
    }
    await waitUntil(
      () =>
        (server.stdout().match(/"event.action":"connection"/g)?.length ?? 0) ===
          400,
      5_000,
      "400 connection lines",
    );
    const { code, stdout } = await server.stop("SIGINT");
    assertEquals(code, 0);
    const events = stdout.trim().split("\n").map((line) => JSON.parse(line));
    const action = (e: Record<string, unknown>) => e["event.action"];
    assertEquals(events.filter((e) => action(e) === "start").length, 1);
    assertEquals(
      events.filter((e) => action(e) === "connection").length,
      400,
    );
    const stop = events.at(-1);
    assertEquals(action(stop), "stop");
    assertEquals(
      [stop["greeter.accepted"], stop["greeter.outcomes"].greeted],
      [400, 400],
    );
    assertEquals(stop["error.message"], undefined);
  },
);

Deno.test(
  "greeter --workers 2 counts in the scrape right after the greetings",
  linuxOnly,
  async () => {
    await using server = await startCli([
      "--workers",
      "2",
      ...LOCAL,
      "-q",
      "--metrics",
      "127.0.0.1:0",
    ], UNSTABLE);
    const base = `http://127.0.0.1:${await waitForMetricsPort(server)}`;
    // Each round's clients have their greetings (accepted, counted) before
    // the one scrape: the workers' last periodic reports cannot have them.
    for (let round = 1; round <= 3; round++) {
      await pool(20, 10, () => readAll(server.port));
      const metrics = await scrape(base);
      assertStringIncludes(
        metrics,
        `\ngreeter_connections_accepted_total ${20 * round}\n`,
      );
      const perWorker = workerCounts(metrics);
      assertEquals(perWorker[0] + perWorker[1], 20 * round);
    }
    const { code } = await server.stop("SIGTERM");
    assertEquals(code, 0);
  },
);

Deno.test(
  "greeter --workers 2 answers SIGUSR2 with fresh totals and drains on SIGTERM",
  linuxOnly,
  async () => {
    await using server = await startCli([
      "--workers",
      "2",
      ...LOCAL,
      "-q",
      "--metrics",
      "127.0.0.1:0",
    ], UNSTABLE);
    const metricsPort = await waitForMetricsPort(server);
    await pool(10, 5, () => readAll(server.port));
    server.process.kill("SIGUSR2");
    const [line] = await server.waitFor(/^Stats: uptime .*$/m);
    assertMatch(line, /; accepted 10; greeted 10, /);

    // A client that does not close keeps its worker draining (lingering).
    const held = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    const buffer = new Uint8Array(64);
    let read = 0;
    while (read < DEFAULT_BYTES.length) {
      read += (await held.read(buffer.subarray(read))) ?? Infinity;
    }
    server.process.kill("SIGTERM");
    await server.waitFor(/^Shutting down/m);
    const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    assertEquals([health.status, await health.text()], [503, "draining\n"]);
    held.close();
    // Exits by itself once the client closes; a second SIGTERM could land
    // after the handlers are gone.
    await server.process.status;
    const { code, stdout } = await server.stop();
    assertEquals(code, 0);
    assertStringIncludes(
      stdout,
      "Server stopped: 11 connections, 11 greeted\n",
    );
  },
);

/** Runs a worker fixture of tests/ on loopback with `args` after it. */
function runFixture(name: string, ...args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--unstable-net",
      `${ROOT}/tests/${name}`,
      ...LOCAL,
      "--workers",
      "2",
      ...args,
    ],
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
}

Deno.test(
  "a crashing worker is reported and the others shut down",
  linuxOnly,
  async () => {
    const output = await runFixture("_workers_fixture.ts");
    const stderr = new TextDecoder().decode(output.stderr);
    assertEquals(output.code, 0, stderr);
    assertEquals(stderr, "");
    const result = JSON.parse(new TextDecoder().decode(output.stdout));
    assertEquals(result.failure, "worker 1 failed: boom");
    assertEquals(result.draining, true);
  },
);

Deno.test(
  "a worker answers each request in the order asked, so a refresh sent during a reload does not answer for it",
  linuxOnly,
  async () => {
    await withTempDir(async (dir) => {
      const keyFile = `${dir}/key`;
      await Deno.writeFile(keyFile, new Uint8Array(32).fill(7));
      const output = await runFixture(
        "_workers_order_fixture.ts",
        "--log-address",
        "hash",
        "--log-key-file",
        keyFile,
      );
      const stderr = new TextDecoder().decode(output.stderr);
      assertEquals(output.code, 0, stderr);
      const result = JSON.parse(new TextDecoder().decode(output.stdout));
      assertMatch(
        result.refused,
        /^worker [01]: Invalid key: expected at least \d+ bytes, got 1$/,
      );
      assertEquals(result.reloaded, undefined);
      assertEquals(result.failure, undefined);
    });
  },
);

Deno.test("greeter --workers needs --unstable-net", linuxOnly, async () => {
  const result = await runCli(["--workers", "2", ...LOCAL], {
    unstableNet: false,
  });
  assertEquals(result.code, 2);
  assertEquals(
    result.stderr,
    "greeter: --workers needs deno run --unstable-net\n",
  );
  assertEquals(result.stdout, "");
});

Deno.test(
  "greeter --workers names the read permission its worker module needs",
  linuxOnly,
  async () => {
    const result = await runCli(["--workers", "2", ...LOCAL], {
      permissions: ["--allow-net", "--unstable-net"],
    });
    assertEquals(result.code, 1);
    assertMatch(
      result.stderr,
      /^greeter: Cannot start the workers: missing permission \(read access to ".*\/lib\/cli\/workers\/entry\.ts"\): run deno again with --allow-read\n$/,
    );
    assertEquals(result.stdout, "");
  },
);

Deno.test("greeter --workers 1 is the single-threaded server", async () => {
  await using server = await startCli(["--workers", "1", ...LOCAL, "-q"]);
  assertEquals(await readAll(server.port), DEFAULT_BYTES);
  assertEquals((await server.stop()).code, 0);
});

Deno.test("greeter --workers rejects bad values and --unix", async () => {
  for (
    const args of [
      ["--workers", "0"],
      ["--workers", "65"],
      ["--workers", "two"],
      ["--workers", "2", "--unix", "x.sock"],
    ]
  ) {
    const result = await runCli([...args, ...LOCAL], UNSTABLE);
    assertEquals(result.code, 2, args.join(" "));
    assertEquals(result.stderr.trim().split("\n").length, 1);
    assertMatch(result.stderr, /^greeter: .*--workers/);
  }
});

Deno.test("greeter --workers 2 needs Linux", {
  ignore: Deno.build.os === "linux",
}, async () => {
  const result = await runCli(["--workers", "2", ...LOCAL], UNSTABLE);
  assertEquals(result.code, 2);
  assertEquals(
    result.stderr,
    "greeter: --workers needs Linux (SO_REUSEPORT)\n",
  );
});

Deno.test(
  "greeter --workers 2 reads the message file once per reload: through a " +
    "SIGHUP storm with the file rewritten meanwhile, every greeting is whole " +
    "and every worker serves the same one",
  linuxOnly,
  async () => {
    await withTempDir(async (dir) => {
      const path = `${dir}/message.txt`;
      // Written as editors do: a new file renamed into place.
      const write = async (text: string) => {
        await Deno.writeTextFile(`${path}.new`, text);
        await Deno.rename(`${path}.new`, path);
      };
      await write("version 0");
      await using server = await startCli(
        [...LOCAL, "--workers", "2", "--message-file", path, "-q"],
        { permissions: ["--allow-net", "--allow-read"] },
      );
      for (let round = 1; round <= 8; round++) {
        await write(`version ${round}a`);
        server.process.kill("SIGHUP");
        // Rewritten again while the reload may be reading it.
        await write(`version ${round}b`);
        await server.waitFor(
          new RegExp(`(Configuration reloaded[^]*){${round}}`),
        );
        const greetings = await Promise.all(
          Array.from({ length: 12 }, () => readAll(server.port)),
        );
        const texts = new Set(
          greetings.map((g) => new TextDecoder().decode(g)),
        );
        assertEquals(texts.size, 1, `round ${round}: ${[...texts]}`);
        const [text] = texts;
        assertMatch(text, new RegExp(`^version ${round}[ab]\\r\\n$`));
      }
      const { code } = await server.stop();
      assertEquals(code, 0);
    });
  },
);

Deno.test(
  "greeter --workers 2 on a port another greeter --workers holds exits 1, not sharing it",
  linuxOnly,
  async () => {
    await using first = await startCli(
      ["--workers", "2", ...LOCAL, "-q", "-m", "first"],
      UNSTABLE,
    );
    // SO_REUSEPORT would let the second join the first's port and take a
    // share of its clients.
    const port = String(first.port);
    const result = await runCli(
      ["--workers", "2", "-H", "127.0.0.1", "-p", port, "-q", "-m", "second"],
      // Ended (exit 124) if it starts serving after all.
      { ...UNSTABLE, prefix: ["timeout", "10"] },
    );
    assertEquals(result.code, 1);
    assertEquals(
      result.stderr,
      `greeter: Cannot listen on 127.0.0.1:${port}: the address is already ` +
        "in use; stop the other server or choose another -p (0 picks a free " +
        "one)\n",
    );
    assertEquals(result.stdout, "");
  },
);
