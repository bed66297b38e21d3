/**
 * Runs the serving command: the main thread alone, or `--workers N`
 * threads. Its flags, help and parser are in serve.ts.
 *
 * @module
 */
import { createLineWriter } from "../../observe/line_writer.ts";
import { createServerLog } from "../../observe/connection_log.ts";
import { explainError } from "../explain.ts";
import { ExitError, usageIf } from "../flags.ts";
import { mayRead, takePassedSockets } from "../socket_activation.ts";
import { runServer, type Serving } from "../run_server.ts";
import { renderReloadMetrics } from "../../observe/metrics.ts";
import { onSignal, SERVER_SIGNALS } from "../signals.ts";
import { createSystemdNotifier } from "../systemd_notify.ts";
import { formatAddress, type HostPort } from "../../net/address.ts";
import { errorLine } from "../../net/escape.ts";
import { guardDebuggerPort, reusePortAvailable } from "../debugger_guard.ts";
import { sayHeldWarnings, warn, warnOnceServing } from "../warn.ts";
import { prepare } from "../setup.ts";
import { fitConnectionCap } from "../descriptor_limit.ts";
import { readFdLimit } from "../../observe/process_metrics.ts";
import { defaultLogTimestamps } from "../../observe/log_format.ts";
import type { ServeCommand } from "./serve.ts";

/** Serves until stopped; resolves to the exit code. */
export async function runServe(given: ServeCommand): Promise<number> {
  // Usage errors come before anything is held or read.
  const passed = takePassedSockets(!!given.socketActivation, given.log.format);
  const workers = given.workers ?? 1;
  const oneThread = "--workers cannot be used with socket activation: the " +
    "passed sockets are served by one thread; drop --workers, or run one " +
    "greeter per socket";
  usageIf(passed !== undefined && workers > 1, oneThread);
  // Deno ends the whole process, with no error to catch, when reusePort is
  // asked for without --unstable-net.
  if (workers > 1 && !reusePortAvailable()) {
    throw new ExitError("--workers needs deno run --unstable-net", 2);
  }
  // The passed sockets (socket activation) replace the addresses of the
  // flags. Then, before any file is read: Deno's SIGUSR1 debugger shut. The
  // first TCP address greeter listens on (a host and a port) tells whether
  // it may listen at all; passed sockets need no leave, so with them it is
  // always held.
  const listen =
    passed?.greeting.map((fd) => ({ transport: "fd" as const, fd })) ??
      given.options.listen;
  using _guard = guardDebuggerPort(
    listen?.find((target) => !target.transport) as HostPort | undefined,
    (message) => warnOnceServing(message, given.log.format),
  );
  // Decided once, here: workers do not see the main thread's stdout.
  const command = fitToDescriptors({
    ...given,
    options: { ...given.options, listen },
    log: { ...given.log, timestamps: resolveLogTimestamps(given.log) },
    metrics: passed?.metrics === undefined
      ? given.metrics
      : { hostname: "", port: 0, fd: passed.metrics },
  });
  const prepared = await prepare(command, true);
  // The warnings said from here on, in the log's format.
  const say = (text: string) => warn(text, command.log.format);
  const writer = createLineWriter(Deno.stdout, {
    // Said once; the lines lost from then on are counted in the metrics.
    onError: (error) =>
      say(
        `cannot write the log to stdout (${errorLine(error)}); greeter goes ` +
          "on serving, and counts the lines it loses in " +
          "greeter_log_lines_dropped_total",
      ),
  });
  const log = createServerLog({ ...command.log, writer });
  const reloads = { success: 0, failure: 0, lastSuccess: Date.now() };
  let serving: Serving | undefined;
  // Opened first, and loaded only for --metrics; until the server runs, a
  // scrape gets the process metrics alone.
  const metrics = command.metrics &&
    await (await import("../metrics_endpoint.ts")).startMetrics(
      command.metrics,
      async () => {
        // The workers' counters as of this scrape, not of their last report.
        await serving?.refresh();
        return serving
          ? serving.render(writer.dropped) + renderReloadMetrics(reloads)
          : "";
      },
      () => serving,
    );
  // Serves from the main thread alone, or with `--workers N` threads, whose
  // lines are held back until the start-up lines are out.
  let held: string[] | undefined = [];
  const onLines = (lines: string[]) =>
    held ? held.push(...lines) : lines.forEach(writer.line);
  const running: Serving = serving =
    await (workers <= 1
      ? runServer(command, prepared, writer.line)
      : import("../workers/pool.ts").then((pool) =>
        pool.startWorkers(command, prepared, onLines)
      )).catch(async (error) => {
        await metrics?.shutdown();
        throw error;
      });
  // From here on, serves until SIGINT/SIGTERM (draining) or a failure,
  // reloads on SIGHUP, prints stats on SIGUSR2, tells systemd (when
  // NOTIFY_SOCKET is set) that it is ready, reloading or stopping, then
  // logs the stop and flushes the log.
  const status = `Greeting on ${running.addrs.map(formatAddress).join(", ")}`;
  sayHeldWarnings();
  const notifier = createSystemdNotifier();
  // STOPPING=1 once it is sent: awaited before the process exits, for
  // systemd must hear it.
  let stopping: Promise<unknown> | undefined;
  const stop = () => {
    if (stopping) return;
    log.stopping();
    stopping = notifier.stopping("Draining");
    running.shutdown();
  };
  // One reload at a time; SIGHUPs during one ask for one more after it.
  let lastReload = Promise.resolve();
  let queued = false;
  let ended = false;
  const reload = () => {
    if (stopping || queued) return;
    queued = true;
    lastReload = lastReload.then(async () => {
      queued = false;
      if (stopping || ended) return;
      await notifier.reloading("Reloading");
      // Read and checked here once, so a bad file leaves the old
      // configuration, and every worker swaps in exactly these bytes.
      const error = await prepare(command, false)
        .then((next) => running.swap(next))
        .catch((caught) => explainError(caught).message);
      // A reload that ends after the server did is not waited for (a read
      // may hang) and says nothing after the stop line.
      if (ended) return;
      const ok = error === undefined;
      if (ok) reloads.lastSuccess = Date.now();
      reloads[ok ? "success" : "failure"]++;
      log.reloaded(error);
      await notifier.ready(status + (ok ? "" : "; last reload failed"));
    });
  };
  // SIGUSR1 does nothing in greeter: Deno would open its debugger on it,
  // which the debugger guard prevents. Said once, so that an operator who
  // sent it by habit learns which signal does what.
  let toldOfSigusr1 = false;
  const sigusr1 = "SIGUSR1 does nothing (Deno's debugger stays shut); send " +
    "SIGUSR2 for stats, SIGHUP to reload";
  const handlers: Partial<Record<Deno.Signal, () => void>> = {
    SIGINT: stop,
    SIGTERM: stop,
    SIGBREAK: stop,
    SIGHUP: reload,
    SIGUSR1() {
      if (!toldOfSigusr1) say(sigusr1);
      toldOfSigusr1 = true;
    },
    // Stats must never stop the server, whatever fails in them.
    SIGUSR2: () =>
      void running.refresh()
        .then(() => log.stats(running.stats))
        .catch(() => {}),
  };
  // Those of the platform (on Windows, SIGINT and SIGBREAK alone).
  const removers = SERVER_SIGNALS.map((sig) => onSignal(sig, handlers[sig]!));
  const tls = command.files.tlsCert !== undefined;
  log.started(running.addrs, tls, metrics?.addr);
  held.forEach(writer.line);
  held = undefined;
  notifier.ready(status).then((told) => {
    // Never silence: a Type=notify unit would wait for READY=1 until its
    // timeout.
    if (told || !notifier.enabled) return;
    const why = notifier.lastError?.message ?? "unknown error";
    say(
      `cannot tell systemd that greeter is ready (${why}): run deno with ` +
        "--allow-write for $NOTIFY_SOCKET and --unstable-net, or use the " +
        "binary",
    );
  });
  // Resolves, never rejects (to the failure, if any).
  const failure = await running.finished;
  for (const remove of removers) remove();
  ended = true;
  await metrics?.shutdown();
  await (stopping ?? notifier.stopping(failure ?? "Stopped"));
  await log.stopped(running.stats, failure);
  return failure === undefined ? 0 : 1;
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
  const workers = command.workers ?? 1;
  const asked = command.options.maxConnections!;
  const { cap, lowered } = fitConnectionCap(asked * workers, limit.soft);
  if (!lowered) return command;
  const each = Math.max(1, Math.floor(cap / workers));
  const message =
    `--max-connections ${asked}${
      workers > 1 ? ` in each of ${workers} workers` : ""
    } does not fit in the limit of ${limit.soft} open files; serving at most ` +
    `${each} at once${workers > 1 ? " per worker" : ""}. Raise the limit ` +
    "(ulimit -n, or LimitNOFILE= in the systemd unit) to serve more";
  warn(message, command.log.format);
  return { ...command, options: { ...command.options, maxConnections: each } };
}

/**
 * Settles `--log-timestamps auto`: on when stdout is not a terminal and not
 * journald (which stamps lines itself: `JOURNAL_STREAM` is set). Where
 * `JOURNAL_STREAM` may not be read (no `--allow-env`), it stays off, as the
 * classic output was, and where that matters (text lines, stdout not a
 * terminal) greeter says so once it serves. JSON lines always carry their
 * `@timestamp`.
 */
export function resolveLogTimestamps(log: ServeCommand["log"]): boolean {
  if (log.timestamps !== undefined) return log.timestamps;
  const isTerminal = Deno.stdout.isTerminal();
  const readable = mayRead("JOURNAL_STREAM");
  if (!readable && !isTerminal && log.format === "text") {
    warnOnceServing(
      "--log-timestamps auto: stdout is not a terminal, but without " +
        "--allow-env=JOURNAL_STREAM greeter cannot tell whether it is " +
        "journald's (which stamps lines itself), so lines carry no " +
        "timestamps: add that permission, or choose --log-timestamps on " +
        "or off",
    );
  }
  if (!readable) return false;
  const journalStream = Deno.env.get("JOURNAL_STREAM");
  return defaultLogTimestamps({ isTerminal, journalStream });
}
