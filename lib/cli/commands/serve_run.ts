/**
 * Runs the serving command: the main thread alone, or `--workers N`
 * threads. Its flags, help and parser are in serve.ts.
 *
 * @module
 */
import { createLineWriter } from "../../observe/line_writer.ts";
import { escapeControl } from "../../observe/escape.ts";
import { renderMetrics } from "../../observe/metrics.ts";
import { createServerLog } from "../../observe/connection_log.ts";
import { explainError, explainListen } from "../explain.ts";
import { ExitError } from "../flags.ts";
import type { HealthSource } from "../metrics_endpoint.ts";
import type { MetricsServer } from "../../observe/metrics_server.ts";
import {
  resolveLogTimestamps,
  runServer,
  type ServerRun,
} from "../run_server.ts";
import { renderReloadMetrics } from "../../observe/reload_metrics.ts";
import { createReloadCounters, runUntilStopped } from "../service.ts";
import { prepareReload, prepareServe } from "../setup.ts";
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
      console.error(
        `greeter: warning: cannot write the log to stdout (${
          escapeControl(error instanceof Error ? error.message : String(error))
        }); greeter goes on serving, and counts the lines it loses in ` +
          "greeter_log_lines_dropped_total",
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
  // Every worker prepares the command itself (a greeting function cannot be
  // sent to a thread); doing it here first reports a bad file as single
  // mode does, before anything starts.
  await prepareServe(command);
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
    group = await startWorkers(command, {
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
    metrics,
    addrs: running.addrs,
    tls: command.tlsCert !== undefined,
    reloads,
    stats: () => running.stats(),
    async reload() {
      // Checked here first, so a bad file leaves every worker as it was.
      try {
        await prepareReload(command);
      } catch (error) {
        return explainError(error).message;
      }
      return await running.reload();
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
export function runServe(given: ServeCommand): Promise<number> {
  // Decided once, here: workers do not see the main thread's stdout.
  const command = fitToDescriptors(resolveLogTimestamps(given));
  return (command.workers ?? 1) > 1
    ? serveWorkers(command, command.workers!)
    : serveHere(command);
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
  console.error(
    `greeter: warning: --max-connections ${command.maxConnections}${
      workers > 1 ? ` in each of ${workers} workers` : ""
    } does not fit in the limit of ${soft} open files; serving at most ` +
      `${each} at once${workers > 1 ? " per worker" : ""}. Raise the limit ` +
      "(ulimit -n, or LimitNOFILE= in the systemd unit) to serve more",
  );
  return { ...command, maxConnections: each };
}
