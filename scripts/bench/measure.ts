/**
 * Measuring servers: each is started and warmed up, then their rounds
 * are taken in turns, one round of each server after another (a round is
 * redone when other work kept the cores busy), so that a drift of the
 * machine's speed weighs on every server alike; then each one's memory, an
 * optional soak, the log lines it wrote, and its start-up time.
 *
 * @module
 */
import { BUILD, LOADGEN_CPU, NOISE_LIMIT, SERVER_CPU } from "./config.ts";
import { type LoadResult, loadRound, startupRun } from "./loadgen.ts";
import {
  busySeconds,
  coreBusy,
  coreTimes,
  cpuBetween,
  cpuSample,
  processName,
  readText,
  treeCpuSeconds,
  treeStatusKb,
  waitQuiet,
} from "./proc.ts";
import { stop } from "./run.ts";
import {
  freePort,
  serverCommand,
  type ServerSpec,
  startServer,
  type Tools,
} from "./servers.ts";

export interface Options {
  connections: number;
  concurrency: number;
  rounds: number;
  warmup: number;
  startupRuns: number;
  soak: number;
}

export interface Round {
  load: LoadResult;
  serverCpuSec: number;
  /** The user-mode part of serverCpuSec. */
  serverUserSec: number;
  serverCore: number;
  loadgenCore: number;
  /** Busy time on both cores not accounted to the server or load generator. */
  otherCores: number;
  /** Other activity above NOISE_LIMIT: not used if clean rounds exist. */
  noisy: boolean;
}

export interface ServerResult {
  spec: ServerSpec;
  /**
   * Its CPU per connection over each baseline's (by name), one ratio per
   * side-by-side round ({@linkcode measureSideBySide}).
   */
  sideBySide?: Record<string, number[]>;
  skipped?: string;
  process?: string;
  rounds: Round[];
  served: number;
  peakRssKb: number;
  rssKb: number;
  logLines?: number;
  startupGreetingMs?: number[];
  startupLineMs?: number[];
  soak?: { served: number; rssKb: number }[];
}

/** A server started for measuring, between its rounds. */
export interface Session {
  result: ServerResult;
  child?: Deno.ChildProcess;
  port: number;
  stdoutFile: string;
  /** Round attempts made so far, clean or not. */
  attempts: number;
  clean: number;
}

/** Starts `spec` and warms it up; a skipped spec gets no process. */
export async function openServer(
  tools: Tools,
  spec: ServerSpec,
  opts: Options,
): Promise<Session> {
  const result: ServerResult = {
    spec,
    rounds: [],
    served: 0,
    peakRssKb: 0,
    rssKb: 0,
  };
  const port = freePort();
  const slug = spec.name.replace(/[^a-z0-9]+/gi, "_");
  const stdoutFile = `${BUILD}/${slug}.stdout`;
  const session = { result, port, stdoutFile, attempts: 0, clean: 0 };
  if (spec.skip) {
    result.skipped = spec.skip;
    return session;
  }
  const child = await startServer(
    tools,
    spec,
    port,
    stdoutFile,
    `${BUILD}/${slug}.stderr`,
  );
  result.served = 1;
  // exec keeps the PID: this is the server itself, not a wrapper.
  result.process = processName(child.pid);
  await loadRound(tools, port, opts.warmup, opts.concurrency);
  result.served += opts.warmup;
  return { ...session, child };
}

/**
 * True while `session` wants another round: fewer than `rounds` clean ones,
 * in at most `rounds * 2` attempts (a round during which other processes
 * kept the cores busy is redone; noisy rounds are kept but flagged).
 */
export const wantsRound = (session: Session, opts: Options): boolean =>
  session.child !== undefined && session.clean < opts.rounds &&
  session.attempts < opts.rounds * 2;

/** Measures one round of `session`, after the cores are quiet. */
export async function measureRound(
  tools: Tools,
  session: Session,
  opts: Options,
): Promise<void> {
  const { result, port } = session;
  const pid = session.child!.pid;
  await waitQuiet();
  session.attempts++;
  const cpu0 = treeCpuSeconds(pid);
  const cores0 = coreTimes();
  const load = await loadRound(tools, port, opts.connections, opts.concurrency);
  const cores1 = coreTimes();
  const cpu1 = treeCpuSeconds(pid);
  result.served += load.done;
  const serverCpuSec = cpu1.user + cpu1.sys - cpu0.user - cpu0.sys;
  const busySec = busySeconds(cores0, cores1);
  const otherCores = Math.max(0, busySec - serverCpuSec - load.cpuSec) /
    (load.elapsedSec * cores1.size);
  const noisy = otherCores > NOISE_LIMIT;
  if (!noisy) session.clean++;
  result.rounds.push({
    load,
    serverCpuSec,
    serverUserSec: cpu1.user - cpu0.user,
    serverCore: coreBusy(cores0, cores1, SERVER_CPU),
    loadgenCore: coreBusy(cores0, cores1, LOADGEN_CPU),
    otherCores,
    noisy,
  });
}

/**
 * Pairs of servers compared side by side, `[server, baseline, limit]`: the
 * limit is the most CPU per connection the server may take, as a multiple
 * of the baseline's (issue 21's targets). The lingering loop is the
 * like-for-like baseline of greeter's default, which lingers; what
 * lingering itself costs the runtime is measured too, with no limit.
 */
export const SIDE_BY_SIDE: readonly (readonly [string, string, number?])[] = [
  ["greeter", "Deno accept loop", 1.05],
  ["greeter", "Deno accept loop, lingering", 1.05],
  ["greeter --quiet --linger 0", "Deno accept loop", 1.02],
  ["Deno accept loop, lingering", "Deno accept loop"],
];

/**
 * Measures `server` against `base` side by side, `opts.rounds` times: both
 * are loaded at once, each by its own load generator on the load
 * generator's core, while both share the server core, and both rounds end
 * at the same moment (a deadline twice as long as one of `server`'s rounds
 * alone, so each serves about as many; a count would leave the slower one
 * alone on the core for the rest). Whatever the machine does at that moment
 * weighs on both alike: their ratio moves by a few percent within a run,
 * where rounds taken one after the other move by ±10% here.
 */
export async function measureSideBySide(
  tools: Tools,
  server: Session,
  base: Session,
  opts: Options,
): Promise<void> {
  const pair = [server, base];
  const ratios: number[] = [];
  const alone = server.result.rounds.at(-1)?.load.elapsedSec ?? 1;
  for (let i = 0; i < opts.rounds; i++) {
    await waitQuiet();
    const before = pair.map((s) => cpuSample(s.child!.pid));
    const loads = await Promise.all(
      pair.map((s) =>
        loadRound(
          tools,
          s.port,
          opts.connections * 10,
          opts.concurrency,
          Math.ceil(alone * 2000),
        )
      ),
    );
    const [mine, theirs] = pair.map((s, k) => {
      const cpu = cpuBetween(before[k], cpuSample(s.child!.pid));
      s.result.served += loads[k].done;
      return cpu / loads[k].ok;
    });
    ratios.push(mine / theirs);
  }
  (server.result.sideBySide ??= {})[base.result.spec.name] = ratios;
}

/**
 * Reads `session`'s memory, serves `soak` more connections if above 0,
 * stops it and counts its log lines.
 */
export async function closeServer(
  tools: Tools,
  session: Session,
  opts: Options,
  soak: number,
): Promise<ServerResult> {
  const { result, port, child } = session;
  if (!child) return result;
  try {
    const pid = child.pid;
    result.peakRssKb = treeStatusKb(pid, "VmHWM");
    result.rssKb = treeStatusKb(pid, "VmRSS");
    if (soak > 0) {
      result.soak = [{ served: result.served, rssKb: result.rssKb }];
      const chunk = Math.ceil(soak / 10);
      for (let done = 0; done < soak; done += chunk) {
        const load = await loadRound(
          tools,
          port,
          Math.min(chunk, soak - done),
          opts.concurrency,
        );
        result.served += load.done;
        result.soak.push({
          served: result.served,
          rssKb: treeStatusKb(pid, "VmRSS"),
        });
      }
      result.peakRssKb = treeStatusKb(pid, "VmHWM");
    }
  } finally {
    await stop(child);
  }
  if (result.spec.countsLogLines) {
    result.logLines = readText(session.stdoutFile).split("\n").filter((l) =>
      l.startsWith("Connection received from")
    ).length;
  }
  return result;
}

/**
 * Start-up times of `runs` fresh servers, in ms: to the first correct
 * greeting, and to greeter's start-up line.
 */
export async function measureStartup(
  tools: Tools,
  spec: ServerSpec,
  runs: number,
): Promise<{ greeting: number[]; line: number[] }> {
  const greeting: number[] = [], line: number[] = [];
  // One discarded run first, so that dependencies and code caches are warm.
  for (let i = 0; i <= runs; i++) {
    await waitQuiet(0.05);
    const port = freePort();
    const r = await startupRun(
      tools,
      port,
      spec.startupLine,
      serverCommand(tools, spec, port),
    );
    if (!r || i === 0 || r.greetingMs < 0) continue;
    greeting.push(r.greetingMs);
    if (r.lineMs >= 0) line.push(r.lineMs);
  }
  return { greeting, line };
}
