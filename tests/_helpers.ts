// Shared by the tests: run the CLI as a subprocess and talk to it for real.

/** The repository root. */
export const ROOT = `${import.meta.dirname}/..`;
/** main.ts, as a path. */
export const MAIN = `${ROOT}/main.ts`;
/** The default greeting's exact bytes. */
export const DEFAULT_BYTES = new TextEncoder().encode(
  "Connection Established\r\n",
);

const decoder = new TextDecoder();

/**
 * Whether soak tests run (GREETER_SOAK=1): tests that prove nothing a fast
 * test of the suite does not, only more of it, or only inform.
 */
export const SOAK = Deno.env.get("GREETER_SOAK") === "1";
/** What a soak test's name ends with when it is skipped. */
export const SOAK_SKIP = SOAK
  ? ""
  : " (skipped: a soak test; set GREETER_SOAK=1 to run it)";

/** How to run greeter: `deno run` on main.ts, or a compiled binary. */
export interface CliOptions {
  /** Deno permission flags for `deno run` (not used with `binary`). */
  permissions?: string[];
  /** A command to run the rest under, such as `["setpriv", ...]`. */
  prefix?: string[];
  /** Run this compiled greeter binary instead of `deno run main.ts`. */
  binary?: string;
  /** Pass --unstable-net to deno run (the default: greeters share 9229). */
  unstableNet?: boolean;
  /**
   * Keep in stderr greeter's warnings about the environment it runs in:
   * 127.0.0.1:9229 held by another program (what the host runs, a deno
   * --inspect, say), and `--log-timestamps auto` without leave to read
   * `JOURNAL_STREAM` (the tests' pipes and permissions). By default they are
   * taken out: they are not what a test proves.
   */
  environmentWarnings?: boolean;
}

/**
 * Takes out greeter's warnings about its environment (see
 * {@linkcode CliOptions.environmentWarnings}).
 */
export function withoutEnvironmentWarnings(stderr: string): string {
  return stderr.replace(
    /^.*greeter: warning: (?:127\.0\.0\.1:9229 is held by another program|--log-timestamps auto: stdout is not a terminal).*\n?/gm,
    "",
  );
}

function cliCommand(args: string[], options: CliOptions): string[] {
  const {
    permissions = ["--allow-net", "--allow-read"],
    prefix = [],
    binary,
    unstableNet = true,
  } = options;
  return binary === undefined
    ? [
      ...prefix,
      Deno.execPath(),
      "run",
      "--no-prompt",
      // Greeters that run side by side share the debugger guard on
      // 127.0.0.1:9229 (SO_REUSEPORT).
      ...(unstableNet ? ["--unstable-net"] : []),
      ...permissions,
      MAIN,
      ...args,
    ]
    : [...prefix, binary, ...args];
}

/** Runs the CLI to completion and returns its exit code and output. */
export async function runCli(
  args: string[],
  options: CliOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [command, ...commandArgs] = cliCommand(args, options);
  const output = await new Deno.Command(command, {
    args: commandArgs,
    stdin: "null",
    // Deno's own update check (deno run only) is not greeter's to test.
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }).output();
  const stderr = decoder.decode(output.stderr);
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: options.environmentWarnings
      ? stderr
      : withoutEnvironmentWarnings(stderr),
  };
}

/** A greeter server running as a subprocess. */
export interface CliServer extends AsyncDisposable {
  /** The port it listens on, from its start-up line. */
  port: number;
  /** Everything it has printed on stdout so far. */
  stdout(): string;
  /** Waits until stdout (or stderr) matches, or fails after `ms`. */
  waitFor(
    pattern: RegExp,
    ms?: number,
    from?: "stdout" | "stderr",
  ): Promise<RegExpMatchArray>;
  /** Sends a signal and waits for the exit; resolves to the full output. */
  stop(
    signal?: Deno.Signal,
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  process: Deno.ChildProcess;
}

/**
 * Starts `greeter ARGS --port 0` on 127.0.0.1 (unless ARGS say otherwise) and
 * waits for its start-up line.
 */
export async function startCli(
  args: string[],
  options: CliOptions = {},
): Promise<CliServer> {
  const [command, ...commandArgs] = cliCommand(args, options);
  const process = new Deno.Command(command, {
    args: commandArgs,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }).spawn();
  let stdout = "";
  let stderr = "";
  let changed = () => {};
  const pump = async (
    stream: ReadableStream<Uint8Array>,
    add: (text: string) => void,
  ) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      add(text);
      changed();
    }
  };
  const pumps = Promise.all([
    pump(process.stdout, (text) => stdout += text),
    pump(process.stderr, (text) => stderr += text),
  ]);
  let exited = false;
  const status = process.status.then((status) => {
    exited = true;
    changed();
    return status;
  });

  async function waitFor(pattern: RegExp, ms = 10_000, from = "stdout") {
    const deadline = Date.now() + ms;
    while (true) {
      const match = (from === "stderr" ? stderr : stdout).match(pattern);
      if (match) return match;
      if (exited || Date.now() > deadline) {
        throw new Error(
          `${
            exited ? "Exited" : "Timed out"
          } waiting for ${pattern}; stdout: ${stdout}; stderr: ${stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        changed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async function stop(signal: Deno.Signal = "SIGTERM") {
    if (!exited) {
      try {
        process.kill(signal);
      } catch {
        // Already gone.
      }
    }
    const { code } = await status;
    await pumps;
    return {
      code,
      stdout,
      stderr: options.environmentWarnings
        ? stderr
        : withoutEnvironmentWarnings(stderr),
    };
  }

  let port = 0;
  try {
    const match = await waitFor(
      /listening for incoming connections on (?:.*:(\d+)|\/.*?)(?: \(TLS\))?\n|"event.action":"start".*"greeter.listen":\["(?:[^"]*:(\d+)|\/[^"]*)"/,
    );
    port = Number(match[1] ?? match[2] ?? 0);
  } catch (error) {
    await stop("SIGKILL");
    throw error;
  }
  return {
    port,
    stdout: () => stdout,
    waitFor,
    stop,
    process,
    async [Symbol.asyncDispose]() {
      await stop("SIGKILL");
    },
  };
}

/**
 * For tests that stop greeter with SIGTERM or SIGINT and check its clean
 * exit (code 0, the stop line, the flushed log): Windows cannot send a
 * process those signals, only kill it. Spread into a test's options.
 */
export const POSIX_SIGNALS = { ignore: Deno.build.os === "windows" };

/**
 * For tests of Unix domain sockets (`--unix`), which Deno does not offer on
 * Windows. Spread into a test's options.
 */
export const UNIX_SOCKETS = { ignore: Deno.build.os === "windows" };

/** Connects, reads until the server closes, returns every byte. */
export async function readAll(
  port: number,
  hostname = "127.0.0.1",
): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname, port });
  const chunks: Uint8Array[] = [];
  try {
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  } finally {
    conn.close();
  }
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** Runs a Node.js script (an independent client) and returns its stdout. */
export async function runNode(
  script: string,
  args: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command("node", {
    args: ["-e", script, ...args],
    stdin: "null",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs `tasks` with at most `limit` in flight at once. */
export async function pool<T>(
  count: number,
  limit: number,
  task: (index: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return results;
}

/** Polls `condition` every 10 ms; fails the test if it is not true in `ms`. */
export async function waitUntil(
  condition: () => boolean,
  ms = 5_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Whether `command ...args` runs here and succeeds (default: --version). */
export async function canRun(
  command: string,
  args: string[] = ["--version"],
): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * A loopback port nobody listens on (it was free a moment ago), for a host
 * to listen on or a client to be refused. Picked below Linux's default
 * ephemeral range (32768-60999), where the kernel never puts the client of
 * a test file running beside: one cannot take it meanwhile.
 */
export function closedPort(): number {
  for (let tries = 0; tries < 100; tries++) {
    const port = 10_000 + Math.floor(Math.random() * 22_000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error("No free port below the ephemeral range in 100 tries");
}

/**
 * A loopback server that accepts one client and never sends or closes: for
 * timeouts. Disposing closes both.
 */
export function silentServer(): { port: number } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept().catch(() => undefined);
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      (await accepted)?.close();
    },
  };
}

/** Runs `fn` with a new temporary directory, removed afterwards. */
export async function withTempDir<T>(
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The port of a CLI server's metrics endpoint, from its start-up line (text
 * or JSON log).
 */
export async function waitForMetricsPort(server: CliServer): Promise<number> {
  const [, text, json] = await server.waitFor(
    /Metrics are served on http:\/\/127\.0\.0\.1:(\d+)\/|"greeter\.metrics":"127\.0\.0\.1:(\d+)"/,
  );
  return Number(text ?? json);
}

/** A scrape's series (with labels) and their values. */
export function parseSeries(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

/** Scrapes /metrics on 127.0.0.1:`port` into its series. */
export async function scrapeSeries(
  port: number,
): Promise<Map<string, number>> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  return parseSeries(await response.text());
}

/** The test that this `deno test` runs alone, in a process of its own. */
const OWN_PROCESS = Deno.env.get("GREETER_TEST_OWN_PROCESS");

/**
 * `deno test` as `deno task test` runs it, less its file list: for tests
 * that run other test files in a `deno test` of their own (run from ROOT).
 * They are type-checked by `deno task check`.
 */
export const DENO_TEST: readonly string[] = [
  "test",
  "--no-check",
  "--frozen",
  "--lock=tests/deno.lock",
  "--import-map=tests/import_map.json",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-env",
  "--allow-sys",
];

/**
 * `Deno.test` for a test that measures its own process (its open
 * descriptors, its RSS, its environment): `deno task test` runs the test
 * files in parallel in one process, where the others' descriptors and
 * memory come and go. The test registered here runs the test, alone, in a
 * `deno test` of its own (as the task runs it) and passes if it passed.
 * Pass the test file's `import.meta.url`.
 */
export function ownProcessTest(
  file: string,
  definition: Deno.TestDefinition,
): void {
  if (OWN_PROCESS !== undefined) {
    Deno.test(definition);
    return;
  }
  Deno.test({
    ...definition,
    async fn() {
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          ...DENO_TEST,
          "--filter",
          definition.name,
          new URL(file).pathname,
        ],
        cwd: ROOT,
        stdin: "null",
        env: { NO_COLOR: "1", GREETER_TEST_OWN_PROCESS: definition.name },
      }).output();
      const text = decoder.decode(output.stdout) +
        decoder.decode(output.stderr);
      if (output.code !== 0 || !/^ok \| 1 passed \| 0 failed/m.test(text)) {
        throw new Error(`In a process of its own:\n${text}`);
      }
    },
  });
}
