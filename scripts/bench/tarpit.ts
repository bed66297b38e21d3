/**
 * The tarpit measurement: memory per held client, memory reuse across two
 * waves of clients, and CPU per interval, for greeter --tarpit side by side
 * with endlessh (Debian's, installed when missing), greeter lingering, and
 * the Deno floor (scripts/bench/deno_hold.ts, which only accepts and keeps
 * each `Deno.Conn`), all in the same run. The clients are
 * scripts/bench/tarpit_holder.c, which reads everything it is sent.
 *
 * For each server: RSS before; N clients held for 3 intervals (RSS, peak
 * RSS, CPU); the clients leave; after 2 intervals (a tarpit sees a client
 * leave at its next write) a second wave of N is held for 3 intervals, and
 * its peak RSS is compared with the first's.
 *
 * @module
 */
import { BINARY_FLAGS } from "../permissions.ts";
import { BUILD, HOST, LOADGEN_CPU, SERVER_CPU } from "./config.ts";
import { fmt, pct } from "./format.ts";
import { compile, pinned } from "./loadgen.ts";
import { readText } from "./proc.ts";
import { run, sleep, which } from "./run.ts";

/** What the tarpit measurement is asked to do. */
export interface TarpitBenchOptions {
  /** Clients held in each wave. */
  clients: number;
  /** The tarpit interval, in ms (greeter's default, and endlessh's -d). */
  interval: number;
}

/** The targets for greeter --tarpit. */
const TARGETS = { bytesPerClient: 4_000, growth: 0.1, cpuMsPerTick: 50 };

interface TarpitSpec {
  name: string;
  note: string;
  command(port: number, opts: TarpitBenchOptions): string[];
  /** It frees clients that leave, so a second wave can be measured. */
  frees: boolean;
  /** It is the one the targets are for. */
  target?: boolean;
  skip?: string;
}

/** One wave's figures. */
interface Wave {
  rssKb: number;
  peakKb: number;
  /** User and system CPU over the 3 intervals, in seconds. */
  user: number;
  sys: number;
  /** What the clients received, and how many were still open. */
  bytes: number;
  open: number;
}

interface TarpitResult {
  spec: TarpitSpec;
  skipped?: string;
  baseKb: number;
  first?: Wave;
  afterKb?: number;
  second?: Wave;
}

/** VmRSS and VmHWM of `pid`, in kB. */
function memory(pid: number): { rssKb: number; peakKb: number } {
  const status = readText(`/proc/${pid}/status`);
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return { rssKb: field("VmRSS"), peakKb: field("VmHWM") };
}

/** utime and stime of `pid` (threads included), in seconds. */
function cpu(pid: number, tck: number): { user: number; sys: number } {
  const stat = readText(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / tck, sys: Number(fields[12]) / tck };
}

/** Installs Debian's endlessh if it is missing; why not, if it cannot. */
async function ensureEndlessh(): Promise<string | undefined> {
  if (await which("endlessh")) return undefined;
  if (!await which("apt-get")) return "endlessh is not installed (no apt-get)";
  console.error("installing endlessh (apt-get install -y endlessh)");
  const install = await run("sh", [
    "-c",
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install " +
    "-y -qq --no-install-recommends endlessh",
  ], 300_000);
  if (install.code !== 0 || !await which("endlessh")) {
    return `apt-get install endlessh failed: ${
      install.stderr.trim().split("\n").pop()
    }`;
  }
  return undefined;
}

function specs(endlesshSkip: string | undefined): TarpitSpec[] {
  const deno = Deno.execPath();
  const greeter = (port: number, args: string[]) => [
    deno,
    "run",
    ...BINARY_FLAGS,
    "main.ts",
    "-H",
    HOST,
    "-p",
    String(port),
    "--quiet",
    ...args,
  ];
  return [
    {
      name: "Deno.Conn floor",
      note: "scripts/bench/deno_hold.ts: accepts and keeps each conn",
      frees: false,
      command: (port) => [
        deno,
        "run",
        "--allow-net",
        "--v8-flags=--max-semi-space-size=2",
        "scripts/bench/deno_hold.ts",
        String(port),
      ],
    },
    {
      name: "greeter --tarpit",
      note: "the ssh style, one line per interval to every client",
      frees: true,
      target: true,
      command: (port, opts) =>
        greeter(port, [
          "--tarpit",
          "--tarpit-interval",
          `${opts.interval}ms`,
        ]),
    },
    {
      name: "greeter --timeout 0 --linger 10m",
      note: "plain lingering: the greeting, then a pending read per client",
      frees: true,
      command: (port) => greeter(port, ["--timeout", "0", "--linger", "10m"]),
    },
    {
      name: "endlessh",
      note: "Debian's endlessh 1.1, -m 20000, the same interval and length",
      frees: true,
      skip: endlesshSkip,
      command: (port, opts) => [
        "endlessh",
        "-4",
        "-p",
        String(port),
        "-d",
        String(opts.interval),
        "-m",
        "20000",
        "-l",
        "32",
      ],
    },
  ];
}

/** The holder: connects N clients, then answers "stats" and "close". */
class Holder {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;

  constructor(command: string[]) {
    this.#child = new Deno.Command(command[0], {
      args: command.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = this.#child.stdout
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(splitLines())[Symbol.asyncIterator]();
  }

  async line(): Promise<string> {
    const next = await this.#lines.next();
    if (next.done) throw new Error("the holder exited");
    return next.value;
  }

  async ask(command: string): Promise<{ bytes: number; open: number }> {
    await this.#writer.write(new TextEncoder().encode(`${command}\n`));
    const line = await this.line();
    const match = /bytes (\d+) open (\d+)/.exec(line);
    if (!match) throw new Error(`unexpected holder line: ${line}`);
    return { bytes: Number(match[1]), open: Number(match[2]) };
  }

  async close(): Promise<void> {
    try {
      await this.ask("close");
    } finally {
      await this.#writer.close().catch(() => {});
      await this.#child.status;
    }
  }

  kill() {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

function splitLines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const part of parts) controller.enqueue(part);
    },
  });
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const conn = await Deno.connect({ hostname: HOST, port });
      conn.close();
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`nothing listens on port ${port} after ${ms} ms`);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** One wave: N clients held for 3 intervals; they leave at the end. */
async function wave(
  holderCommand: string[],
  pid: number,
  opts: TarpitBenchOptions,
  tck: number,
): Promise<Wave> {
  const holder = new Holder(holderCommand);
  try {
    const held = await holder.line();
    if (held !== `held ${opts.clients}`) {
      throw new Error(`the holder said: ${held}`);
    }
    await sleep(1_000);
    const before = cpu(pid, tck);
    await sleep(3 * opts.interval);
    const after = cpu(pid, tck);
    const { rssKb, peakKb } = memory(pid);
    const { bytes, open } = await holder.ask("stats");
    await holder.close();
    return {
      rssKb,
      peakKb,
      user: after.user - before.user,
      sys: after.sys - before.sys,
      bytes,
      open,
    };
  } catch (error) {
    holder.kill();
    throw error;
  }
}

async function measure(
  spec: TarpitSpec,
  opts: TarpitBenchOptions,
  holder: string,
  tools: { pin: boolean },
  tck: number,
): Promise<TarpitResult> {
  const port = freePort();
  const command = pinned(tools, SERVER_CPU, spec.command(port, opts));
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitForPort(port, 15_000);
    await sleep(2_000);
    const baseKb = memory(child.pid).rssKb;
    const holderCommand = pinned(tools, LOADGEN_CPU, [
      holder,
      String(port),
      String(opts.clients),
    ]);
    const first = await wave(holderCommand, child.pid, opts, tck);
    if (!spec.frees) return { spec, baseKb, first };
    // A tarpit sees a client gone at its next write, or the one after.
    await sleep(2 * opts.interval + 2_000);
    const afterKb = memory(child.pid).rssKb;
    const second = await wave(holderCommand, child.pid, opts, tck);
    return { spec, baseKb, first, afterKb, second };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
  }
}

/** Bytes of RSS per held client in the first wave. */
function perClient(r: TarpitResult, clients: number): number {
  return r.first ? (r.first.rssKb - r.baseKb) * 1024 / clients : NaN;
}

function growth(r: TarpitResult): number {
  return r.first && r.second
    ? (r.second.peakKb - r.first.peakKb) / r.first.peakKb
    : NaN;
}

/** CPU per interval over the first wave, in ms: [user + sys, user]. */
function cpuPerTick(r: TarpitResult): [number, number] {
  if (!r.first) return [NaN, NaN];
  return [(r.first.user + r.first.sys) * 1000 / 3, r.first.user * 1000 / 3];
}

const MB = (kb: number) => fmt(kb / 1024, 1);

/** The table and the targets, as Markdown. */
function table(results: TarpitResult[], opts: TarpitBenchOptions): string {
  const rows = [
    "| server | RSS before (MB) | RSS with clients held (MB) | bytes per held client | peak RSS, wave 1 → wave 2 (MB) | wave 2 growth | CPU per interval, user+sys (user) | clients the server has not closed / bytes each received |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of results) {
    if (r.skipped || !r.first) {
      rows.push(`| ${r.spec.name} | skipped: ${r.skipped} | | | | | | |`);
      continue;
    }
    const [total, user] = cpuPerTick(r);
    rows.push(
      `| ${r.spec.name} | ${MB(r.baseKb)} | ${MB(r.first.rssKb)} | ${
        fmt(perClient(r, opts.clients), 0)
      } | ${MB(r.first.peakKb)} → ${r.second ? MB(r.second.peakKb) : "–"} | ${
        r.second ? pct(growth(r)) : "–"
      } | ${fmt(total, 0)} ms (${fmt(user, 0)} ms) | ${r.first.open} / ${
        fmt(r.first.bytes / opts.clients, 0)
      } |`,
    );
  }
  return rows.join("\n");
}

function verdicts(results: TarpitResult[], opts: TarpitBenchOptions): string[] {
  const r = results.find((r) => r.spec.target && r.first);
  if (!r) return ["greeter --tarpit was not measured"];
  const met = (ok: boolean) => ok ? "met" : "NOT met";
  const bytes = perClient(r, opts.clients);
  const grow = growth(r);
  const [tick] = cpuPerTick(r);
  return [
    `- RSS per held client ${fmt(bytes, 0)} bytes, target ≤ ${
      fmt(TARGETS.bytesPerClient, 0)
    }: ${met(bytes <= TARGETS.bytesPerClient)}`,
    `- second wave grows the peak RSS by ${pct(grow)}, target ≤ ${
      pct(TARGETS.growth)
    }: ${met(grow <= TARGETS.growth)}`,
    `- CPU per interval over ${fmt(opts.clients, 0)} clients ${
      fmt(tick, 0)
    } ms, target ≤ ${TARGETS.cpuMsPerTick} ms: ${
      met(tick <= TARGETS.cpuMsPerTick)
    }`,
  ];
}

/**
 * Runs the tarpit measurement; returns its Markdown report (also printed
 * as it goes, to stderr).
 */
export async function benchTarpit(
  opts: TarpitBenchOptions,
  tools: { pin: boolean },
): Promise<string> {
  const tck = Number((await run("getconf", ["CLK_TCK"])).stdout.trim()) || 100;
  const built = await compile("tarpit_holder");
  if (built.code !== 0) {
    throw new Error(`cannot build the tarpit holder:\n${built.stderr}`);
  }
  const holder = `${BUILD}/tarpit_holder`;
  const results: TarpitResult[] = [];
  for (const spec of specs(await ensureEndlessh())) {
    console.error(`\n== tarpit: ${spec.name}`);
    if (spec.skip) {
      console.error(`skipped: ${spec.skip}`);
      results.push({ spec, skipped: spec.skip, baseKb: 0 });
      continue;
    }
    try {
      const result = await measure(spec, opts, holder, tools, tck);
      results.push(result);
      console.error(
        `${fmt(perClient(result, opts.clients), 0)} bytes per held client, ` +
          `CPU per interval ${fmt(cpuPerTick(result)[0], 0)} ms` +
          (result.second ? `, wave 2 growth ${pct(growth(result))}` : ""),
      );
    } catch (error) {
      const skipped = `failed: ${(error as Error).message}`;
      console.error(skipped);
      results.push({ spec, skipped, baseKb: 0 });
    }
  }
  const notes = results.map((r) => `- ${r.spec.name}: ${r.spec.note}`);
  return [
    "## Tarpit: held clients",
    "",
    `${fmt(opts.clients, 0)} clients held on loopback for 3 intervals of ${
      fmt(opts.interval, 0)
    } ms, then a second wave after the first has left (\`deno task bench ` +
    "--only tarpit`). RSS from /proc/PID/status; CPU is the server's user " +
    "and system time per interval. On loopback the system time of a write " +
    "includes the kernel's receiving side too, for every server alike.",
    "",
    table(results, opts),
    "",
    ...notes,
    "",
    "Targets (issue 22) for greeter --tarpit:",
    "",
    ...verdicts(results, opts),
    "",
  ].join("\n");
}
