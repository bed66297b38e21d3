/**
 * The standard Prometheus process metrics (`process_*`, as the official
 * client libraries export them) and `greeter_build_info`.
 *
 * Where each number comes from, and what it needs:
 * - `process_cpu_seconds_total`: `getrusage` (via `node:process`
 *   `cpuUsage()`), in microseconds; no permission, every platform.
 * - `process_resident_memory_bytes`: `Deno.memoryUsage().rss`; no
 *   permission, every platform.
 * - `process_start_time_seconds`: `performance.timeOrigin`, the wall-clock
 *   time the runtime started, to the millisecond (closer than /proc's
 *   `btime`, which is whole seconds); no permission, every platform.
 * - `process_open_fds`, `process_max_fds`, `process_virtual_memory_bytes`:
 *   `/proc/self/fd`, `/proc/self/limits` and `/proc/self/stat`, so Linux
 *   only. Deno 2.9 lets only `--allow-all` read /proc (not `--allow-read`,
 *   not even `--allow-read=/proc`); without it these three are left out.
 *
 * Nothing here throws: a number that cannot be read is omitted.
 *
 * @module
 */

// node:process is loaded only for the metrics endpoint (see
// loadProcessMetrics): importing any node module costs every start ~8 ms.
let cpuUsage: (() => { user: number; system: number }) | undefined;

/**
 * Loads what {@linkcode readProcessSample} needs for the CPU time; until it
 * has, the sample has none.
 */
export async function loadProcessMetrics(): Promise<void> {
  const { default: process } = await import("node:process");
  cpuUsage ??= () => process.cpuUsage();
}
import { VERSION } from "../version.ts";
import { attempt } from "../net/value_error.ts";
import { expose, family, labelValue } from "./prometheus.ts";

/**
 * One reading of the process's numbers (see {@linkcode readProcessSample});
 * a field is undefined if it could not be read.
 */
export type ProcessSample = Partial<ReturnType<typeof readProcessSample>>;

/**
 * The soft and hard `RLIMIT_NOFILE`: the limit that applies now, and the
 * most it may be raised to; `Infinity` stands for "unlimited".
 */
export type FdLimit = { soft: number; hard: number };

/**
 * Whether /proc may still be worth trying: false once it turned out to be
 * missing (not Linux) or closed to this process (no `--allow-all`), so each
 * scrape does not pay for the same failure again.
 */
let procAvailable = true;

/**
 * `read(path)` of a /proc path, or undefined; remembers when /proc is out of
 * reach. The permission is asked first: without it, a `deno run` in a
 * terminal would stop and prompt for it (no permissions API: as good as no
 * permission).
 */
function fromProc<T>(path: string, read: (path: string) => T): T | undefined {
  if (!procAvailable) return undefined;
  try {
    const { state } = Deno.permissions.querySync({ name: "read", path });
    if (state === "granted") return read(path);
  } catch (error) {
    // A failure of this read alone; /proc stays worth trying.
    const { NotCapable, NotFound, PermissionDenied: Denied } = Deno.errors;
    if (![NotCapable, NotFound, Denied].some((t) => error instanceof t)) return;
  }
  procAvailable = false;
}

/**
 * Parses `/proc/[pid]/stat` for field 23, the virtual memory size in bytes.
 * The command name (field 2) is in parentheses and may itself hold spaces
 * and `)`, so fields are counted from the last `)`.
 *
 * @returns The size, or undefined if the text is not in that format.
 */
export function parseProcStat(text: string): number | undefined {
  const end = text.lastIndexOf(")");
  // After ") ": field 3 (state) is index 0.
  const vsize = Number(text.slice(end + 2).trim().split(" ")[23 - 3]);
  return end !== -1 && Number.isSafeInteger(vsize) ? vsize : undefined;
}

const FD_LIMIT_LINE = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)\s/m;

/**
 * Parses the `Max open files` line of `/proc/[pid]/limits`.
 *
 * @returns The soft and hard limits, or undefined if the line is missing.
 */
export function parseFdLimit(text: string): FdLimit | undefined {
  const match = FD_LIMIT_LINE.exec(text);
  if (!match) return undefined;
  const value = (word: string) =>
    word === "unlimited" ? Infinity : Number(word);
  return { soft: value(match[1]), hard: value(match[2]) };
}

/**
 * This process's `RLIMIT_NOFILE`, from `/proc/self/limits`: Linux only,
 * and only with `--allow-all` in Deno 2.9.
 *
 * @returns The limits, or undefined where they cannot be read.
 */
export function readFdLimit(): FdLimit | undefined {
  const text = fromProc("/proc/self/limits", Deno.readTextFileSync);
  return text === undefined ? undefined : parseFdLimit(text);
}

/**
 * The soft limit on open file descriptors (`ulimit -n`), from
 * `/proc/self/limits`, or of `limit` when given (read already).
 *
 * @returns The limit; undefined when it cannot be read (not Linux, or
 * Deno 2.9 without `--allow-all`, the only permission that opens /proc) or
 * is unlimited.
 */
export function readSoftFdLimit(
  limit: FdLimit | undefined = readFdLimit(),
): number | undefined {
  return Number.isFinite(limit?.soft) ? limit!.soft : undefined;
}

/** `n` if it is above 0; else undefined, as a number that was not read. */
const positive = (n?: number) => n !== undefined && n > 0 ? n : undefined;

/**
 * Reads the process's numbers now. Cheap: three small /proc reads and one
 * directory listing where /proc is open, two system calls where it is not.
 */
export function readProcessSample() {
  const cpu = cpuUsage && attempt(cpuUsage);
  const stat = fromProc("/proc/self/stat", Deno.readTextFileSync) ?? "";
  const fds = fromProc("/proc/self/fd", (p) => [...Deno.readDirSync(p)].length);
  // Numbers that cannot be read are left out (undefined).
  return {
    cpuSeconds: cpu ? (cpu.user + cpu.system) / 1e6 : undefined,
    residentBytes: positive(attempt(() => Deno.memoryUsage().rss)),
    startTimeSeconds: positive(performance.timeOrigin / 1000),
    virtualBytes: parseProcStat(stat),
    // Less the descriptor the listing itself had open.
    openFds: fds === undefined ? undefined : fds - 1,
    maxFds: readSoftFdLimit(),
  };
}

/**
 * Renders a sample in the Prometheus text exposition format (0.0.4): a
 * `# HELP` and `# TYPE` line and the value for each number present, none
 * for those absent. The names and help texts are those of the official
 * client libraries, so existing dashboards work unchanged.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { renderProcessMetrics } from "./process_metrics.ts";
 *
 * assertEquals(
 *   renderProcessMetrics({ openFds: 12 }),
 *   "# HELP process_open_fds Number of open file descriptors.\n" +
 *     "# TYPE process_open_fds gauge\n" +
 *     "process_open_fds 12\n",
 * );
 * ```
 */
export function renderProcessMetrics(sample: ProcessSample): string {
  // A number absent or not finite is left out.
  const finite = Object.entries(sample).filter(([, n]) => Number.isFinite(n));
  const s: ProcessSample = Object.fromEntries(finite);
  return expose`
  counter process_cpu_seconds_total ${s.cpuSeconds} Total user and system CPU time spent in seconds.
  gauge process_open_fds ${s.openFds} Number of open file descriptors.
  gauge process_max_fds ${s.maxFds} Maximum number of open file descriptors.
  gauge process_virtual_memory_bytes ${s.virtualBytes} Virtual memory size in bytes.
  gauge process_resident_memory_bytes ${s.residentBytes} Resident memory size in bytes.
  gauge process_start_time_seconds ${s.startTimeSeconds} Start time of the process since unix epoch in seconds.
`;
}

const BUILD_INFO_HELP = "Always 1; the versions are in the labels.";

/**
 * Renders `greeter_build_info{version,deno} 1`: which greeter and which
 * Deno are running, as labels on a constant gauge.
 */
export function renderBuildInfo(version = VERSION, deno = Deno.version.deno) {
  const labels = `version="${labelValue(version)}",deno="${labelValue(deno)}"`;
  return family("greeter_build_info", "gauge", BUILD_INFO_HELP) +
    `greeter_build_info{${labels}} 1\n`;
}
