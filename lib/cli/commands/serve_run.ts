/**
 * Runs the serving command: the main thread alone, or `--workers N`
 * threads. Its flags, help and parser are in serve.ts.
 *
 * @module
 */
import {
  createLineWriter,
  type LineWriter,
} from "../../observe/line_writer.ts";
import { renderMetrics } from "../../observe/metrics.ts";
import { createServerLog } from "../../observe/connection_log.ts";
import { explainError, explainListen } from "../explain.ts";
import { ExitError, UsageError } from "../flags.ts";
import { takePassedSockets } from "../socket_activation.ts";
import type { HealthSource } from "../metrics_endpoint.ts";
import {
  reloadServer,
  resolveLogTimestamps,
  runServer,
} from "../run_server.ts";
import { renderReloadMetrics } from "../../observe/reload_metrics.ts";
import {
  createReloadCounters,
  runUntilStopped,
  type Service,
} from "../service.ts";
import { guardDebuggerPort } from "../debugger_guard.ts";
import { warn, warnOnceServing } from "../warn.ts";
import { complete, prepare, type Prepared } from "../setup.ts";
import { fitConnectionCap, readSoftFdLimit } from "../descriptor_limit.ts";
import { readFdLimit } from "../../observe/process_metrics.ts";
import type { ServeCommand } from "./serve.ts";

/**
 * A running server, one thread's or the workers': the {@linkcode Service}
 * that serving drives, with what the metrics and a reload need of it.
 */
type Serving =
  & Pick<Service, "refresh" | "shutdown" | "finished" | "started" | "stopped">
  & HealthSource
  & {
    /** Its families of the metrics, given the log lines stdout dropped. */
    render(dropped: number): string;
    /** Swaps in a prepared reload; the failure's one line, if any. */
    swap(prepared: Prepared): Promise<string | undefined>;
  };

/** Serves from the main thread alone. */
async function serveHere(
  command: ServeCommand,
  prepared: Prepared,
  writer: LineWriter,
): Promise<Serving> {
  const options = await complete(command, prepared);
  let run;
  try {
    run = runServer({ command, options, emit: writer.line });
  } catch (error) {
    return explainListen(error, command.spelled.host, command.spelled.port);
  }
  const { server, histogram, trapped } = run;
  return {
    addrs: server.addrs,
    get draining() {
      return server.draining;
    },
    get stats() {
      return server.stats;
    },
    render: (dropped) =>
      renderMetrics(server.stats, histogram, {
        draining: server.draining,
        log: { suppressed: run.suppressed, dropped },
        ...(server.tarpit && trapped
          ? { tarpit: { stats: server.tarpit, trapped } }
          : {}),
      }),
    swap: (next) => reloadServer(server, command, next),
    shutdown: () => server.shutdown(),
    finished: server.finished.then(
      () => undefined,
      (error) => explainError(error).message,
    ),
    stopped: () => run.closeLog(),
  };
}

/** `--workers N`: the same, with N threads doing the serving. */
async function serveWorkers(
  command: ServeCommand,
  prepared: Prepared,
  writer: LineWriter,
): Promise<Serving> {
  const { renderWorkerMetrics, startWorkers } = await import(
    "../workers/pool.ts"
  );
  // Workers' lines, held back until the start-up lines are out.
  let held: string[][] | undefined = [];
  const write = (lines: string[]) => {
    for (const line of lines) writer.line(line);
  };
  const group = await startWorkers(command, prepared, {
    count: command.workers!,
    onLines: (lines) => held ? held.push(lines) : write(lines),
  });
  return {
    addrs: group.addrs,
    get draining() {
      return group.draining;
    },
    get stats() {
      return group.stats();
    },
    render: (dropped) =>
      renderMetrics(group.stats(), group.histogram(), {
        draining: group.draining,
        log: { suppressed: group.suppressed(), dropped },
      }) + renderWorkerMetrics(group.accepted()),
    swap: (next) => group.reload(next),
    refresh: () => group.refresh(),
    shutdown: () => group.shutdown(),
    finished: group.finished,
    started() {
      held!.forEach(write);
      held = undefined;
    },
  };
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
  // Then, before any file is read: Deno's SIGUSR1 debugger shut. The
  // first TCP address greeter listens on (a host and a port) tells whether
  // it may listen at all; passed sockets need no leave, so with them it is
  // always held.
  const tcp = passed.options.listen?.find((target) => !target.transport);
  using _guard = guardDebuggerPort(
    tcp as { hostname: string; port: number } | undefined,
    (message) => warnOnceServing(message, passed.log.format),
  );
  // Decided once, here: workers do not see the main thread's stdout.
  const command = fitToDescriptors(resolveLogTimestamps(passed));
  const prepared = await prepare(command, true);
  const format = command.log.format;
  const writer = createLineWriter(Deno.stdout, {
    // Said once; the lines lost from then on are counted in the metrics.
    onError: (error) =>
      warn(
        `cannot write the log to stdout (${
          error instanceof Error ? error.message : String(error)
        }); greeter goes on serving, and counts the lines it loses in ` +
          "greeter_log_lines_dropped_total",
        format,
      ),
  });
  const log = createServerLog({
    writer,
    format,
    timestamps: command.log.timestamps === "on",
  });
  const reloads = createReloadCounters();
  let serving: Serving | undefined;
  // Opened first, and loaded only for --metrics; until the server runs, a
  // scrape gets the process metrics alone.
  const metrics = command.metrics &&
    await (await import("../metrics_endpoint.ts")).startMetrics(
      command.metrics,
      () =>
        serving
          ? serving.render(writer.dropped) + renderReloadMetrics(reloads)
          : "",
      () => serving,
    );
  try {
    serving = (command.workers ?? 1) > 1
      ? await serveWorkers(command, prepared, writer)
      : await serveHere(command, prepared, writer);
  } catch (error) {
    await metrics?.shutdown();
    throw error;
  }
  const running = serving;
  return await runUntilStopped({
    ...running,
    log,
    format,
    metrics,
    tls: command.files.tlsCert !== undefined,
    reloads,
    stats: () => running.stats,
    async reload() {
      // Read and checked here once, so a bad file leaves the old
      // configuration, and every worker swaps in exactly these bytes.
      let next: Prepared;
      try {
        next = await prepare(command, false);
      } catch (error) {
        return explainError(error).message;
      }
      return await running.swap(next);
    },
  });
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
    command.log.format,
  );
  if (!passed) return command;
  if ((command.workers ?? 1) > 1) {
    throw new UsageError(
      "--workers cannot be used with socket activation: the passed sockets " +
        "are served by one thread; drop --workers, or run one greeter per " +
        "socket",
    );
  }
  return {
    ...command,
    options: {
      ...command.options,
      listen: passed.greeting.map((fd) => ({ transport: "fd" as const, fd })),
    },
    metrics: passed.metrics === undefined
      ? command.metrics
      : { hostname: "", port: 0, fd: passed.metrics },
  };
}

/**
 * Lowers `--max-connections` to fit the open-file limit, saying so once:
 * a cap above it would only make accepts fail with EMFILE under load. Every
 * worker has the cap, so together they must fit. Where the limit cannot be
 * read (Deno 2.9 opens /proc only with --allow-all), the cap stays.
 */
function fitToDescriptors(command: ServeCommand): ServeCommand {
  const limit = readFdLimit();
  if (limit === undefined) return { ...command, fdLimitUnread: true };
  const soft = readSoftFdLimit(limit);
  if (soft === undefined) return command;
  const workers = command.workers ?? 1;
  const asked = command.options.maxConnections!;
  const { cap, lowered } = fitConnectionCap(asked * workers, soft);
  if (!lowered) return command;
  const each = Math.max(1, Math.floor(cap / workers));
  warn(
    `--max-connections ${asked}${
      workers > 1 ? ` in each of ${workers} workers` : ""
    } does not fit in the limit of ${soft} open files; serving at most ` +
      `${each} at once${workers > 1 ? " per worker" : ""}. Raise the limit ` +
      "(ulimit -n, or LimitNOFILE= in the systemd unit) to serve more",
    command.log.format,
  );
  return { ...command, options: { ...command.options, maxConnections: each } };
}
