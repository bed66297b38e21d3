// A load client for the reliability tests and scripts/soak.ts: many
// connections, a bounded number at once, each read to the end and checked
// byte for byte against the expected greeting, each with its own deadline so
// a stuck connection is counted rather than hanging the caller.

/** How one connection ended. */
export type ConnectionResult =
  /** Every byte of the greeting, exactly, then end of stream. */
  | { kind: "complete" }
  /** Some bytes, then end of stream, an error or the deadline. */
  | { kind: "partial"; bytes: number; error?: string }
  /** A byte that differs from the greeting, or more bytes than it has. */
  | { kind: "wrong"; bytes: number }
  /** Refused, reset, timed out or closed before any byte arrived. */
  | { kind: "failed"; error: string };

/** Totals over many connections. */
export interface LoadResult {
  /** Connections attempted. */
  connections: number;
  /** Connections that got the whole greeting, exactly. */
  complete: number;
  /** Connections that got part of the greeting and then lost it. */
  partial: number;
  /** Connections that got bytes that are not the greeting. */
  wrong: number;
  /** Connections that got nothing, by kind (see {@linkcode errorKind}). */
  errors: Record<string, number>;
  /** Greetings lost: every connection that did not get a complete one. */
  lost: number;
  /** How long the run took, in milliseconds. */
  elapsedMs: number;
  /** A few examples of partial or wrong connections, for failure messages. */
  samples: string[];
}

/**
 * Names an error by kind: `refused`, `reset`, `timeout`, `closed`
 * (end of stream before any byte) or the error's class name.
 */
export function errorKind(error: unknown): string {
  if (error instanceof Deno.errors.ConnectionRefused) return "refused";
  if (
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BrokenPipe
  ) return "reset";
  if (error instanceof Deno.errors.TimedOut) return "timeout";
  if (error instanceof Deno.errors.AddrNotAvailable) return "no_port";
  return error instanceof Error ? error.name : String(error);
}

/** Options for {@linkcode connectOnce} and {@linkcode hammer}. */
export interface LoadOptions {
  hostname?: string;
  port: number;
  /** The exact bytes every connection must receive. */
  expected: Uint8Array;
  /** Give up on one connection after this many milliseconds. */
  deadlineMs?: number;
}

/** Connects once, reads to the end, and says how it went. */
export async function connectOnce(
  options: LoadOptions,
): Promise<ConnectionResult> {
  const { hostname = "127.0.0.1", port, expected, deadlineMs = 30_000 } =
    options;
  const controller = new AbortController();
  let conn: Deno.TcpConn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
    try {
      conn?.close();
    } catch {
      // Already closed.
    }
  }, deadlineMs);
  let received = 0;
  try {
    conn = await Deno.connect({
      hostname,
      port,
      signal: controller.signal,
    });
    const buffer = new Uint8Array(Math.min(expected.length + 1, 64 * 1024));
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      for (let i = 0; i < n; i++) {
        if (
          received + i >= expected.length ||
          buffer[i] !== expected[received + i]
        ) {
          return { kind: "wrong", bytes: received + n };
        }
      }
      received += n;
    }
    if (received === expected.length) return { kind: "complete" };
    return received === 0
      ? { kind: "failed", error: "closed" }
      : { kind: "partial", bytes: received };
  } catch (error) {
    const kind = timedOut ? "timeout" : errorKind(error);
    return received === 0
      ? { kind: "failed", error: kind }
      : { kind: "partial", bytes: received, error: kind };
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // Closed by the deadline.
    }
  }
}

/** Adds one connection's result to the totals. */
export function tally(result: LoadResult, one: ConnectionResult): void {
  result.connections++;
  switch (one.kind) {
    case "complete":
      result.complete++;
      return;
    case "failed":
      result.errors[one.error] = (result.errors[one.error] ?? 0) + 1;
      break;
    case "partial":
      result.partial++;
      if (result.samples.length < 5) {
        result.samples.push(
          `partial: ${one.bytes} bytes, ${one.error ?? "eof"}`,
        );
      }
      break;
    case "wrong":
      result.wrong++;
      if (result.samples.length < 5) {
        result.samples.push(`wrong: ${one.bytes} bytes`);
      }
      break;
  }
  result.lost++;
}

/** Empty totals. */
export function emptyResult(): LoadResult {
  return {
    connections: 0,
    complete: 0,
    partial: 0,
    wrong: 0,
    errors: {},
    lost: 0,
    elapsedMs: 0,
    samples: [],
  };
}

/** Options for {@linkcode hammer}. */
export interface HammerOptions extends LoadOptions {
  /** Connections to make in all. */
  total: number;
  /** Connections open at once. */
  concurrency: number;
  /** Stop starting new connections once this is aborted. */
  signal?: AbortSignal;
  /** Called after each connection, with the totals so far. */
  onResult?: (result: LoadResult) => void;
}

/**
 * Makes `total` connections, `concurrency` at a time, and counts how each
 * ended. Never throws for a connection's failure: it is counted.
 */
export async function hammer(options: HammerOptions): Promise<LoadResult> {
  const { total, concurrency, signal, onResult } = options;
  const result = emptyResult();
  const started = performance.now();
  let next = 0;
  async function worker() {
    while (next < total && !signal?.aborted) {
      next++;
      tally(result, await connectOnce(options));
      onResult?.(result);
    }
  }
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, worker),
  );
  result.elapsedMs = Math.round(performance.now() - started);
  return result;
}

/** One line: connections, complete, partial, wrong, errors by kind. */
export function formatResult(result: LoadResult): string {
  const errors = Object.entries(result.errors)
    .map(([kind, count]) => `${kind}=${count}`).join(" ") || "none";
  return `${result.connections} connections in ${result.elapsedMs} ms: ` +
    `${result.complete} complete, ${result.partial} partial, ` +
    `${result.wrong} wrong, ${result.lost} lost; errors before any byte: ` +
    errors;
}

/**
 * A file under /proc (Linux only). Deno reads /proc only with --allow-all,
 * so `cat` reads it, with the --allow-run the tests already have.
 */
export async function readProc(path: string): Promise<string> {
  const output = await new Deno.Command("cat", {
    args: [`/proc/${path}`],
    stdin: "null",
    stderr: "null",
  }).output();
  if (!output.success) throw new Error(`Cannot read /proc/${path}`);
  return new TextDecoder().decode(output.stdout);
}

/** The resident memory of a process, in KiB, from /proc (Linux only). */
export async function rssKiB(pid: number): Promise<number> {
  const status = await readProc(`${pid}/status`);
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`No VmRSS for process ${pid}`);
  return Number(match[1]);
}

/** A process's soft limit on open files, from /proc (Linux only). */
export async function openFileLimit(pid = Deno.pid): Promise<number> {
  const limits = await readProc(`${pid}/limits`);
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
  if (!match) throw new Error(`No open-file limit for process ${pid}`);
  return match[1] === "unlimited" ? Infinity : Number(match[1]);
}
