/**
 * The report: each server's rounds summarized into a row, the tables (main,
 * load generator, targets, workers, soak), the machine description, and
 * results.md.
 *
 * @module
 */
import { LOADGEN_CPU, NOISE_LIMIT, SERVER_CPU } from "./config.ts";
import { fmt, median, pct, table } from "./format.ts";
import { type Options, type ServerResult, SIDE_BY_SIDE } from "./measure.ts";
import { readText } from "./proc.ts";
import { type Tools, workerCount } from "./servers.ts";

export interface Row {
  name: string;
  result: ServerResult;
  connPerSec: number;
  p50: number;
  p99: number;
  max: number;
  cpuUs: number;
  userUs: number;
  /** Server CPU time per wall-clock second: how many cores it kept busy. */
  serverCores: number;
  cpuSpread: number;
  rateSpread: number;
  loadgenUs: number;
  loadgenUtil: number;
  serverCore: number;
  loadgenCore: number;
  other: number;
  errors: number;
  /** Rounds redone because other processes were busy. */
  noisy: number;
  startupMs: number;
  lineMs: number;
}

function summarize(result: ServerResult): Row | undefined {
  const cleanRounds = result.rounds.filter((r) => !r.noisy);
  const rounds = cleanRounds.length ? cleanRounds : result.rounds;
  if (rounds.length === 0) return undefined;
  const cpuUs = rounds.map((r) => r.serverCpuSec * 1e6 / r.load.ok);
  const rates = rounds.map((r) => r.load.ok / r.load.elapsedSec);
  const spread = (v: number[]) => (Math.max(...v) - Math.min(...v)) / median(v);
  return {
    name: result.spec.name,
    result,
    connPerSec: median(rates),
    p50: median(rounds.map((r) => r.load.p50Us)),
    p99: median(rounds.map((r) => r.load.p99Us)),
    max: Math.max(...rounds.map((r) => r.load.maxUs)),
    cpuUs: median(cpuUs),
    userUs: median(rounds.map((r) => r.serverUserSec * 1e6 / r.load.ok)),
    serverCores: median(rounds.map((r) => r.serverCpuSec / r.load.elapsedSec)),
    cpuSpread: spread(cpuUs),
    rateSpread: spread(rates),
    loadgenUs: median(rounds.map((r) => r.load.cpuSec * 1e6 / r.load.done)),
    loadgenUtil: median(rounds.map((r) => r.load.cpuUtil)),
    serverCore: median(rounds.map((r) => r.serverCore)),
    loadgenCore: median(rounds.map((r) => r.loadgenCore)),
    other: median(rounds.map((r) => r.otherCores)),
    errors: rounds.reduce(
      (n, r) =>
        n + r.load.mismatches + r.load.unfinished +
        Object.values(r.load.errors).reduce((a, b) => a + b, 0),
      0,
    ),
    noisy: result.rounds.length - cleanRounds.length,
    startupMs: result.startupGreetingMs?.length
      ? median(result.startupGreetingMs)
      : NaN,
    lineMs: result.startupLineMs?.length ? median(result.startupLineMs) : NaN,
  };
}

function bound(row: Row): string {
  if (row.serverCore >= 0.9) return "server";
  if (row.loadgenCore >= 0.9) return "**loadgen**";
  return "neither";
}

function mainTable(rows: Row[], skipped: ServerResult[], floor?: Row): string {
  const header = [
    "Server",
    "conn/s",
    "p50 µs",
    "p99 µs",
    "max µs",
    "CPU µs/conn",
    "user + sys",
    "spread",
    "CPU × floor",
    "p99 × floor",
    "peak RSS MB",
    "start-up ms",
    "errors",
  ];
  const body = rows.map((r) => [
    r.name,
    fmt(r.connPerSec, 0),
    fmt(r.p50, 0),
    fmt(r.p99, 0),
    fmt(r.max, 0),
    fmt(r.cpuUs, 2),
    `${fmt(r.userUs, 1)} + ${fmt(r.cpuUs - r.userUs, 1)}`,
    `±${fmt(r.cpuSpread * 50, 1)}%`,
    floor ? `${fmt(r.cpuUs / floor.cpuUs, 2)}×` : "–",
    floor ? `${fmt(r.p99 / floor.p99, 2)}×` : "–",
    fmt(r.result.peakRssKb / 1024, 1),
    Number.isFinite(r.lineMs)
      ? `${fmt(r.startupMs, 1)} (line ${fmt(r.lineMs, 1)})`
      : fmt(r.startupMs, 1),
    `${r.errors}`,
  ]);
  for (const s of skipped) {
    body.push([
      s.spec.name,
      `skipped: ${s.skipped}`,
      ...Array(header.length - 2).fill("–"),
    ]);
  }
  return table(header, body, ["l", ...header.slice(1).map(() => "r")]);
}

function loadTable(rows: Row[]): string {
  return table(
    [
      "Server",
      "loadgen CPU µs/conn",
      "loadgen CPU/wall",
      "core 0 (loadgen) busy",
      "core 1 (server) busy",
      "other activity",
      "bound by",
      "conn/s spread",
      "noisy rounds",
      "served",
    ],
    rows.map((r) => [
      r.name,
      fmt(r.loadgenUs, 2),
      pct(r.loadgenUtil),
      pct(r.loadgenCore),
      pct(r.serverCore),
      pct(r.other),
      bound(r),
      `±${fmt(r.rateSpread * 50, 1)}%`,
      `${r.noisy}`,
      r.result.served.toLocaleString("en-US"),
    ]),
    ["l", "r", "r", "r", "r", "r", "l", "r", "r", "r"],
  );
}

function targetsTable(rows: Row[], soak?: ServerResult): string {
  const by = (name: string) => rows.find((r) => r.name === name);
  const floor = by("C floor");
  const greeter = by("greeter");
  const quiet = by("greeter --quiet");
  const loop = by("Deno accept loop");
  const node = by("Node net");
  const out: string[][] = [];
  const add = (target: string, value: string, ok: boolean | undefined) =>
    out.push([
      target,
      value,
      ok === undefined ? "not measured" : ok ? "pass" : "**FAIL**",
    ]);
  const ratio = (r?: Row) => r && floor ? r.cpuUs / floor.cpuUs : NaN;
  add(
    "greeter (logging) CPU/conn ≤ 1.6× floor",
    `${fmt(ratio(greeter), 2)}×`,
    greeter && floor ? ratio(greeter) <= 1.6 : undefined,
  );
  add(
    "greeter --quiet CPU/conn ≤ 1.5× floor",
    `${fmt(ratio(quiet), 2)}×`,
    quiet && floor ? ratio(quiet) <= 1.5 : undefined,
  );
  for (const g of [greeter, quiet]) {
    if (!g) continue;
    for (const base of [loop, node]) {
      if (!base) continue;
      add(
        `${g.name} CPU/conn < ${base.name}`,
        `${fmt(g.cpuUs, 2)} vs ${fmt(base.cpuUs, 2)} µs`,
        g.cpuUs < base.cpuUs,
      );
    }
    if (floor) {
      add(
        `${g.name} p99 ≤ 1.5× floor's (C=${
          g.result.rounds[0].load.concurrency
        })`,
        `${fmt(g.p99 / floor.p99, 2)}× (${fmt(g.p99, 0)} vs ${
          fmt(floor.p99, 0)
        } µs)`,
        g.p99 <= 1.5 * floor.p99,
      );
    }
    add(
      `${g.name} peak RSS ≤ 70 MB after ≥ 100,000 connections`,
      `${fmt(g.result.peakRssKb / 1024, 1)} MB after ${
        g.result.served.toLocaleString("en-US")
      }`,
      g.result.served >= 100_000 ? g.result.peakRssKb <= 70 * 1024 : undefined,
    );
  }
  // Issue 21's per-connection targets, each measured side by side with its
  // baseline (measureSideBySide).
  for (const [name, baseName, limit] of SIDE_BY_SIDE) {
    const ratios = by(name)?.result.sideBySide?.[baseName];
    if (!ratios?.length) continue;
    const times = median(ratios);
    const measured = `${fmt(times, 3)}×, median of ${ratios.length} rounds (${
      fmt(Math.min(...ratios), 3)
    }–${fmt(Math.max(...ratios), 3)})`;
    if (limit === undefined) {
      out.push([`${name} / ${baseName} (side by side)`, measured, "reference"]);
      continue;
    }
    const target = `${name} CPU/conn ≤ ${limit}× ${baseName} (side by side)`;
    add(target, measured, times <= limit);
  }
  if (soak?.soak) {
    const first = soak.soak[0], last = soak.soak[soak.soak.length - 1];
    const growth = (last.rssKb - first.rssKb) / 1024;
    add(
      `greeter --quiet RSS flat over ${
        (last.served - first.served).toLocaleString("en-US")
      } connections (growth ≤ 5 MB)`,
      `${fmt(first.rssKb / 1024, 1)} → ${fmt(last.rssKb / 1024, 1)} MB`,
      growth <= 5,
    );
  } else {
    add(
      "greeter --quiet RSS flat over 1,000,000 connections",
      "run with --soak 1000000",
      undefined,
    );
  }
  const loggingCost = (logging: Row | undefined, what: string) => {
    if (!logging || !quiet) return;
    const cost = logging.cpuUs - quiet.cpuUs;
    add(`logging cost ≤ 3 µs/conn${what}`, `${fmt(cost, 2)} µs`, cost <= 3);
  };
  loggingCost(greeter, " (greeter − greeter --quiet)");
  // With one client address the flood limit suppresses most lines; this row
  // is the cost when every connection's line is really written.
  loggingCost(
    by("greeter --log-rate 0"),
    ", every line written (--log-rate 0 − --quiet)",
  );
  for (const g of [greeter, quiet]) {
    if (!g) continue;
    add(
      `${g.name} ready ≤ 50 ms after start (median, first greeting)`,
      `${fmt(g.startupMs, 1)} ms`,
      Number.isFinite(g.startupMs) ? g.startupMs <= 50 : undefined,
    );
  }
  return table(["Target", "Measured", "Result"], out, ["l", "l", "l"]);
}

/**
 * The --workers comparison: greeter --quiet with 1 and more workers, and
 * what this machine's core count lets it show.
 */
function workersSection(rows: Row[]): string[] {
  const variants = rows.filter((r) =>
    r.result.spec.kind === "greeter" && /--workers/.test(r.name)
  );
  if (!variants.some((r) => !r.result.spec.pinServer)) return [];
  const cores = navigator.hardwareConcurrency;
  const most = variants.reduce((a, b) =>
    workerCount(b.name.split(" ")) > workerCount(a.name.split(" ")) ? b : a
  );
  const workers = workerCount(most.name.split(" "));
  const one = variants.find((r) => workerCount(r.name.split(" ")) === 1);
  const loadgen = median(variants.map((r) => r.loadgenUtil));
  const enough = cores >= workers + 1;
  return [
    "",
    "## Workers",
    "",
    table(
      ["Server", "conn/s", "CPU µs/conn", "server cores used", "p99 µs"],
      variants.map((r) => [
        r.name,
        fmt(r.connPerSec, 0),
        fmt(r.cpuUs, 2),
        fmt(r.serverCores, 2),
        fmt(r.p99, 0),
      ]),
      ["l", "r", "r", "r", "r"],
    ),
    "",
    "greeter with one worker is pinned to CPU 1 like every server; with more",
    "it is not pinned (pinned to one core, the workers would only take",
    "turns), so its workers share every core with the load generator.",
    `This machine has ${cores} cores and the load generator keeps about ${
      pct(loadgen)
    } of one busy, so the server can have at most ${
      fmt(cores - loadgen, 1)
    } cores: ${most.name} kept ${fmt(most.serverCores, 2)} busy${
      one ? ` (one worker: ${fmt(one.serverCores, 2)})` : ""
    }.`,
    enough
      ? `With a core for each of the ${workers} workers and one for the load ` +
        "generator, conn/s can show how far the workers scale."
      : `${cores} cores cannot show workers scaling: that needs a core for ` +
        `each of the ${workers} workers plus one for the load generator. ` +
        "Here the run shows that the workers serve every greeting exactly " +
        "under load, and what the extra threads cost per connection.",
  ];
}

export function machine(tools: Tools, opts: Options): string[] {
  const cpuinfo = readText("/proc/cpuinfo");
  const model = cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown";
  const sysctl = (name: string) =>
    readText(`/proc/sys/${name.replaceAll(".", "/")}`).trim().replace(
      /\s+/g,
      "–",
    );
  const mem = readText("/proc/meminfo").match(/^MemTotal:\s+(\d+)/m)?.[1];
  return [
    `- Date: ${new Date().toISOString()}`,
    `- CPU: ${model}, ${navigator.hardwareConcurrency} cores, ${
      mem ? fmt(Number(mem) / 1024 / 1024, 1) : "?"
    } GiB RAM`,
    `- Kernel: Linux ${Deno.osRelease()}; ip_local_port_range ${
      sysctl("net.ipv4.ip_local_port_range")
    }, tcp_tw_reuse ${sysctl("net.ipv4.tcp_tw_reuse")}, somaxconn ${
      sysctl("net.core.somaxconn")
    }`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), Node ${tools.nodeVersion}, ${tools.ccVersion}`,
    `- Load: ${
      opts.connections.toLocaleString("en-US")
    } connections × ${opts.rounds} rounds at concurrency ${opts.concurrency}, after ${
      opts.warmup.toLocaleString("en-US")
    } warm-up connections; every greeting checked byte for byte`,
    tools.pin
      ? `- Pinning: servers on CPU ${SERVER_CPU}, load generator on CPU ${LOADGEN_CPU} (taskset)`
      : `- Pinning: none (${
        tools.taskset ? "fewer than 2 cores" : "taskset not found"
      })`,
    `- Start-up: median of ${opts.startupRuns} runs (after one discarded warm run), from fork() to the first correct greeting; "line" is to greeter's start-up line`,
  ];
}

/** A run's report: the tables to print, and results.md. */
export function report(
  results: ServerResult[],
  info: string[],
): { rows: Row[]; floor?: Row; printed: string; markdown: string } {
  const rows = results.map(summarize).filter((r): r is Row => !!r);
  const skipped = results.filter((r) => r.skipped);
  const floor = rows.find((r) => r.result.spec.kind === "floor");
  const soakResult = results.find((r) => r.soak);
  const logged = results.filter((r) => r.logLines !== undefined).map((r) =>
    `- ${r.spec.name}: ${
      r.logLines!.toLocaleString("en-US")
    } "Connection received from" lines in its stdout file for ${
      r.served.toLocaleString("en-US")
    } connections served`
  );
  const soakLines = soakResult?.soak
    ? [
      "",
      "## Soak: greeter --quiet RSS",
      "",
      table(
        ["Connections served", "VmRSS MB"],
        soakResult.soak.map((s) => [
          s.served.toLocaleString("en-US"),
          fmt(s.rssKb / 1024, 1),
        ]),
        ["r", "r"],
      ),
      "",
      `Peak (VmHWM): ${fmt(soakResult.peakRssKb / 1024, 1)} MB.`,
    ]
    : [];
  const main = mainTable(rows, skipped, floor);
  const load = loadTable(rows);
  const targets = targetsTable(rows, soakResult);
  const workers = workersSection(rows);
  const markdown = [
    "# greeter benchmark results",
    "",
    "Generated by `deno task bench` (scripts/bench/main.ts).",
    "",
    ...info,
    "",
    main,
    "",
    "## Load generator",
    "",
    load,
    "",
    ...notes(rows),
    "",
    "## Targets",
    "",
    targets,
    ...(logged.length ? ["", "## Logging check", "", ...logged] : []),
    ...workers,
    ...soakLines,
    "",
    "![CPU per connection](results.svg)",
    "",
  ].join("\n");
  const printed = [
    main,
    "\n" + load,
    "\n" + targets,
    ...(workers.length ? [workers.join("\n")] : []),
    ...(soakLines.length ? [soakLines.join("\n")] : []),
  ].join("\n");
  return { rows, floor, printed, markdown };
}

/** How the figures are taken, and what limited this run. */
function notes(rows: Row[]): string[] {
  const saturated = rows.filter((r) =>
    r.loadgenCore >= 0.9 && r.serverCore < 0.9
  );
  return [
    "CPU µs/conn: utime+stime of the server process (all threads, and any",
    "child processes) from /proc/PID/stat around each measured round, divided",
    "by the connections greeted; median of rounds, spread = (max − min) / 2 as",
    "a share of the median. The servers take their rounds in turns (one",
    "round of each, then the next), so a drift of the machine weighs on all",
    'alike. A row marked "side by side" loads two servers at once, sharing',
    "the server core, each with its own load generator: the median of their",
    "per-round ratios of CPU per connection, which moves by a few percent",
    "within a run where rounds taken in turn move by ±10%.",
    "Latency: connect() start to EOF at the client.",
    "Peak RSS: VmHWM at the end. On loopback part of each server's kernel",
    "work (SYN handling, ACKs) runs in softirq in the client's context on",
    "core 0 and is charged to the load generator, the same for every server.",
    "",
    "Load generator: `bound by` says which core was ≥ 90% busy (/proc/stat).",
    saturated.length
      ? `The load generator's core was the limit for: ${
        saturated.map((r) => r.name).join(", ")
      }. Their conn/s and latency are set by the client, not the server;` +
        " CPU/conn is still the server's own, for a server that idles between" +
        " connections (a blocking accept pays one wake-up per connection)."
      : "The load generator's core was never the limit.",
    "`other activity`: busy time on both cores not charged to the server or",
    "the load generator (softirq in ksoftirqd, other processes). A round with",
    `more than ${
      NOISE_LIMIT * 100
    }% is redone (up to twice the rounds) and left out of the medians`,
    "when clean rounds exist; `noisy rounds` counts them.",
  ];
}
