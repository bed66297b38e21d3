/**
 * Sampling /proc: a server's CPU time and memory over its whole process tree
 * (workers, and any child processes), and how busy each core is.
 *
 * @module
 */
import { run, sleep } from "./run.ts";

export interface CoreTimes {
  busy: number;
  total: number;
}

const CLK_TCK = 100; // replaced by getconf CLK_TCK in readClockTicks()
let clkTck = CLK_TCK;

/** Reads the clock tick that /proc's times are counted in. */
export async function readClockTicks(): Promise<void> {
  const tck = await run("getconf", ["CLK_TCK"]);
  if (tck.code === 0) clkTck = Number(tck.stdout.trim()) || CLK_TCK;
}

/** The text of a file, or "" if it cannot be read (a process that exited). */
export function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** The fields of /proc/PID/stat after the command name; [0] is the state. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** utime and stime, in seconds, of `pid` and all its descendants. */
export function treeCpuSeconds(pid: number): { user: number; sys: number } {
  let user = 0, sys = 0;
  for (const p of treePids(pid)) {
    const fields = statFields(readText(`/proc/${p}/stat`));
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    user += Number(fields[11]);
    sys += Number(fields[12]);
  }
  return { user: user / clkTck, sys: sys / clkTck };
}

/**
 * A sample of the CPU time of `pid` and its descendants: their ticks, and
 * each live thread's run time in ns (/proc/PID/task/TID/schedstat).
 */
export interface CpuSample {
  seconds: number;
  threads: Map<string, number>;
}

/** Samples the CPU time of `pid`'s tree; see {@linkcode cpuBetween}. */
export function cpuSample(pid: number): CpuSample {
  const { user, sys } = treeCpuSeconds(pid);
  const threads = new Map<string, number>();
  for (const p of treePids(pid)) {
    try {
      for (const task of Deno.readDirSync(`/proc/${p}/task`)) {
        const ns = readText(`/proc/${p}/task/${task.name}/schedstat`);
        if (ns) threads.set(`${p}/${task.name}`, Number(ns.split(" ")[0]));
      }
    } catch {
      // The process exited: its ticks stay counted.
    }
  }
  return { seconds: user + sys, threads };
}

/**
 * The CPU seconds spent between two samples: to the nanosecond when every
 * thread of the first is still alive (ticks are 10 ms, 1% of a round), in
 * ticks when one ended (its run time left with it; the ticks kept it).
 */
export function cpuBetween(before: CpuSample, after: CpuSample): number {
  let ns = 0;
  for (const [tid, end] of after.threads) {
    ns += end - (before.threads.get(tid) ?? 0);
  }
  const kept = [...before.threads.keys()].every((tid) =>
    after.threads.has(tid)
  );
  return kept ? ns / 1e9 : after.seconds - before.seconds;
}

function treePids(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = readText(`/proc/${entry.name}/stat`);
    if (!stat) continue;
    parentOf.set(Number(entry.name), Number(statFields(stat)[1]));
  }
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    for (const [child, parent] of parentOf) {
      if (parent === pids[i]) pids.push(child);
    }
  }
  return pids;
}

/** A /proc/PID/status field in kB, summed over the process tree. */
export function treeStatusKb(pid: number, field: string): number {
  let kb = 0;
  for (const p of treePids(pid)) {
    const m = readText(`/proc/${p}/status`).match(
      new RegExp(`^${field}:\\s+(\\d+) kB`, "m"),
    );
    if (m) kb += Number(m[1]);
  }
  return kb;
}

/** The process's command name (/proc/PID/comm). */
export function processName(pid: number): string {
  return readText(`/proc/${pid}/comm`).trim();
}

/** Busy and total jiffies of each CPU, from /proc/stat. */
export function coreTimes(): Map<string, CoreTimes> {
  const result = new Map<string, CoreTimes>();
  for (const line of readText("/proc/stat").split("\n")) {
    const m = line.match(/^cpu(\d+)\s+(.*)$/);
    if (!m) continue;
    const v = m[2].split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal (guest is in user)
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    result.set(m[1], { busy: total - v[3] - v[4], total });
  }
  return result;
}

/** The share of the time between two samples that `cpu` was busy. */
export function coreBusy(
  before: Map<string, CoreTimes>,
  after: Map<string, CoreTimes>,
  cpu: string,
): number {
  const b = before.get(cpu), a = after.get(cpu);
  if (!a || !b || a.total === b.total) return NaN;
  return (a.busy - b.busy) / (a.total - b.total);
}

/** Seconds of busy time on all cores together between two samples. */
export function busySeconds(
  before: Map<string, CoreTimes>,
  after: Map<string, CoreTimes>,
): number {
  let busy = 0;
  for (const cpu of after.keys()) {
    busy += (after.get(cpu)!.busy - before.get(cpu)!.busy) / clkTck;
  }
  return busy;
}

/** Waits (up to 10 s) until no core is busier than `limit`. */
export async function waitQuiet(limit = 0.1): Promise<number> {
  let busy = 1;
  for (let i = 0; i < 40 && busy > limit; i++) {
    const before = coreTimes();
    await sleep(250);
    const after = coreTimes();
    busy = Math.max(
      ...[...after.keys()].map((cpu) => coreBusy(before, after, cpu)),
    );
  }
  return busy;
}
