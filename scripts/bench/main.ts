/**
 * Side-by-side benchmark of greeter against baselines built in the same run:
 * a plain Deno accept loop, Node's `net` server and a C accept/write/close
 * server (the floor). Every server gets the same load from a C epoll load
 * generator on loopback, pinned to another core. Run `deno task bench --help`.
 *
 * Writes scripts/bench/results/results.md and results.svg and prints the
 * table. This file reads the options and runs the servers' rounds in turns
 * (one round of each server, then the next); the parts are: servers.ts (the
 * servers and how they start), loadgen.ts (the load generator), proc.ts
 * (/proc sampling), measure.ts (the servers' rounds), report.ts and chart.ts
 * (tables, targets, results.md and results.svg).
 *
 * Runs with `--allow-all`: Deno 2.9 refuses any read under /proc (server
 * CPU, RSS, per-core busy time) without it, and `--allow-run`, which the
 * benchmark needs anyway, already amounts to full access.
 *
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import { svgChart } from "./chart.ts";
import { RESULTS, ROOT } from "./config.ts";
import { fmt, pct } from "./format.ts";
import { buildLoadgen } from "./loadgen.ts";
import {
  closeServer,
  measureRound,
  measureSideBySide,
  measureStartup,
  openServer,
  type Options,
  type ServerResult,
  type Session,
  SIDE_BY_SIDE,
  wantsRound,
} from "./measure.ts";
import { readClockTicks } from "./proc.ts";
import { machine, report } from "./report.ts";
import { killAll, run, stop } from "./run.ts";
import { benchTarpit, type TarpitBenchOptions } from "./tarpit.ts";
import {
  findBaselines,
  greeterVariant,
  selectServers,
  type ServerSpec,
  serverSpecs,
  type Tools,
} from "./servers.ts";

const HELP = `Usage: deno task bench [OPTIONS]

  --connections N     connections per measured round (default 50000)
  --concurrency C     connections in flight (default 32)
  --rounds R          measured rounds per server (default 3)
  --warmup W          warm-up connections before measuring (default 2000)
  --startup-runs S    start-up measurements per server (default 5)
  --greeter "ARGS"    also benchmark greeter with ARGS (repeatable)
  --only NAMES        comma-separated server names to run (e.g. floor,greeter)
  --soak N            also serve N connections to greeter --quiet and report
                      RSS at start/middle/end (e.g. --soak 1000000)
  --tarpit-clients N  clients held in each wave of the tarpit measurement
                      (default 5000; --only tarpit runs it alone)
  --tarpit-interval MS  the tarpit interval (default 10000, greeter's)
  --no-tarpit         skip the tarpit measurement
  --no-write          print only; do not write results.md and results.svg
                      in ${RESULTS}/
  -h, --help          this help
`;

interface Command {
  write: boolean;
  opts: Options;
  /** The tarpit measurement, unless --no-tarpit. */
  tarpit?: TarpitBenchOptions;
  only: string[];
  extra: string[];
}

/** The command line; "help" for -h or --help, before any other check. */
function parseCommand(argv: string[]): Command | "help" {
  const args = parseArgs(argv, {
    string: [
      "connections",
      "concurrency",
      "rounds",
      "warmup",
      "startup-runs",
      "tarpit-clients",
      "tarpit-interval",
    ],
    collect: ["greeter"],
    boolean: ["help", "write", "tarpit"],
    negatable: ["write", "tarpit"],
    default: { write: true, tarpit: true },
    alias: { h: "help" },
    unknown: (arg: string) => {
      if (arg.startsWith("-") && !/^--(soak|only)(=|$)/.test(arg)) {
        throw new Error(`unknown option ${arg} (see --help)`);
      }
      return true;
    },
  });
  if (args.help) return "help";
  const num = (v: unknown, fallback: number, name: string) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`bad --${name}: ${v}`);
    return n;
  };
  const rest = args as Record<string, unknown>;
  return {
    write: Boolean(args.write),
    opts: {
      connections: num(args.connections, 50_000, "connections"),
      concurrency: num(args.concurrency, 32, "concurrency"),
      rounds: Math.max(1, num(args.rounds, 3, "rounds")),
      warmup: Math.max(1, num(args.warmup, 2_000, "warmup")),
      startupRuns: num(args["startup-runs"], 5, "startup-runs"),
      soak: num(rest.soak, 0, "soak"),
    },
    tarpit: args.tarpit
      ? {
        clients: Math.max(
          1,
          num(args["tarpit-clients"], 5_000, "tarpit-clients"),
        ),
        interval: Math.max(
          10,
          num(args["tarpit-interval"], 10_000, "tarpit-interval"),
        ),
      }
      : undefined,
    only: String(rest.only ?? "").split(",").map((s) => s.trim().toLowerCase())
      .filter(Boolean),
    extra: (args.greeter ?? []) as string[],
  };
}

async function setup(): Promise<Tools> {
  await readClockTicks();
  const loadgen = await buildLoadgen();
  return { ...loadgen, ...await findBaselines() };
}

/** `spec`'s result when it failed, saying why. */
function failed(spec: ServerSpec, error: unknown): ServerResult {
  const skipped = `failed: ${(error as Error).message}`;
  return { spec, skipped, rounds: [], served: 0, peakRssKb: 0, rssKb: 0 };
}

/**
 * Measures every server: all are started, then their rounds are taken in
 * turns (one round of each, then the next), then each is stopped, its
 * start-up timed, and its rounds logged to stderr.
 */
async function measureAll(
  tools: Tools,
  specs: ServerSpec[],
  opts: Options,
): Promise<ServerResult[]> {
  const sessions: Session[] = [];
  for (const spec of specs) {
    console.error(
      `== start ${spec.name}${spec.skip ? ` (skipped: ${spec.skip})` : ""}`,
    );
    try {
      // One discarded start first: the first run after an edit transpiles
      // the TypeScript, and that process keeps 6-10 MB more RSS than a warm
      // start (or a binary) ever has.
      if (!spec.skip) await measureStartup(tools, spec, 0);
      sessions.push(await openServer(tools, spec, opts));
    } catch (error) {
      sessions.push({
        result: failed(spec, error),
        port: 0,
        stdoutFile: "",
        attempts: 0,
        clean: 0,
      });
    }
  }
  for (let turn = 1; sessions.some((s) => wantsRound(s, opts)); turn++) {
    console.error(`== round ${turn}`);
    for (const session of sessions.filter((s) => wantsRound(s, opts))) {
      await measureRound(tools, session, opts).catch(async (error) => {
        await stop(session.child!);
        session.child = undefined;
        session.result = failed(session.result.spec, error);
      });
    }
  }
  for (const [name, baseName] of SIDE_BY_SIDE) {
    const [server, base] = [name, baseName].map((n) =>
      sessions.find((s) => s.result.spec.name === n && s.child)
    );
    if (!server || !base) continue;
    console.error(`== side by side: ${name} and ${baseName}`);
    await measureSideBySide(tools, server, base, opts).catch((error) =>
      console.error(`side by side failed: ${(error as Error).message}`)
    );
  }
  const results: ServerResult[] = [];
  for (const session of sessions) {
    const { spec } = session.result;
    const soak = spec.name === "greeter --quiet" ? opts.soak : 0;
    const result = await closeServer(tools, session, opts, soak).catch(
      (error) => failed(spec, error),
    );
    console.error(`\n== ${spec.name}`);
    for (const [i, r] of result.rounds.entries()) {
      console.error(
        `round ${i + 1}: ${
          fmt(r.load.ok / r.load.elapsedSec, 0)
        } conn/s, server ${
          fmt(r.serverCpuSec * 1e6 / r.load.ok, 2)
        } µs/conn, p99 ${fmt(r.load.p99Us, 0)} µs, loadgen ${
          pct(r.load.cpuUtil)
        } of a core, errors ${
          JSON.stringify(r.load.errors)
        } mismatches ${r.load.mismatches}`,
      );
    }
    if (result.skipped) console.error(result.skipped);
    else if (opts.startupRuns > 0) {
      const s = await measureStartup(tools, spec, opts.startupRuns);
      result.startupGreetingMs = s.greeting;
      result.startupLineMs = s.line;
      console.error(
        `start-up ms: ${s.greeting.map((v) => fmt(v, 1)).join(", ")}`,
      );
    }
    results.push(result);
  }
  return results;
}

async function main(): Promise<number> {
  const command = parseCommand(Deno.args);
  if (command === "help") {
    console.log(HELP);
    return 0;
  }
  const { opts } = command;
  const tools = await setup();
  // "tarpit" in --only names the tarpit measurement, not a server.
  const only = command.only.filter((name) => name !== "tarpit");
  const tarpit = command.only.length === 0 || only.length < command.only.length
    ? command.tarpit
    : undefined;
  const specs = command.only.length > 0 && only.length === 0
    ? []
    : selectServers(
      serverSpecs(tools, command.extra.map(greeterVariant)),
      only,
    );
  const info = machine(tools, opts);
  console.error(info.join("\n"));
  if (!tools.pin) {
    console.error(
      "warning: server and load generator are not pinned; figures are noisier",
    );
  }

  const results = await measureAll(tools, specs, opts);

  const tarpitReport = tarpit && await benchTarpit(tarpit, tools);
  if (tarpitReport) {
    console.log(tarpitReport);
    if (command.write) {
      const md = `${RESULTS}/tarpit.md`;
      Deno.mkdirSync(`${ROOT}/${RESULTS}`, { recursive: true });
      Deno.writeTextFileSync(
        `${ROOT}/${md}`,
        `# Tarpit benchmark\n\n${
          // The greeting rounds' load and start-up lines do not apply.
          info.filter((line) => !/^- (Load|Start-up):/.test(line)).join(
            "\n",
          )}\n\n${tarpitReport}`,
      );
      await run(Deno.execPath(), ["fmt", "-q", md]);
      console.error(`\nwrote ${md}`);
    }
  }
  if (specs.length === 0) return 0;

  const { rows, floor, printed, markdown } = report(results, info);
  console.log(printed);

  if (command.write) {
    const md = `${RESULTS}/results.md`, svg = `${RESULTS}/results.svg`;
    Deno.mkdirSync(`${ROOT}/${RESULTS}`, { recursive: true });
    Deno.writeTextFileSync(`${ROOT}/${md}`, markdown);
    Deno.writeTextFileSync(
      `${ROOT}/${svg}`,
      svgChart(
        rows,
        floor,
        `${
          opts.connections.toLocaleString("en-US")
        } connections × ${opts.rounds} rounds, concurrency ${opts.concurrency}, loopback, ${navigator.hardwareConcurrency} cores`,
      ),
    );
    // Keep `deno fmt --check` clean whatever the column widths are.
    await run(Deno.execPath(), ["fmt", "-q", md, svg]);
    console.error(`\nwrote ${md} and ${svg}`);
  }
  return 0;
}

if (import.meta.main) {
  const onSignal = () => {
    killAll();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  let code = 1;
  try {
    code = await main();
  } catch (error) {
    console.error(`bench: ${(error as Error).message}`);
  } finally {
    killAll();
  }
  Deno.exit(code);
}
