/**
 * greeter's command line: parses arguments, wires signals and logging, and
 * calls the library. Run `deno run --allow-net main.ts --help`.
 *
 * @module
 */
import { formatAddress } from "./lib/net/address.ts";
import {
  type ClientTlsOptions,
  readGreeting,
} from "./lib/client/read_greeting.ts";
import type { ClientTransport } from "./lib/cli/target.ts";
import {
  type ConnectCommand,
  parseCommand,
  type ServeCommand,
} from "./lib/cli/commands/serve.ts";
import {
  explainConnectError,
  explainError,
  explainListenError,
  lowerFirst,
} from "./lib/cli/explain.ts";
import { checkGreeting } from "./lib/client/check.ts";
import type { CheckCommand } from "./lib/cli/commands/check.ts";
import { createLineWriter } from "./lib/observe/line_writer.ts";
import {
  createDurationHistogram,
  type MetricsServer,
  renderMetrics,
  serveMetrics,
} from "./lib/observe/metrics.ts";
import {
  createServerLog,
  type ServerLog,
} from "./lib/observe/connection_log.ts";
import type { ServerStats } from "./lib/server/stats.ts";
import {
  type InspectorOutcome,
  watchStatsSignal,
} from "./lib/observe/stats_summary.ts";
import { readInputFile } from "./lib/cli/read_file.ts";
import { prepareServe } from "./lib/cli/setup.ts";
import {
  type GreetingServer,
  serveGreeting,
} from "./lib/server/serve_greeting.ts";
import { ListenError } from "./lib/server/listeners.ts";
import { createHealthCheck, type Health } from "./lib/observe/health.ts";
import { VERSION } from "./lib/version.ts";
import {
  renderWorkerMetrics,
  reusePortAvailable,
  startWorkers,
  UNSTABLE_NET_MESSAGE,
  type WorkerGroup,
  WorkerStartError,
} from "./lib/cli/workers/pool.ts";

/** Thrown to end the run with a message already explained. */
class Exit extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

let warnedOfInspector = false;

/** Says once that Deno's debugger stayed open after a SIGUSR1. */
function warnOfOpenInspector(outcome: InspectorOutcome) {
  if (outcome !== "open" || warnedOfInspector) return;
  warnedOfInspector = true;
  console.error(
    "greeter: warning: SIGUSR1 made Deno open its debugger on " +
      "127.0.0.1:9229, and greeter cannot close it without --allow-sys; " +
      "send SIGUSR2 for stats instead",
  );
}

const SHUTDOWN_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

function explainListen(error: unknown, flag?: string): never {
  if (error instanceof ListenError) {
    const { message, exitCode } = explainListenError(
      error.cause,
      error.address,
      error.port,
      flag,
    );
    throw new Exit(message, exitCode);
  }
  throw error;
}

function startMetrics(
  command: ServeCommand,
  render: () => string,
  health: () => Health,
): MetricsServer | undefined {
  if (!command.metrics) return undefined;
  const { hostname, port } = command.metrics;
  try {
    return serveMetrics({ hostname, port, render, health });
  } catch (error) {
    const address = formatAddress({ transport: "tcp", hostname, port });
    return explainListen(new ListenError(address, port, error), "--metrics");
  }
}

/**
 * The health check of the metrics endpoint, for a server that may not have
 * started yet (the metrics port opens first).
 */
function healthOf(
  running: () =>
    | { draining: boolean; stats: Readonly<ServerStats>; addrs: Deno.Addr[] }
    | undefined,
): () => Health {
  const check = createHealthCheck({
    stats: () => running()!.stats,
    draining: () => running()?.draining ?? true,
    ports: () =>
      running()!.addrs.flatMap((addr) =>
        addr.transport === "tcp" ? [addr.port] : []
      ),
  });
  return () => running() ? check() : { ok: false, reason: "starting" };
}

/** The batched stdout writer and the log the command asks for. */
function createLog(command: ServeCommand) {
  const writer = createLineWriter(Deno.stdout);
  const log = createServerLog({
    writer,
    format: command.logFormat,
    quiet: command.quiet,
    rate: command.logRate,
  });
  return { writer, log };
}

/** A running server, one thread or several, as the CLI drives it. */
interface Service {
  command: ServeCommand;
  log: ServerLog;
  metrics: MetricsServer | undefined;
  addrs: Deno.Addr[];
  /** The current counters. */
  stats(): Readonly<ServerStats>;
  /** Brings the counters up to date (workers report them periodically). */
  refresh?(): Promise<void>;
  /** Starts draining; its outcome is reported through `finished`. */
  shutdown(): unknown;
  /** Settles with a failure's one-line message, or undefined. */
  finished: Promise<string | undefined>;
  /** Called once the start-up lines are out. */
  started?(): void;
}

/**
 * Logs the start, serves until SIGINT/SIGTERM (draining) or a failure,
 * prints stats on SIGUSR1/SIGUSR2, then logs the stop and flushes the log.
 */
async function runUntilStopped(service: Service): Promise<number> {
  const { command, log, metrics } = service;
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    log.stopping();
    Promise.resolve(service.shutdown()).catch(() => {});
  };
  for (const signal of SHUTDOWN_SIGNALS) Deno.addSignalListener(signal, stop);
  const unwatchStats = watchStatsSignal(
    async () => {
      await service.refresh?.();
      log.stats(service.stats());
    },
    warnOfOpenInspector,
  );
  log.started(service.addrs, command.tlsCert !== undefined, metrics?.addr);
  service.started?.();
  let failure: string | undefined;
  try {
    failure = await service.finished;
  } finally {
    for (const signal of SHUTDOWN_SIGNALS) {
      Deno.removeSignalListener(signal, stop);
    }
    unwatchStats();
    await metrics?.shutdown();
  }
  await log.stopped(service.stats(), failure);
  return failure === undefined ? 0 : 1;
}

async function serve(command: ServeCommand): Promise<number> {
  const options = await prepareServe(command);
  const { writer, log } = createLog(command);
  const histogram = createDurationHistogram();
  let server: GreetingServer | undefined;
  // Metrics first: if its port is taken, nothing has started greeting.
  const metrics = startMetrics(
    command,
    () =>
      renderMetrics(server!.stats, histogram, {
        draining: server!.draining,
        log: { suppressed: log.suppressed, dropped: writer.dropped },
      }),
    healthOf(() => server),
  );
  try {
    server = serveGreeting({
      ...options,
      onConnection: log.onConnection,
      onAcceptError: log.onAcceptError,
      onClose: log.onClose || metrics
        ? (record) => {
          histogram.observe(record.duration);
          log.onClose?.(record);
        }
        : undefined,
    });
  } catch (error) {
    await metrics?.shutdown();
    explainListen(error);
  }

  const running = server;
  return await runUntilStopped({
    command,
    log,
    metrics,
    addrs: running.addrs,
    stats: () => running.stats,
    shutdown: () => running.shutdown(),
    finished: running.finished.then(
      () => undefined,
      (error) => explainError(error).message,
    ),
  });
}

/** `--workers N`: the same as serve(), with N threads doing the serving. */
async function serveWorkers(
  command: ServeCommand,
  count: number,
): Promise<number> {
  if (!reusePortAvailable()) throw new Exit(UNSTABLE_NET_MESSAGE, 2);
  // Every worker prepares the command itself (a greeting function cannot be
  // sent to a thread); doing it here first reports a bad file as single
  // mode does, before anything starts.
  await prepareServe(command);
  const { writer, log } = createLog(command);
  // Workers' lines, held back until the start-up lines are out.
  let held: string[] | undefined = [];
  const write = (text: string) => {
    // Line by line, so that a slow stdout drops and counts lines, not batches.
    const lines = text.split("\n");
    lines.pop();
    for (const line of lines) writer.line(line);
  };
  let group: WorkerGroup | undefined;
  const metrics = startMetrics(
    command,
    () =>
      renderMetrics(group!.stats(), group!.histogram(), {
        draining: group!.draining,
        log: { suppressed: group!.suppressed(), dropped: writer.dropped },
      }) + renderWorkerMetrics(group!.accepted()),
    healthOf(() => group && { ...group, stats: group.stats() }),
  );
  try {
    group = await startWorkers(command, {
      count,
      onLog: (text) => held ? held.push(text) : write(text),
    });
  } catch (error) {
    await metrics?.shutdown();
    if (error instanceof WorkerStartError) {
      throw new Exit(error.message, error.exitCode);
    }
    throw error;
  }

  const running = group;
  return await runUntilStopped({
    command,
    log,
    metrics,
    addrs: running.addrs,
    stats: () => running.stats(),
    refresh: () => running.refresh(),
    shutdown: () => running.shutdown(),
    finished: running.finished,
    started() {
      for (const text of held!) write(text);
      held = undefined;
    },
  });
}

/** The TLS options of a client command, with its --ca file read. */
async function clientTls(
  transport: ClientTransport,
): Promise<false | ClientTlsOptions> {
  if (!transport.tls) return false;
  const caCerts = transport.ca === undefined
    ? undefined
    : [new TextDecoder().decode(await readInputFile(transport.ca, "CA file"))];
  return { caCerts, insecure: transport.insecure };
}

async function check(command: CheckCommand): Promise<number> {
  const result = await checkGreeting({
    ...command,
    path: command.unix,
    tls: await clientTls(command),
  });
  // A failure to connect is worded by the CLI, with the flags that fix it.
  console.log(
    result.error === undefined
      ? result.message
      : `FAIL ${
        lowerFirst(explainConnectError(result.error, result.address).message)
      }`,
  );
  return result.ok ? 0 : 1;
}

async function connect(command: ConnectCommand): Promise<number> {
  const address = command.unix ??
    formatAddress({ transport: "tcp", ...command });
  try {
    const tls = await clientTls(command);
    for await (
      const chunk of readGreeting({ ...command, path: command.unix, tls })
    ) {
      let written = 0;
      while (written < chunk.length) {
        written += await Deno.stdout.write(chunk.subarray(written));
      }
    }
  } catch (error) {
    const { message, exitCode } = explainConnectError(error, address);
    throw new Exit(message, exitCode);
  }
  return 0;
}

/**
 * Runs greeter with the given arguments and resolves to the exit code.
 * Every failure is reported as one line on stderr, never a stack trace.
 */
export async function main(args: string[]): Promise<number> {
  try {
    const command = parseCommand(args);
    switch (command.command) {
      case "help":
        console.log(command.text);
        return 0;
      case "version":
        console.log(`greeter ${VERSION}`);
        return 0;
      case "connect":
        return await connect(command);
      case "check":
        return await check(command);
      case "serve":
        return (command.workers ?? 1) > 1
          ? await serveWorkers(command, command.workers!)
          : await serve(command);
    }
  } catch (error) {
    const { message, exitCode } = error instanceof Exit
      ? error
      : explainError(error);
    console.error(`greeter: ${message}`);
    return exitCode;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
