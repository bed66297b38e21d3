/**
 * Building and driving the C load generator (loadgen.c): its `run` (a
 * measured round of connections), `startup` (time to first greeting) and
 * `exec` (a server with its output in files, under the same PID) commands,
 * pinned to LOADGEN_CPU where taskset and two cores allow.
 *
 * @module
 */
import { BUILD, LOADGEN_CPU } from "./config.ts";
import { run, runCommand, which } from "./run.ts";

export interface Loadgen {
  loadgen: string;
  ccVersion: string;
  taskset: boolean;
  /** Servers and load generator each get their own core. */
  pin: boolean;
}

/** What `loadgen run` prints: one round's result. */
export interface LoadResult {
  connections: number;
  concurrency: number;
  done: number;
  ok: number;
  mismatches: number;
  errors: Record<string, number>;
  unfinished: number;
  deadlineHit: boolean;
  elapsedSec: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  cpuSec: number;
  cpuUtil: number;
}

/** Compiles one C file of this folder into BUILD; the output of `cc`. */
export function compile(name: string) {
  return run("cc", [
    "-O2",
    "-o",
    `${BUILD}/${name}`,
    `scripts/bench/${name}.c`,
  ]);
}

/** Builds the load generator; throws if there is no C compiler. */
export async function buildLoadgen(): Promise<Loadgen> {
  Deno.mkdirSync(BUILD, { recursive: true });
  const cc = await run("cc", ["--version"]);
  if (cc.code !== 0) {
    throw new Error(
      "the load generator needs a C compiler: `cc` was not found " +
        "(apt-get install -y gcc)",
    );
  }
  const built = await compile("loadgen");
  if (built.code !== 0) {
    throw new Error(`cannot build the load generator:\n${built.stderr}`);
  }
  const taskset = await which("taskset");
  return {
    loadgen: `${BUILD}/loadgen`,
    ccVersion: cc.stdout.split("\n")[0],
    taskset,
    pin: taskset && navigator.hardwareConcurrency >= 2,
  };
}

/** `command` under `taskset -c cpu` when pinning. */
export function pinned(
  tools: { pin: boolean },
  cpu: string,
  command: string[],
): string[] {
  return tools.pin ? ["taskset", "-c", cpu, ...command] : command;
}

/** The JSON of the last line of `loadgen`'s stdout, if it printed one. */
function lastJson(stdout: string): unknown {
  const line = stdout.trim().split("\n").pop() ?? "";
  return line.startsWith("{") ? JSON.parse(line) : undefined;
}

/**
 * One round: `connections` connections, `concurrency` at a time, or as many
 * as `deadlineMs` allows (the connections in flight then are left unfinished).
 */
export async function loadRound(
  tools: Loadgen,
  port: number,
  connections: number,
  concurrency: number,
  deadlineMs = Math.max(60_000, connections / 2), // >= 2,000 conn/s
): Promise<LoadResult> {
  const out = await runCommand(
    pinned(tools, LOADGEN_CPU, [
      tools.loadgen,
      "run",
      "--port",
      `${port}`,
      "--connections",
      `${connections}`,
      "--concurrency",
      `${concurrency}`,
      "--deadline-ms",
      `${deadlineMs}`,
    ]),
    deadlineMs + 15_000,
  );
  const result = lastJson(out.stdout);
  if (!result) {
    throw new Error(`load generator failed: ${out.stderr.trim() || out.code}`);
  }
  return result as LoadResult;
}

/**
 * Starts `command` and times its first correct greeting on `port` and,
 * given `line`, the first stdout line that contains it (-1 if never).
 */
export async function startupRun(
  tools: Loadgen,
  port: number,
  line: string | undefined,
  command: string[],
): Promise<{ greetingMs: number; lineMs: number } | undefined> {
  const out = await runCommand(
    pinned(tools, LOADGEN_CPU, [
      tools.loadgen,
      "startup",
      "--port",
      `${port}`,
      ...(line ? ["--line", line] : []),
      "--",
      ...command,
    ]),
    30_000,
  );
  return lastJson(out.stdout) as
    | { greetingMs: number; lineMs: number }
    | undefined;
}

/** `loadgen exec`: `command` with its stdout and stderr in files. */
export function execArgs(
  stdoutFile: string,
  stderrFile: string,
  command: string[],
): string[] {
  return [
    "exec",
    "--stdout",
    stdoutFile,
    "--stderr",
    stderrFile,
    "--",
    ...command,
  ];
}
