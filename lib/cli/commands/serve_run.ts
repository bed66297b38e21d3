/**
 * Runs the serving command: the main thread alone, or `--workers N`
 * threads. Its flags, help and parser are in serve.ts.
 *
 * @module
 */
import { createLineWriter } from "../../observe/line_writer.ts";
import { renderMetrics } from "../../observe/metrics.ts";
import { createServerLog } from "../../observe/connection_log.ts";
import { explainError, explainListen } from "../explain.ts";
import { ExitError, UsageError } from "../flags.ts";
import { takePassedSockets } from "../socket_activation.ts";
import type { HealthSource } from "../metrics_endpoint.ts";
import type { MetricsServer } from "../../observe/metrics_server.ts";
import {
  resolveLogTimestamps,
  runServer,
  type ServerRun,
} from "../run_server.ts";
import { renderReloadMetrics } from "../../observe/reload_metrics.ts";
import { createReloadCounters, runUntilStopped } from "../service.ts";
import { guardDebuggerPort } from "../debugger_guard.ts";
import { warn, warnOnceServing } from "../warn.ts";
import { type FileSnapshot, prepareReload, prepareServe } from "../setup.ts";
import { fitConnectionCap, readSoftFdLimit } from "../descriptor_limit.ts";
import type { WorkerGroup } from "../workers/pool.ts";

/**
 * Opens `--metrics`, if asked; its modules load only then, so a server
 * without it starts without them.
 */
async function startMetrics(
  command: ServeCommand,
  render: () => string,
  running: () => HealthSource | undefined,
): Promise<MetricsServer | undefined> {
  if (!command.metrics) return undefined;
  const endpoint = await import("../metrics_endpoint.ts");
  return await endpoint.startMetrics(command, render, running);
}
import type { ServeCommand } from "./serve.ts";

/** The stdout writer and the lifecycle log of a serving command. */
function createLog(command: ServeCommand) {
  const writer = createLineWriter(Deno.stdout, {
    // Said once; the lines lost from then on are counted in the metrics.
    onError: (error) =>
      warn(
        `cannot write the log to stdout (${
          error instanceof Error ? error.message : String(error)
        }); greeter goes on serving, and counts the lines it loses in ` +
          "greeter_log_lines_dropped_total",
        command.logFormat,
      ),
  });
  return {
    writer,
    log: createServerLog({
      writer,
      format: command.logFormat,
      timestamps: command.logTimestamps === "on",
    }),
  };
}

/** Serves from the main thread alone. */
async function serveHere(command: ServeCommand): Promise<number> {
  const options = await prepareServe(command);
  const { writer, log } = createLog(command);
  const reloads = createReloadCounters();
  let run: ServerRun | undefined;
  // Until the server runs, a scrape gets the process metrics alone.
  const metrics = await startMetrics(
    command,
    () =>
      run
        ? renderMetrics(run.server.stats, run.histogram, {
          draining: run.server.draining,
          log: { suppressed: run.suppressed, dropped: writer.dropped },
          ...(run.server.tarpit && run.trapped
            ? { tarpit: { stats: run.server.tarpit, trapped: run.trapped } }
            : {}),
        }) + renderReloadMetrics(reloads)
        : "",
    () =>
      run && {
        draining: run.server.draining,
        stats: run.server.stats,
        addrs: run.server.addrs,
      },
  );
  try {
    run = runServer({ command, options, emit: writer.line });
  } catch (error) {
    await metrics?.shutdown();
    explainListen(error, command.spelled.host, command.spelled.port);
  }
  const { server } = run;
  return await runUntilStopped({
    log,
    format: command.logFormat,
    metrics,
    addrs: server.addrs,
    tls: command.tlsCert !== undefined,
    reloads,
    stats: () => server.stats,
    async reload() {
      try {
        server.reload(await prepareReload(command));
        return undefined;
      } catch (error) {
        return explainError(error).message;
      }
    },
    shutdown: () => server.shutdown(),
    finished: server.finished.then(
      () => undefined,
      (error) => explainError(error).message,
    ),
    stopped: () => run!.closeLog(),
  });
}

/** `--workers N`: the same, with N threads doing the serving. */
async function serveWorkers(
  command: ServeCommand,
  count: number,
): Promise<number> {
  // Loaded only for --workers.
  const {
    renderWorkerMetrics,
    reusePortAvailable,
    startWorkers,
    UNSTABLE_NET_MESSAGE,
    WorkerStartError,
  } = await import("../workers/pool.ts");
  if (!reusePortAvailable()) throw new ExitError(UNSTABLE_NET_MESSAGE, 2);
  // Files are read here, once: a bad one is reported as in single mode,
  // before anything starts, and every worker prepares from these bytes (a
  // greeting function cannot be sent to a thread), reading nothing itself.
  const files: FileSnapshot = new Map();
  await prepareServe(command, files);
  const { writer, log } = createLog(command);
  const reloads = createReloadCounters();
  // Workers' lines, held back until the start-up lines are out.
  let held: string[] | undefined = [];
  const write = (text: string) => {
    // Line by line, so that a slow stdout drops and counts lines, not batches.
    const lines = text.split("\n");
    lines.pop();
    for (const line of lines) writer.line(line);
  };
  let group: WorkerGroup | undefined;
  const metrics = await startMetrics(
    command,
    () =>
      group
        ? renderMetrics(group.stats(), group.histogram(), {
          draining: group.draining,
          log: { suppressed: group.suppressed(), dropped: writer.dropped },
        }) + renderWorkerMetrics(group.accepted()) +
          renderReloadMetrics(reloads)
        : "",
    () =>
      group && {
        draining: group.draining,
        stats: group.stats(),
        addrs: group.addrs,
      },
  );
  try {
    group = await startWorkers(command, files, {
      count,
      onLog: (text) => held ? held.push(text) : write(text),
    });
  } catch (error) {
    await metrics?.shutdown();
    if (error instanceof WorkerStartError) {
      throw new ExitError(error.message, error.exitCode);
    }
    throw error;
  }
  const running = group;
  return await runUntilStopped({
    log,
    format: command.logFormat,
    metrics,
    addrs: running.addrs,
    tls: command.tlsCert !== undefined,
    reloads,
    stats: () => running.stats(),
    async reload() {
      // Read and checked here once, so a bad file leaves every worker as it
      // was, and every worker swaps in exactly these bytes.
      const files: FileSnapshot = new Map();
      try {
        await prepareReload(command, files);
      } catch (error) {
        return explainError(error).message;
      }
      return await running.reload(files);
    },
    refresh: () => running.refresh(),
    shutdown: () => running.shutdown(),
    finished: running.finished,
    started() {
      for (const text of held!) write(text);
      held = undefined;
    },
  });
}

/** Serves until stopped; resolves to the exit code. */
export async function runServe(given: ServeCommand): Promise<number> {
  // Usage errors come before anything is held or read.
  const passed = withPassedSockets(given);
  if ((passed.workers ?? 1) > 1) {
    const pool = await import("../workers/pool.ts");
    if (!pool.reusePortAvailable()) {
      throw new ExitError(pool.UNSTABLE_NET_MESSAGE, 2);
    }
  }
  // Then, before any file is read: Deno's SIGUSR1 debugger shut.
  using _guard = guardDebuggerPort(
    passed.ports.length > 0
      ? { hostname: passed.hosts[0], port: passed.ports[0] }
      : undefined,
    (message) => warnOnceServing(message, passed.logFormat),
  );
  // Decided once, here: workers do not see the main thread's stdout.
  const command = fitToDescriptors(resolveLogTimestamps(passed));
  return (command.workers ?? 1) > 1
    ? await serveWorkers(command, command.workers!)
    : await serveHere(command);
}

/**
 * Takes the sockets a service manager passed (socket activation), which
 * replace the addresses of the flags, and hides them from any child.
 *
 * @throws {UsageError} For a malformed protocol variable, or --workers.
 */
function withPassedSockets(command: ServeCommand): ServeCommand {
  const passed = takePassedSockets(
    command.socketActivation === true,
    command.logFormat,
  );
  if (!passed) return command;
  if ((command.workers ?? 1) > 1) {
    throw new UsageError(
      "--workers cannot be used with socket activation: the passed sockets " +
        "are served by one thread; drop --workers, or run one greeter per " +
        "socket",
    );
  }
  const metrics = passed.metrics === undefined
    ? command.metrics
    : { hostname: "", port: 0, fd: passed.metrics };
  return { ...command, passed, metrics };
}

/**
 * Lowers `--max-connections` to fit the open-file limit, saying so once:
 * a cap above it would only make accepts fail with EMFILE under load. Every
 * worker has the cap, so together they must fit. Where the limit cannot be
 * read (Deno 2.9 opens /proc only with --allow-all), the cap stays.
 */
function fitToDescriptors(command: ServeCommand): ServeCommand {
  const soft = readSoftFdLimit();
  if (soft === undefined) return command;
  const workers = command.workers ?? 1;
  const { cap, lowered } = fitConnectionCap(
    command.maxConnections * workers,
    soft,
  );
  if (!lowered) return command;
  const each = Math.max(1, Math.floor(cap / workers));
  warn(
    `--max-connections ${command.maxConnections}${
      workers > 1 ? ` in each of ${workers} workers` : ""
    } does not fit in the limit of ${soft} open files; serving at most ` +
      `${each} at once${workers > 1 ? " per worker" : ""}. Raise the limit ` +
      "(ulimit -n, or LimitNOFILE= in the systemd unit) to serve more",
    command.logFormat,
  );
  return { ...command, maxConnections: each };
}
