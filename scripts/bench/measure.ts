/**
 * Measuring one server: warm-up, measured rounds (redone when other work
 * kept the cores busy), memory, an optional soak, the log lines it wrote,
 * and its start-up time.
 *
 * @module
 */
import { BUILD, LOADGEN_CPU, NOISE_LIMIT, SERVER_CPU } from "./config.ts";
import { type LoadResult, loadRound, startupRun } from "./loadgen.ts";
import {
  busySeconds,
  coreBusy,
  coreTimes,
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

/** Measures `spec` under load; `soak` more connections if above 0. */
export async function benchServer(
  tools: Tools,
  spec: ServerSpec,
  opts: Options,
  soak: number,
): Promise<ServerResult> {
  const result: ServerResult = {
    spec,
    rounds: [],
    served: 0,
    peakRssKb: 0,
    rssKb: 0,
  };
  if (spec.skip) {
    result.skipped = spec.skip;
    return result;
  }
  const port = freePort();
  const slug = spec.name.replace(/[^a-z0-9]+/gi, "_");
  const stdoutFile = `${BUILD}/${slug}.stdout`;
  const child = await startServer(
    tools,
    spec,
    port,
    stdoutFile,
    `${BUILD}/${slug}.stderr`,
  );
  try {
    result.served = 1;
    const pid = child.pid;
    // exec keeps the PID: this is the server itself, not a wrapper.
    result.process = processName(pid);
    await loadRound(tools, port, opts.warmup, opts.concurrency);
    result.served += opts.warmup;
    await waitQuiet();
    // A round during which other processes kept the cores busy is redone
    // (at most `rounds` extra attempts); noisy rounds are kept but flagged.
    let clean = 0;
    for (let a = 0; a < opts.rounds * 2 && clean < opts.rounds; a++) {
      const cpu0 = treeCpuSeconds(pid);
      const cores0 = coreTimes();
      const load = await loadRound(
        tools,
        port,
        opts.connections,
        opts.concurrency,
      );
      const cores1 = coreTimes();
      const cpu1 = treeCpuSeconds(pid);
      result.served += load.done;
      const serverCpuSec = cpu1.user + cpu1.sys - cpu0.user - cpu0.sys;
      const busySec = busySeconds(cores0, cores1);
      const otherCores = Math.max(0, busySec - serverCpuSec - load.cpuSec) /
        (load.elapsedSec * cores1.size);
      const noisy = otherCores > NOISE_LIMIT;
      if (!noisy) clean++;
      result.rounds.push({
        load,
        serverCpuSec,
        serverUserSec: cpu1.user - cpu0.user,
        serverCore: coreBusy(cores0, cores1, SERVER_CPU),
        loadgenCore: coreBusy(cores0, cores1, LOADGEN_CPU),
        otherCores,
        noisy,
      });
      if (noisy) await waitQuiet();
    }
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
  if (spec.countsLogLines) {
    result.logLines = readText(stdoutFile).split("\n").filter((l) =>
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
