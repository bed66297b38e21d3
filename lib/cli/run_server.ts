import { createConnectionLog } from "../observe/connection_log.ts";
import { defaultLogTimestamps } from "../observe/log_format.ts";
import {
  createDurationHistogram,
  type DurationHistogram,
  TRAPPED_BUCKETS,
} from "../observe/metrics.ts";
import type { ServeGreetingOptions } from "../server/options.ts";
import {
  type GreetingServer,
  serveGreetingWith,
} from "../server/serve_greeting.ts";
import type { ServeCommand } from "./commands/serve.ts";
import { complete, type Prepared } from "./setup.ts";
import { explainError } from "./explain.ts";
import { warn, warnOnceServing } from "./warn.ts";
import { mayRead } from "./socket_activation.ts";

/**
 * The cell of the health probe's port (see `selfProbe`): the main thread's,
 * which it also hands to every worker.
 */
export const SELF_PROBE: Int32Array = new Int32Array(new SharedArrayBuffer(4));

/**
 * Warnings said once per process, not once per worker: the main thread's
 * cell, which it also hands to every worker. Slot 0: the unfitted cap.
 */
export const SAID_ONCE: Int32Array = new Int32Array(new SharedArrayBuffer(4));

/** One thread's server with its connection log and duration histogram. */
export interface ServerRun {
  /** The running server. */
  readonly server: GreetingServer;
  /** Connection durations, read by the metrics endpoint. */
  readonly histogram: DurationHistogram;
  /** In tarpit mode, how long held clients were held. */
  readonly trapped: DurationHistogram | undefined;
  /** Connection lines the flood limit left out so far. */
  readonly suppressed: number;
  /** Emits the pending summaries and stops their timers. */
  closeLog(): void;
}

/** Options for {@linkcode runServer}. */
export interface RunServerOptions {
  /** The serving command: its log and metrics. */
  command: ServeCommand;
  /** The server options made from it (see `complete`). */
  options: ServeGreetingOptions;
  /** Receives each log line (the main thread's writer, or a worker's batcher). */
  emit: (line: string) => void;
  /** The main thread's probe cell, in a worker; this thread's by default. */
  selfProbe?: Int32Array;
  /** The main thread's {@linkcode SAID_ONCE}, in a worker. */
  saidOnce?: Int32Array;
}

/**
 * Starts one server run: the same for the main thread and for every worker
 * of `--workers`. Only what surrounds it (stdout, or messages to the main
 * thread) differs.
 *
 * @throws What `serveGreeting` throws; nothing is left running.
 */
export function runServer(run: RunServerOptions): ServerRun {
  const { command, options, emit } = run;
  const log = createConnectionLog({
    emit,
    format: command.log.format,
    quiet: command.log.quiet,
    rate: command.log.rate,
    timestamps: command.log.timestamps === "on",
    sensed: options.greetPause !== undefined || options.capture !== undefined,
    tarpit: options.tarpit !== undefined,
  });
  const histogram = createDurationHistogram();
  const trapped = options.tarpit
    ? createDurationHistogram(TRAPPED_BUCKETS)
    : undefined;
  let server: GreetingServer;
  try {
    server = serveGreetingWith({
      ...options,
      onConnection: log.onConnection,
      onAcceptError: command.fdLimitUnread
        ? sayUnfittedOnce(command, log.onAcceptError, run.saidOnce ?? SAID_ONCE)
        : log.onAcceptError,
      // Only --metrics probes the server's own port.
      selfProbe: command.metrics ? run.selfProbe ?? SELF_PROBE : undefined,
      onClose: log.onClose,
    }, {
      // The histograms are only read by --metrics, and take numbers: no
      // record is made for them.
      onEnded: command.metrics
        ? (duration, held) => {
          histogram.observe(duration);
          if (held !== undefined) trapped?.observe(held);
        }
        : undefined,
    });
  } catch (error) {
    log.close();
    throw error;
  }
  return {
    server,
    histogram,
    trapped,
    get suppressed() {
      return log.suppressed;
    },
    closeLog: () => log.close(),
  };
}

/**
 * `onAcceptError` that also says, at the first EMFILE, why the cap did not
 * prevent it: the open-file limit could not be read to fit it.
 */
function sayUnfittedOnce(
  command: ServeCommand,
  onAcceptError: NonNullable<ServeGreetingOptions["onAcceptError"]>,
  said: Int32Array,
): NonNullable<ServeGreetingOptions["onAcceptError"]> {
  return (error, kind, code) => {
    onAcceptError(error, kind, code);
    if (code !== "EMFILE" || Atomics.compareExchange(said, 0, 0, 1) !== 0) {
      return;
    }
    warn(
      "out of open files (EMFILE) below --max-connections " +
        `${command.options.maxConnections}: greeter could not read the ` +
        "open-file limit to fit the cap to it (Deno reads /proc only with " +
        "--allow-all). Raise the limit (ulimit -n, or LimitNOFILE= in the " +
        "systemd unit), lower --max-connections, or give --allow-all",
      command.log.format,
    );
  };
}

/**
 * Swaps a prepared reload into `server`, the same on the main thread and in
 * every worker; resolves to the failure's one line, if any.
 */
export async function reloadServer(
  server: GreetingServer,
  command: ServeCommand,
  prepared: Prepared,
): Promise<string | undefined> {
  try {
    server.reload(await complete(command, prepared));
    return undefined;
  } catch (error) {
    return explainError(error).message;
  }
}

/**
 * Settles `--log-timestamps auto`: on when stdout is not a terminal and not
 * journald (which stamps lines itself: `JOURNAL_STREAM` is set). Where
 * `JOURNAL_STREAM` may not be read (no `--allow-env`), it stays off, as the
 * classic output was, and where that matters (text lines, stdout not a
 * terminal) greeter says so once it serves. JSON lines always carry their
 * `@timestamp`.
 */
export function resolveLogTimestamps(command: ServeCommand): ServeCommand {
  if (command.log.timestamps !== "auto") return command;
  const isTerminal = Deno.stdout.isTerminal();
  const readable = mayRead("JOURNAL_STREAM");
  if (!readable && !isTerminal && command.log.format === "text") {
    warnOnceServing(
      "--log-timestamps auto: stdout is not a terminal, but without " +
        "--allow-env=JOURNAL_STREAM greeter cannot tell whether it is " +
        "journald's (which stamps lines itself), so lines carry no " +
        "timestamps: add that permission, or choose --log-timestamps on " +
        "or off",
      command.log.format,
    );
  }
  const on = readable && defaultLogTimestamps({
    isTerminal,
    journalStream: Deno.env.get("JOURNAL_STREAM"),
  });
  return { ...command, log: { ...command.log, timestamps: on ? "on" : "off" } };
}
