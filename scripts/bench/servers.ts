/**
 * The servers under test and how each starts: greeter (as it ships, one
 * entry per argument set), a plain Deno accept loop (and one that lingers as
 * greeter does by default), Node's `net` server and
 * the C floor, each on a free port of HOST and pinned to SERVER_CPU.
 *
 * @module
 */
import { BINARY_FLAGS } from "../permissions.ts";
import { BUILD, GREETING, HOST, SERVER_CPU, STARTUP_LINE } from "./config.ts";
import { compile, execArgs, type Loadgen, pinned } from "./loadgen.ts";
import { readText } from "./proc.ts";
import { run, sleep, spawn, stop } from "./run.ts";

export interface GreeterVariant {
  name: string;
  args: string[];
  note?: string;
}

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
  {
    name: "greeter --greet-pause 0 --capture 256",
    args: ["--greet-pause", "0", "--capture", "256"],
    note:
      "the sensor: first bytes named and kept, a line per connection at close",
  },
  { name: "greeter --quiet --workers 1", args: ["--quiet", "--workers", "1"] },
  { name: "greeter --quiet --workers 2", args: ["--quiet", "--workers", "2"] },
];

/** A variant from `--greeter "ARGS"`. */
export function greeterVariant(args: string): GreeterVariant {
  const list = args.split(/\s+/).filter(Boolean);
  return { name: `greeter ${list.join(" ")}`, args: list };
}

export interface ServerSpec {
  name: string;
  kind: "floor" | "deno-loop" | "deno-linger-loop" | "node" | "greeter";
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

/** The baselines this machine can run. */
export interface Baselines {
  floor?: string;
  floorSkip?: string;
  node: boolean;
  nodeVersion: string;
}

/** Everything a run needs: the load generator and the baselines. */
export type Tools = Loadgen & Baselines;

/** Builds the C floor and looks for Node. */
export async function findBaselines(): Promise<Baselines> {
  const baselines: Baselines = { node: false, nodeVersion: "not installed" };
  const floor = await compile("floor");
  if (floor.code === 0) baselines.floor = `${BUILD}/floor`;
  else baselines.floorSkip = `cc failed: ${floor.stderr.trim().split("\n")[0]}`;
  const node = await run("node", ["--version"]);
  if (node.code === 0) {
    baselines.node = true;
    baselines.nodeVersion = node.stdout.trim();
  }
  return baselines;
}

/** How many worker threads greeter's arguments ask for. */
export function workerCount(args: string[]): number {
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

/** Every server, in the order they run; `extra` greeter variants too. */
export function serverSpecs(
  tools: Baselines,
  extra: GreeterVariant[],
): ServerSpec[] {
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
    name: "Deno accept loop, lingering",
    kind: "deno-linger-loop",
    note: "scripts/bench/deno_linger_loop.ts: the loop plus closeWrite and a " +
      "read to EOF, as greeter's default linger (runtime floor of lingering)",
    pinServer: true,
    command: (port) => [
      deno,
      "run",
      "--allow-net",
      // The same young generation as greeter (BINARY_FLAGS).
      "--v8-flags=--max-semi-space-size=2",
      "scripts/bench/deno_linger_loop.ts",
      `${port}`,
    ],
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

/** The servers `--only` names (by name or kind, any case); all if none. */
export function selectServers(specs: ServerSpec[], only: string[]) {
  return specs.filter((s) =>
    only.length === 0 || only.some((o) => s.name.toLowerCase() === o) ||
    only.some((o) => s.kind === o)
  );
}

/** The server's command, pinned to SERVER_CPU unless it should not be. */
export function serverCommand(
  tools: { pin: boolean },
  spec: ServerSpec,
  port: number,
): string[] {
  return spec.pinServer
    ? pinned(tools, SERVER_CPU, spec.command(port))
    : spec.command(port);
}

export function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/**
 * Starts the server through `loadgen exec` (same PID as the server, output
 * in files) and resolves once it greets correctly, within 15 s; stops it
 * if it does not. The caller stops it with {@linkcode stop} when done.
 */
export async function startServer(
  tools: Tools,
  spec: ServerSpec,
  port: number,
  stdoutFile: string,
  stderrFile: string,
): Promise<Deno.ChildProcess> {
  const child = spawn(
    tools.loadgen,
    execArgs(stdoutFile, stderrFile, serverCommand(tools, spec, port)),
  );
  try {
    await waitReady(port, child, 15_000);
  } catch (error) {
    await stop(child);
    const stderr = readText(stderrFile).trim().split("\n")[0];
    throw new Error(`${(error as Error).message} ${stderr}`.trim());
  }
  return child;
}

/** Connects until the server answers with the exact greeting. */
async function waitReady(
  port: number,
  child: Deno.ChildProcess,
  timeoutMs: number,
): Promise<void> {
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
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
