/**
 * A bounded soak test: starts greeter (`-q`, 127.0.0.1, a free port, metrics
 * on) as a subprocess, hammers it over loopback for a while, checks every
 * greeting byte for byte, samples the server's memory, and compares the
 * server's own counters with the client's.
 *
 * ```sh
 * deno task soak                       # 60 s, 100 connections at once
 * deno task soak --seconds 10 --concurrency 200
 * ```
 *
 * Exits 0 only if no greeting was lost (every connection got the whole
 * greeting) and the server's counts match the client's; 1 otherwise, 2 for
 * bad options. Linux only (memory comes from /proc).
 *
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import {
  DEFAULT_BYTES,
  scrapeSeries,
  startCli,
  waitForMetricsPort,
} from "../tests/_helpers.ts";
import { BINARY_FLAGS } from "./permissions.ts";
import {
  formatResult,
  hammer,
  type LoadResult,
  rssKiB,
} from "../tests/_reliability_client.ts";

interface Sample {
  seconds: number;
  connections: number;
  complete: number;
  lost: number;
  rssKiB: number;
}

function usage(message: string): never {
  console.error(`soak: ${message}`);
  console.error("usage: deno task soak [--seconds N] [--concurrency N]");
  Deno.exit(2);
}

function wholeOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 100_000) {
    usage(`--${name} must be a whole number from 1 to 100000, not "${text}"`);
  }
  return Number(text);
}

const mib = (kib: number) => (kib / 1024).toFixed(1);

async function main(): Promise<number> {
  const flags = parseArgs(Deno.args, {
    string: ["seconds", "concurrency"],
    boolean: ["help"],
    alias: { h: "help" },
    unknown: (arg: string) => usage(`unknown argument ${arg}`),
  });
  if (flags.help) {
    console.log(
      "Usage: deno task soak [--seconds N (default 60)] " +
        "[--concurrency C (default 100)]\n" +
        "Starts greeter, keeps C connections in flight for N seconds, checks " +
        "every greeting byte for byte and the server's counters, and samples " +
        "its memory. Exits 0 only if nothing was lost.",
    );
    return 0;
  }
  const seconds = wholeOption(flags.seconds, "seconds", 60);
  const concurrency = wholeOption(flags.concurrency, "concurrency", 100);
  if (Deno.build.os !== "linux") usage("needs Linux (/proc) for memory");

  await using server = await startCli([
    "-H",
    "127.0.0.1",
    "-p",
    "0",
    "-q",
    "--metrics",
    "127.0.0.1:0",
  ], { permissions: [...BINARY_FLAGS] }); // As the binaries run it.
  const metricsAt = await waitForMetricsPort(server);
  const pid = server.process.pid;
  console.log(
    `soak: ${seconds} s, ${concurrency} connections at once, greeter ` +
      `(pid ${pid}) on 127.0.0.1:${server.port}, metrics on :${metricsAt}`,
  );

  const started = performance.now();
  const samples: Sample[] = [];
  let live: LoadResult | undefined;
  const sample = async () => {
    const s = {
      seconds: Math.round((performance.now() - started) / 1000),
      connections: live?.connections ?? 0,
      complete: live?.complete ?? 0,
      lost: live?.lost ?? 0,
      rssKiB: await rssKiB(pid),
    };
    samples.push(s);
    const previous = samples.at(-2);
    const rate = previous && s.seconds > previous.seconds
      ? Math.round(
        (s.connections - previous.connections) /
          (s.seconds - previous.seconds),
      )
      : 0;
    console.log(
      `  t=${String(s.seconds).padStart(3)} s  connections ` +
        `${String(s.connections).padStart(8)}  greeted ` +
        `${String(s.complete).padStart(8)}  lost ${s.lost}  ` +
        `${String(rate).padStart(6)} conn/s  RSS ${mib(s.rssKiB)} MiB`,
    );
  };
  await sample();

  const stop = new AbortController();
  const finish = setTimeout(() => stop.abort(), seconds * 1000);
  let sampling = Promise.resolve();
  const ticker = setInterval(() => {
    sampling = sampling.then(sample);
  }, 10_000);
  const result = await hammer({
    port: server.port,
    expected: DEFAULT_BYTES,
    total: Infinity,
    concurrency,
    deadlineMs: 30_000,
    signal: stop.signal,
    onResult: (sofar) => live = sofar,
  });
  clearTimeout(finish);
  clearInterval(ticker);
  await sampling;
  live = result;
  if (samples.at(-1)!.connections !== result.connections) await sample();

  // Let the server finish its last lingering connections, then read its
  // counters.
  let metrics = await scrapeSeries(metricsAt);
  const settle = Date.now() + 10_000;
  while (metrics.get("greeter_connections_active") !== 0) {
    if (Date.now() > settle) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
    metrics = await scrapeSeries(metricsAt);
  }
  const rssEnd = await rssKiB(pid);
  const stopped = await server.stop("SIGTERM");
  const final = /Server stopped: (\d+) connections, (\d+) greeted\n$/.exec(
    stopped.stdout,
  );

  const outcome = (name: string) =>
    metrics.get(`greeter_connections_total{outcome="${name}"}`) ?? 0;
  const accepted = metrics.get("greeter_connections_accepted_total") ?? -1;
  const acceptErrors =
    [...metrics].filter(([key]) =>
      key.startsWith("greeter_accept_errors_total")
    ).map(([key, value]) => `${key.replace(/.*code="(.*)"}/, "$1")}=${value}`)
      .join(" ") || "none";
  const errors = Object.entries(result.errors)
    .map(([kind, count]) => `${kind}=${count}`).join(" ") || "none";
  const rssStart = samples[0].rssKiB;
  const growth = rssEnd - rssStart;
  const countsMatch = accepted === result.connections &&
    outcome("greeted") === result.complete &&
    final !== null && Number(final[1]) === result.connections &&
    Number(final[2]) === result.complete;
  const ok = result.lost === 0 && countsMatch && stopped.code === 0;

  console.log(
    `
connections made     ${result.connections}
greeted (exact)      ${result.complete}
errors by kind       ${errors}
partial / wrong      ${result.partial} / ${result.wrong}
lost greetings       ${result.lost}
rate                 ${
      Math.round(result.connections / (result.elapsedMs / 1000))
    } conn/s over ${(result.elapsedMs / 1000).toFixed(1)} s
server RSS           start ${mib(rssStart)} MiB, end ${mib(rssEnd)} MiB, ` +
      `growth ${growth >= 0 ? "+" : ""}${mib(growth)} MiB, peak ${
        mib(Math.max(...samples.map((s) => s.rssKiB), rssEnd))
      } MiB${
        samples.length > 2
          ? `; after warm-up (t=${samples[1].seconds} s to end) ${
            rssEnd - samples[1].rssKiB >= 0 ? "+" : ""
          }${mib(rssEnd - samples[1].rssKiB)} MiB`
          : ""
      }
server metrics       accepted ${accepted}, greeted ${outcome("greeted")}, ` +
      `refused ${outcome("refused")}, timed_out ${outcome("timed_out")}, ` +
      `reset ${outcome("reset")}, aborted ${outcome("aborted")}, error ${
        outcome("error")
      }, active ${
        metrics.get("greeter_connections_active")
      }, accept errors ${acceptErrors}
server stop          exit ${stopped.code}: ${
        final?.[0].trim() ?? "no final line"
      }
server vs client     ${countsMatch ? "match" : "MISMATCH"}
client               ${formatResult(result)}
RESULT               ${ok ? "PASS" : "FAIL"}`,
  );
  if (stopped.stderr.trim() !== "") {
    console.log(`server stderr:\n${stopped.stderr.trimEnd()}`);
  }
  return ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
