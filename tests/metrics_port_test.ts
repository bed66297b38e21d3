// The metrics port cannot hurt: greeter run out of descriptors keeps
// greeting and answers /metrics again once descriptors free up.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  canRun,
  DEFAULT_BYTES,
  parseSeries,
  readAll,
  startCli,
  waitForMetricsPort,
} from "./_helpers.ts";
import { promtoolCheck } from "./_tools.ts";

const HAS_PRLIMIT = Deno.build.os === "linux" &&
  await canRun("prlimit", ["--version"]);
const HAS_PROMTOOL = await canRun("promtool");
const LIMIT = 128;
const HELD = 150;

/**
 * Scrapes /metrics on a new connection (no pooled one: each scrape must
 * cost the server a descriptor), or gives undefined if no answer comes
 * within `ms`.
 */
async function tryScrape(
  port: number,
  ms: number,
): Promise<string | undefined> {
  using client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
      signal: AbortSignal.timeout(ms),
      client,
    });
    return await response.text();
  } catch {
    return undefined;
  }
}

/** The value of one series in a scrape, or undefined. */
const seriesOf = (text: string, series: string) =>
  parseSeries(text).get(series);

Deno.test({
  name: `greeter --metrics under ulimit -n ${LIMIT} survives ${HELD} held ` +
    "connections, then greets and answers /metrics again" +
    (HAS_PRLIMIT ? "" : " (skipped: prlimit not found, or not Linux)"),
  ignore: !HAS_PRLIMIT,
  async fn() {
    // Not --allow-all: with it greeter reads the open-file limit and lowers
    // its cap to fit (tests/daemon_test.ts), so accepting would pause at the
    // cap instead of running out. Held clients never close, and --linger
    // keeps them.
    await using server = await startCli(
      [
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "-q",
        "--metrics",
        "127.0.0.1:0",
        "--linger",
        "60000",
        "--timeout",
        "60000",
      ],
      {
        prefix: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`],
        permissions: ["--allow-net", "--allow-read"],
      },
    );
    const port = await waitForMetricsPort(server);
    const before = await tryScrape(port, 5_000);
    if (before === undefined) throw new Error("No scrape before the test");

    const held: Deno.TcpConn[] = [];
    const greeted: Promise<boolean>[] = [];
    let scrapes = 0;
    let answered = 0;
    try {
      for (let i = 0; i < HELD; i++) {
        const conn = await Deno.connect({
          hostname: "127.0.0.1",
          port: server.port,
        });
        held.push(conn);
        // True once this connection got its greeting (it was accepted).
        greeted.push(
          conn.read(new Uint8Array(64)).then((n) => n !== null, () => false),
        );
      }
      // Out of descriptors: scrapes go unanswered (Deno.serve's endpoint
      // died here with "Uncaught (in promise) Http: Error: Too many open
      // files"), and the process stays up.
      for (let i = 0; i < 5; i++) {
        scrapes++;
        if (await tryScrape(port, 400) !== undefined) answered++;
      }
      const exited = await Promise.race([
        server.process.status.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(resolve, 100, false)),
      ]);
      assert(!exited, "greeter exited while out of descriptors");
    } finally {
      for (const conn of held) conn.close();
    }
    const accepted = (await Promise.all(greeted)).filter(Boolean).length;
    console.log(
      `held ${HELD}: ${accepted} greeted while held, ` +
        `${answered} of ${scrapes} scrapes answered while held`,
    );
    // Not every held client fitted: the limit was really reached.
    assert(accepted < HELD, `${accepted} of ${HELD} greeted`);

    // Descriptors free up: the metrics answer again, within the accept
    // loop's back-off (at most 1 s) and the lingering clients' close.
    const start = performance.now();
    let after: string | undefined;
    while (after === undefined && performance.now() - start < 10_000) {
      after = await tryScrape(port, 2_000);
    }
    if (after === undefined) {
      throw new Error("No scrape answered after the held clients closed");
    }
    console.log(
      `first scrape answered ${Math.round(performance.now() - start)} ms ` +
        "after the held clients closed",
    );
    // A normal client gets the exact greeting.
    assertEquals(await readAll(server.port), DEFAULT_BYTES);

    const emfile = seriesOf(
      after,
      'greeter_accept_errors_total{code="EMFILE"}',
    );
    const metricsEmfile = seriesOf(
      after,
      'greeter_metrics_accept_errors_total{code="EMFILE"}',
    );
    console.log(
      `accept errors EMFILE: greeting port ${emfile}, metrics port ` +
        `${metricsEmfile}`,
    );
    assert(emfile && emfile > 0, after);
    assert(metricsEmfile && metricsEmfile > 0, after);
    assertStringIncludes(after, "\nprocess_resident_memory_bytes ");
    assertEquals(after.match(/^# TYPE greeter_build_info /gm)?.length, 1);
    if (HAS_PROMTOOL) {
      assertEquals(await promtoolCheck(after), [0, ""]);
    } else {
      console.log("promtool not found: the scrape was not checked with it");
    }

    const stopped = await server.stop();
    assertEquals(stopped.code, 0, stopped.stderr);
    assert(!stopped.stderr.includes("Uncaught"), stopped.stderr);
  },
});
