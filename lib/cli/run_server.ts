import { createConnectionLog } from "../observe/connection_log.ts";
import type { ServerStats } from "../server/stats.ts";
import { defaultLogTimestamps } from "../observe/log_format.ts";
import {
  createDurationHistogram,
  renderMetrics,
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
 * The process's shared cells, the main thread's, which it also hands to
 * every worker: slot 0 is the health probe's port (see `selfProbe`), slot 1
 * whether the unfitted cap was said (warnings said once per process, not
 * once per worker).
 */
export const SHARED: Int32Array = new Int32Array(new SharedArrayBuffer(8));

/** What the health check reads of a running server, single or workers. */
export interface HealthSource {
  draining: boolean;
  stats: Readonly<ServerStats>;
  addrs: Deno.Addr[];
}

/**
 * A running server, one thread's or the workers', as serving drives it and
 * the metrics and a reload read it.
 */
export type Serving = HealthSource & {
  /** Its families of the metrics, given the log lines stdout dropped. */
  render(dropped: number): string;
  /** Swaps in a prepared reload; the failure's one line, if any. */
  swap(prepared: Prepared): Promise<string | undefined>;
  /** Brings the counters up to date (workers report them periodically). */
  refresh?(): Promise<void>;
  /** Starts draining; its outcome is reported through `finished`. */
  shutdown(): unknown;
  /** Settles with a failure's one-line message, or undefined. */
  finished: Promise<string | undefined>;
  /** Called once the start-up lines are out. */
  started?(): void;
  /** Called once the server has stopped, before the stop line. */
  stopped?(): void;
};

/**
 * Starts one server run: the same for the main thread and for every worker
 * of `--workers`. Only what surrounds it (stdout, or messages to the main
 * thread) differs. `emit` receives each log line (the main thread's writer,
 * or a worker's batcher); a worker passes the main thread's
 * {@linkcode SHARED} cells.
 *
 * @throws What `serveGreeting` throws; nothing is left running.
 */
export function runServer(
  command: ServeCommand,
  options: ServeGreetingOptions,
  emit: (line: string) => void,
  shared: Int32Array = SHARED,
) {
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
        ? sayUnfittedOnce(command, log.onAcceptError, shared)
        : log.onAcceptError,
      // Only --metrics probes the server's own port.
      selfProbe: command.metrics ? shared : undefined,
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
    addrs: server.addrs,
    get draining() {
      return server.draining;
    },
    stats: server.stats,
    /** Its counters, as a worker sends them to the main thread. */
    snapshot: () => ({
      stats: server.stats,
      histogram: {
        counts: [...histogram.counts],
        sumMs: histogram.sumMs,
        count: histogram.count,
      },
      suppressed: log.suppressed,
    }),
    render: (dropped: number) =>
      renderMetrics(server.stats, histogram, {
        draining: server.draining,
        log: { suppressed: log.suppressed, dropped },
        ...(server.tarpit && trapped
          ? { tarpit: { stats: server.tarpit, trapped } }
          : {}),
      }),
    // Swapped in the same way on the main thread and in every worker.
    swap: async (prepared: Prepared) => {
      try {
        server.reload(await complete(command, prepared));
      } catch (error) {
        return explainError(error).message;
      }
    },
    shutdown: () => server.shutdown(),
    finished: server.finished.then(
      () => undefined,
      (error) => explainError(error).message,
    ),
    /** Emits the pending summaries and stops their timers. */
    stopped: () => log.close(),
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
    if (code !== "EMFILE" || Atomics.compareExchange(said, 1, 0, 1) !== 0) {
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
