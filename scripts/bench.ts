/**
 * Side-by-side benchmark of greeter against baselines built in the same run:
 * a plain Deno accept loop, Node's `net` server and a C accept/write/close
 * server (the floor). Every server gets the same load from a C epoll load
 * generator on loopback, pinned to another core. Run `deno task bench --help`.
 *
 * Writes bench/results.md and bench/results.svg and prints the table.
 *
 * Runs with `--allow-all`: Deno 2.9 refuses any read under /proc (server
 * CPU, RSS, per-core busy time) without it, and `--allow-run`, which the
 * benchmark needs anyway, already amounts to full access.
 *
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import { BINARY_FLAGS } from "./permissions.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const BUILD = `${ROOT}/.bench`;
const GREETING = "Connection Established\r\n";
const STARTUP_LINE = "Server is listening for incoming connections on";
const HOST = "127.0.0.1";
const SERVER_CPU = "1";
const LOADGEN_CPU = "0";
/** Share of both cores busy with other work above which a round is redone. */
const NOISE_LIMIT = 0.1;

/**
 * greeter argument sets to benchmark, in order. To add a variant, add one
 * line, e.g. `{ name: "greeter --workers 4", args: ["--workers", "4"] }`,
 * or pass `--greeter "--workers 4"` on the command line. Variants with
 * `--workers` above 1 run unpinned (see {@linkcode serverPinned}).
 */
const GREETER_VARIANTS: GreeterVariant[] = [
  { name: "greeter", args: [], note: "per-connection log lines into a file" },
  { name: "greeter --quiet", args: ["--quiet"] },
  {
    name: "greeter --log-rate 0",
    args: ["--log-rate", "0"],
    note: "every connection line written, no flood summaries",
  },
  {
    name: "greeter --quiet --linger 0",
    args: ["--quiet", "--linger", "0"],
    note: "closes at once after the greeting, as the C floor does",
  },
  { name: "greeter --quiet --workers 1", args: ["--quiet", "--workers", "1"] },
  { name: "greeter --quiet --workers 2", args: ["--quiet", "--workers", "2"] },
];

interface GreeterVariant {
  name: string;
  args: string[];
  note?: string;
}

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
  --no-write          print only; do not write bench/results.{md,svg}
  -h, --help          this help
`;

// ------------------------------------------------------------- utilities --

interface LoadResult {
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

interface CoreTimes {
  busy: number;
  total: number;
}

const children = new Set<Deno.ChildProcess>();

function killAll() {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
  children.clear();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function run(
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
    };
  } catch (error) {
    return { code: -1, stdout: "", stderr: String(error) };
  }
}

async function which(cmd: string): Promise<boolean> {
  return (await run("sh", ["-c", `command -v ${cmd}`])).code === 0;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

const CLK_TCK = 100; // replaced by getconf CLK_TCK at start
let clkTck = CLK_TCK;

/** utime and stime, in seconds, of `pid` and all its descendants. */
function treeCpuSeconds(pid: number): { user: number; sys: number } {
  let user = 0, sys = 0;
  for (const p of treePids(pid)) {
    const stat = readText(`/proc/${p}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    user += Number(fields[11]);
    sys += Number(fields[12]);
  }
  return { user: user / clkTck, sys: sys / clkTck };
}

function treePids(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = readText(`/proc/${entry.name}/stat`);
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    parentOf.set(Number(entry.name), ppid);
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
function treeStatusKb(pid: number, field: string): number {
  let kb = 0;
  for (const p of treePids(pid)) {
    const m = readText(`/proc/${p}/status`).match(
      new RegExp(`^${field}:\\s+(\\d+) kB`, "m"),
    );
    if (m) kb += Number(m[1]);
  }
  return kb;
}

/** Busy and total jiffies of each CPU, from /proc/stat. */
function coreTimes(): Map<string, CoreTimes> {
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

function coreBusy(
  before: Map<string, CoreTimes>,
  after: Map<string, CoreTimes>,
  cpu: string,
): number {
  const b = before.get(cpu), a = after.get(cpu);
  if (!a || !b || a.total === b.total) return NaN;
  return (a.busy - b.busy) / (a.total - b.total);
}

// ---------------------------------------------------------------- setup --

interface Tools {
  loadgen: string;
  floor?: string;
  floorSkip?: string;
  node: boolean;
  nodeVersion: string;
  ccVersion: string;
  taskset: boolean;
  pin: boolean;
}

async function setup(): Promise<Tools> {
  Deno.mkdirSync(BUILD, { recursive: true });
  const tck = await run("getconf", ["CLK_TCK"]);
  if (tck.code === 0) clkTck = Number(tck.stdout.trim()) || CLK_TCK;
  const cc = await run("cc", ["--version"]);
  if (cc.code !== 0) {
    throw new Error(
      "the load generator needs a C compiler: `cc` was not found " +
        "(apt-get install -y gcc)",
    );
  }
  const loadgen = `${BUILD}/loadgen`;
  const built = await run("cc", [
    "-O2",
    "-o",
    loadgen,
    "scripts/bench/loadgen.c",
  ]);
  if (built.code !== 0) {
    throw new Error(`cannot build the load generator:\n${built.stderr}`);
  }
  const tools: Tools = {
    loadgen,
    node: false,
    nodeVersion: "not installed",
    ccVersion: cc.stdout.split("\n")[0],
    taskset: await which("taskset"),
    pin: false,
  };
  const floor = await run("cc", [
    "-O2",
    "-o",
    `${BUILD}/floor`,
    "scripts/bench/floor.c",
  ]);
  if (floor.code === 0) tools.floor = `${BUILD}/floor`;
  else tools.floorSkip = `cc failed: ${floor.stderr.trim().split("\n")[0]}`;
  const node = await run("node", ["--version"]);
  if (node.code === 0) {
    tools.node = true;
    tools.nodeVersion = node.stdout.trim();
  }
  tools.pin = tools.taskset && navigator.hardwareConcurrency >= 2;
  return tools;
}

// -------------------------------------------------------------- servers --

interface ServerSpec {
  name: string;
  kind: "floor" | "deno-loop" | "node" | "greeter";
  note?: string;
  /** Why it cannot run, if it cannot. */
  skip?: string;
  command(port: number): string[];
  /** For greeter: the start-up line to time. */
  startupLine?: string;
  /** Count per-connection log lines in its stdout file afterwards. */
  countsLogLines?: boolean;
  /** Pin the server to SERVER_CPU (false: it may use every core). */
  pinServer: boolean;
}

/** How many worker threads greeter's arguments ask for. */
function workerCount(args: string[]): number {
  const i = args.findLastIndex((a) => a === "--workers");
  const value = i >= 0
    ? args[i + 1]
    : args.findLast((a) => a.startsWith("--workers="))?.slice(10);
  return Number(value ?? 1) || 1;
}

/**
 * Servers are pinned to one core, but pinning N workers to one core would
 * only measure them taking turns: a multi-worker greeter gets every core,
 * and shares core LOADGEN_CPU with the load generator.
 */
function serverPinned(args: string[]): boolean {
  return workerCount(args) <= 1;
}

function serverSpecs(tools: Tools, extra: GreeterVariant[]): ServerSpec[] {
  const deno = Deno.execPath();
  const specs: ServerSpec[] = [];
  for (const variant of [...GREETER_VARIANTS, ...extra]) {
    specs.push({
      name: variant.name,
      kind: "greeter",
      note: variant.note,
      command: (port) => [
        deno,
        "run",
        // greeter as it ships: the flags baked into the binaries.
        ...BINARY_FLAGS,
        "main.ts",
        "-H",
        HOST,
        "-p",
        String(port),
        ...variant.args,
      ],
      startupLine: STARTUP_LINE,
      countsLogLines: !variant.args.some((a) => a === "-q" || a === "--quiet"),
      pinServer: serverPinned(variant.args),
    });
  }
  specs.push({
    name: "Deno accept loop",
    kind: "deno-loop",
    note: "scripts/bench/deno_loop.ts",
    pinServer: true,
    command: (
      port,
    ) => [deno, "run", "--allow-net", "scripts/bench/deno_loop.ts", `${port}`],
  });
  specs.push({
    name: "Node net",
    kind: "node",
    note: "scripts/bench/node_server.mjs",
    pinServer: true,
    skip: tools.node ? undefined : "`node` not found on PATH",
    command: (port) => ["node", "scripts/bench/node_server.mjs", `${port}`],
  });
  specs.push({
    name: "C floor",
    kind: "floor",
    note: "scripts/bench/floor.c",
    pinServer: true,
    skip: tools.floorSkip,
    command: (port) => [tools.floor ?? "floor", `${port}`],
  });
  return specs;
}

function pinned(tools: Tools, cpu: string, command: string[]): string[] {
  return tools.pin ? ["taskset", "-c", cpu, ...command] : command;
}

/** The server's command, pinned to SERVER_CPU unless it should not be. */
function serverCommand(tools: Tools, spec: ServerSpec, port: number): string[] {
  return spec.pinServer
    ? pinned(tools, SERVER_CPU, spec.command(port))
    : spec.command(port);
}

interface Round {
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

interface ServerResult {
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

async function loadRound(
  tools: Tools,
  port: number,
  connections: number,
  concurrency: number,
): Promise<LoadResult> {
  const deadlineMs = Math.max(60_000, connections / 2); // >= 2,000 conn/s
  const args = pinned(tools, LOADGEN_CPU, [
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
  ]);
  const out = await run(args[0], args.slice(1), deadlineMs + 15_000);
  const line = out.stdout.trim().split("\n").pop() ?? "";
  if (!line.startsWith("{")) {
    throw new Error(`load generator failed: ${out.stderr.trim() || out.code}`);
  }
  return JSON.parse(line) as LoadResult;
}

/** Connects until the server answers with the exact greeting. */
async function waitReady(
  port: number,
  child: Deno.ChildProcess,
  timeoutMs: number,
): Promise<void> {
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw new Error("the server exited during start-up");
    try {
      const conn = await Deno.connect({ hostname: HOST, port });
      const chunks: Uint8Array[] = [];
      const buf = new Uint8Array(256);
      try {
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          chunks.push(buf.slice(0, n));
        }
      } finally {
        conn.close();
      }
      const text = new TextDecoder().decode(
        new Uint8Array(chunks.flatMap((c) => [...c])),
      );
      if (text === GREETING) return;
      throw new Error(`unexpected greeting ${JSON.stringify(text)}`);
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
      await sleep(10);
    }
  }
  throw new Error(`not ready within ${timeoutMs} ms`);
}

async function stop(child: Deno.ChildProcess) {
  try {
    child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  const exited = await Promise.race([
    child.status.then(() => true),
    sleep(3000).then(() => false),
  ]);
  if (!exited) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
  }
  children.delete(child);
}

interface Options {
  connections: number;
  concurrency: number;
  rounds: number;
  warmup: number;
  startupRuns: number;
  soak: number;
}

/** Waits (up to 10 s) until no core is busier than `limit`. */
async function waitQuiet(limit = 0.1): Promise<number> {
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

async function benchServer(
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
  const stderrFile = `${BUILD}/${slug}.stderr`;
  const child = new Deno.Command(tools.loadgen, {
    args: [
      "exec",
      "--stdout",
      stdoutFile,
      "--stderr",
      stderrFile,
      "--",
      ...serverCommand(tools, spec, port),
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  children.add(child);
  try {
    try {
      await waitReady(port, child, 15_000);
    } catch (error) {
      const stderr = readText(stderrFile).trim().split("\n")[0];
      throw new Error(`${(error as Error).message} ${stderr}`.trim());
    }
    result.served = 1;
    const pid = child.pid;
    // exec keeps the PID: this is the server itself, not a wrapper.
    result.process = readText(`/proc/${pid}/comm`).trim();
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
      let busySec = 0;
      for (const cpu of cores1.keys()) {
        busySec += (cores1.get(cpu)!.busy - cores0.get(cpu)!.busy) / clkTck;
      }
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

async function measureStartup(
  tools: Tools,
  spec: ServerSpec,
  runs: number,
): Promise<{ greeting: number[]; line: number[] }> {
  const greeting: number[] = [], line: number[] = [];
  // One discarded run first, so that dependencies and code caches are warm.
  for (let i = 0; i <= runs; i++) {
    await waitQuiet(0.05);
    const port = freePort();
    const args = pinned(tools, LOADGEN_CPU, [
      tools.loadgen,
      "startup",
      "--port",
      `${port}`,
      ...(spec.startupLine ? ["--line", spec.startupLine] : []),
      "--",
      ...serverCommand(tools, spec, port),
    ]);
    const out = await run(args[0], args.slice(1), 30_000);
    const last = out.stdout.trim().split("\n").pop() ?? "";
    if (!last.startsWith("{")) continue;
    const r = JSON.parse(last) as { greetingMs: number; lineMs: number };
    if (i === 0 || r.greetingMs < 0) continue;
    greeting.push(r.greetingMs);
    if (r.lineMs >= 0) line.push(r.lineMs);
  }
  return { greeting, line };
}

// -------------------------------------------------------------- reports --

interface Row {
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

function fmt(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return "–";
  return n.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function pct(n: number): string {
  return Number.isFinite(n) ? `${Math.round(n * 100)}%` : "–";
}

function table(header: string[], rows: string[][], align: string[]): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, 3, ...rows.map((r) => r[i].length))
  );
  const cell = (s: string, i: number) =>
    align[i] === "r" ? s.padStart(widths[i]) : s.padEnd(widths[i]);
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => cell(c, i)).join(" | ")} |`;
  const rule = widths.map((w, i) =>
    align[i] === "r" ? "-".repeat(w - 1) + ":" : "-".repeat(w)
  );
  return [line(header), `| ${rule.join(" | ")} |`, ...rows.map(line)].join(
    "\n",
  );
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
  return table(header, body, [
    "l",
    "r",
    "r",
    "r",
    "r",
    "r",
    "r",
    "r",
    "r",
    "r",
    "r",
    "r",
    "r",
  ]);
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
  if (greeter && quiet) {
    const cost = greeter.cpuUs - quiet.cpuUs;
    add(
      "logging cost ≤ 3 µs/conn (greeter − greeter --quiet)",
      `${fmt(cost, 2)} µs`,
      cost <= 3,
    );
  }
  // With one client address the flood limit suppresses most lines; this row
  // is the cost when every connection's line is really written.
  const everyLine = by("greeter --log-rate 0");
  if (everyLine && quiet) {
    const cost = everyLine.cpuUs - quiet.cpuUs;
    add(
      "logging cost ≤ 3 µs/conn, every line written (--log-rate 0 − --quiet)",
      `${fmt(cost, 2)} µs`,
      cost <= 3,
    );
  }
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

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function svgChart(rows: Row[], floor?: Row, subtitle = ""): string {
  const width = 760, left = 170, right = 110, rowH = 34, top = 64;
  const height = top + rows.length * rowH + 66;
  const maxVal = Math.max(...rows.map((r) => r.cpuUs), 1) * 1.05;
  const x = (v: number) => left + (v / maxVal) * (width - left - right);
  const color = (r: Row) =>
    r.result.spec.kind === "greeter"
      ? "#2f6fb3"
      : r.result.spec.kind === "floor"
      ? "#7a7a7a"
      : "#c98a2b";
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">Server CPU per connection (µs, lower is better)</text>`,
    `<text x="${left}" y="44" fill="#555">${escapeXml(subtitle)}</text>`,
  ];
  const axisBottom = top + rows.length * rowH;
  const step = maxVal > 100 ? 20 : maxVal > 40 ? 10 : maxVal > 15 ? 5 : 2;
  for (let v = 0; v <= maxVal; v += step) {
    parts.push(
      `<line x1="${x(v)}" y1="${top - 6}" x2="${
        x(v)
      }" y2="${axisBottom}" stroke="#e4e4e4"/>`,
      `<text x="${x(v)}" y="${
        axisBottom + 16
      }" text-anchor="middle" fill="#555">${v}</text>`,
    );
  }
  if (floor) {
    for (const [k, label] of [[1.5, "1.5× floor"], [1.6, "1.6×"]] as const) {
      const v = floor.cpuUs * k;
      if (v > maxVal) continue;
      parts.push(
        `<line x1="${x(v)}" y1="${top - 10}" x2="${
          x(v)
        }" y2="${axisBottom}" stroke="#b33" stroke-dasharray="4 3"/>`,
        `<text x="${x(v) + (k === 1.5 ? -4 : 4)}" y="${
          top - 12
        }" fill="#b33" ` +
          `font-size="11" text-anchor="${
            k === 1.5 ? "end" : "start"
          }">${label}</text>`,
      );
    }
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH + 6;
    const label = floor ? ` (${fmt(r.cpuUs / floor.cpuUs, 2)}× floor)` : "";
    parts.push(
      `<text x="${left - 8}" y="${y + 15}" text-anchor="end">${
        escapeXml(r.name)
      }</text>`,
      `<rect x="${left}" y="${y}" width="${
        Math.max(1, x(r.cpuUs) - left)
      }" height="20" fill="${color(r)}"/>`,
      `<text x="${x(r.cpuUs) + 6}" y="${y + 15}">${fmt(r.cpuUs, 2)}${
        escapeXml(label)
      }</text>`,
    );
  });
  parts.push(
    `<text x="16" y="${axisBottom + 38}" fill="#555" font-size="11">` +
      "utime+stime of the server process from /proc, median of rounds.</text>",
    `<text x="16" y="${axisBottom + 54}" fill="#555" font-size="11">` +
      "Blue: greeter; orange: runtime baselines; grey: C floor; dashed: target ratios to the floor.</text>",
    "</svg>",
  );
  return parts.join("\n") + "\n";
}

function machine(tools: Tools, opts: Options): string[] {
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

// ----------------------------------------------------------------- main --

async function main(): Promise<number> {
  const args = parseArgs(Deno.args, {
    string: ["connections", "concurrency", "rounds", "warmup", "startup-runs"],
    collect: ["greeter"],
    boolean: ["help", "write"],
    negatable: ["write"],
    default: { write: true },
    alias: { h: "help" },
    unknown: (arg: string) => {
      if (arg.startsWith("-") && !/^--(soak|only)(=|$)/.test(arg)) {
        throw new Error(`unknown option ${arg} (see --help)`);
      }
      return true;
    },
  });
  if (args.help) {
    console.log(HELP);
    return 0;
  }
  const num = (v: unknown, fallback: number, name: string) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`bad --${name}: ${v}`);
    return n;
  };
  const opts: Options = {
    connections: num(args.connections, 50_000, "connections"),
    concurrency: num(args.concurrency, 32, "concurrency"),
    rounds: Math.max(1, num(args.rounds, 3, "rounds")),
    warmup: Math.max(1, num(args.warmup, 2_000, "warmup")),
    startupRuns: num(args["startup-runs"], 5, "startup-runs"),
    soak: num((args as Record<string, unknown>).soak, 0, "soak"),
  };
  const only = String((args as Record<string, unknown>).only ?? "")
    .split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  const extra = ((args.greeter ?? []) as string[]).map((a) => {
    const list = a.split(/\s+/).filter(Boolean);
    return { name: `greeter ${list.join(" ")}`, args: list };
  });

  const tools = await setup();
  const specs = serverSpecs(tools, extra).filter((s) =>
    only.length === 0 || only.some((o) => s.name.toLowerCase() === o) ||
    only.some((o) => s.kind === o)
  );
  const info = machine(tools, opts);
  console.error(info.join("\n"));
  if (!tools.pin) {
    console.error(
      "warning: server and load generator are not pinned; figures are noisier",
    );
  }

  const results: ServerResult[] = [];
  for (const spec of specs) {
    const soak = spec.name === "greeter --quiet" ? opts.soak : 0;
    console.error(
      `\n== ${spec.name}${spec.skip ? ` (skipped: ${spec.skip})` : ""}`,
    );
    let result: ServerResult;
    try {
      result = await benchServer(tools, spec, opts, soak);
    } catch (error) {
      result = {
        spec,
        skipped: `failed: ${(error as Error).message}`,
        rounds: [],
        served: 0,
        peakRssKb: 0,
        rssKb: 0,
      };
    }
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
  const saturated = rows.filter((r) =>
    r.loadgenCore >= 0.9 && r.serverCore < 0.9
  );
  const notes = [
    "CPU µs/conn: utime+stime of the server process (all threads, and any",
    "child processes) from /proc/PID/stat around each measured round, divided",
    "by the connections greeted; median of rounds, spread = (max − min) / 2 as",
    "a share of the median. Latency: connect() start to EOF at the client.",
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
  const md = [
    "# greeter benchmark results",
    "",
    "Generated by `deno task bench` (scripts/bench.ts).",
    "",
    ...info,
    "",
    mainTable(rows, skipped, floor),
    "",
    "## Load generator",
    "",
    loadTable(rows),
    "",
    ...notes,
    "",
    "## Targets",
    "",
    targetsTable(rows, soakResult),
    ...(logged.length ? ["", "## Logging check", "", ...logged] : []),
    ...workersSection(rows),
    ...soakLines,
    "",
    "![CPU per connection](results.svg)",
    "",
  ].join("\n");

  console.log(mainTable(rows, skipped, floor));
  console.log("\n" + loadTable(rows));
  console.log("\n" + targetsTable(rows, soakResult));
  const workers = workersSection(rows);
  if (workers.length) console.log(workers.join("\n"));
  if (soakLines.length) console.log(soakLines.join("\n"));

  if (args.write) {
    Deno.mkdirSync(`${ROOT}/bench`, { recursive: true });
    Deno.writeTextFileSync(`${ROOT}/bench/results.md`, md);
    Deno.writeTextFileSync(
      `${ROOT}/bench/results.svg`,
      svgChart(
        rows,
        floor,
        `${
          opts.connections.toLocaleString("en-US")
        } connections × ${opts.rounds} rounds, concurrency ${opts.concurrency}, loopback, ${navigator.hardwareConcurrency} cores`,
      ),
    );
    // Keep `deno fmt --check` clean whatever the column widths are.
    await run(Deno.execPath(), [
      "fmt",
      "-q",
      "bench/results.md",
      "bench/results.svg",
    ]);
    console.error("\nwrote bench/results.md and bench/results.svg");
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
