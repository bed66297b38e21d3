import { createConnectionLog } from "../observe/connection_log.ts";
import {
  createDurationHistogram,
  renderMetrics,
  TRAPPED_BUCKETS,
} from "../observe/metrics.ts";
import { serveGreetingWith } from "../server/serve_greeting.ts";
import type { ServeCommand } from "./commands/serve.ts";
import { complete, type Prepared } from "./setup.ts";
import { explainError, explainListen } from "./explain.ts";
import { warn } from "./warn.ts";

/**
 * The process's shared cells, the main thread's, which it also hands to
 * every worker: slot 0 is the health probe's port (see `selfProbe`), slot 1
 * whether the unfitted cap was said (warnings said once per process, not
 * once per worker).
 */
export const SHARED: Int32Array = new Int32Array(new SharedArrayBuffer(8));

/**
 * A running server, one thread's or the workers', as serving drives it and
 * the metrics, the health check and a reload read it.
 */
export type Serving = Omit<Run, "snapshot">;

/** One thread's server run. */
export type Run = Awaited<ReturnType<typeof runServer>>;

/**
 * Starts one server run of a prepared configuration: the same for the main
 * thread and for every worker of `--workers`. Only what surrounds it
 * (stdout, or messages to the main thread) differs. `emit` receives each
 * log line (the main thread's writer, or a worker's batcher); a worker
 * passes the main thread's {@linkcode SHARED} cells (its options, from the
 * pool, listen with `reusePort` on the ports the first worker chose).
 *
 * @throws {ExitError} If it cannot listen; nothing is left running.
 */
export async function runServer(
  command: ServeCommand,
  prepared: Prepared,
  emit: (line: string) => void,
  shared: Int32Array = SHARED,
) {
  const options = await complete(command, prepared);
  const log = createConnectionLog({
    ...command.log,
    emit,
    sensed: options.greetPause !== undefined || options.capture !== undefined,
    tarpit: options.tarpit !== undefined,
  });
  const histogram = createDurationHistogram();
  const trapped = options.tarpit && createDurationHistogram(TRAPPED_BUCKETS);
  let server: ReturnType<typeof serveGreetingWith>;
  try {
    server = serveGreetingWith({
      ...options,
      onConnection: log.onConnection,
      // At the first EMFILE, says why the cap did not prevent it: the
      // open-file limit could not be read to fit it (once per process).
      onAcceptError: command.fdLimitUnread
        ? (error, kind, code) => {
          log.onAcceptError(error, kind, code);
          if (code === "EMFILE" && !Atomics.compareExchange(shared, 1, 0, 1)) {
            const message = "out of open files (EMFILE) below " +
              `--max-connections ${options.maxConnections}: greeter could ` +
              "not read the open-file limit to fit the cap to it (Deno reads " +
              "/proc only with --allow-all). Raise the limit (ulimit -n, or " +
              "LimitNOFILE= in the systemd unit), lower --max-connections, " +
              "or give --allow-all";
            warn(message, command.log.format);
          }
        }
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
    return explainListen(error, command.spelled.host, command.spelled.port);
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
        tarpit: server.tarpit && trapped && { stats: server.tarpit, trapped },
      }),
    // Swapped in the same way on the main thread and in every worker.
    swap: (prepared: Prepared) =>
      complete(command, prepared)
        .then((options) => void server.reload(options))
        .catch((error) => explainError(error).message),
    /**
     * Brings the counters up to date: one thread's always are (the workers
     * report theirs periodically).
     */
    refresh: (): Promise<unknown> => Promise.resolve(),
    /** Starts draining; its outcome is reported through `finished`. */
    shutdown: (): void => void server.shutdown().catch(() => {}),
    // Once stopped, the pending summaries go out and their timers stop.
    finished: server.finished.then(() => undefined)
      .catch((error) => explainError(error).message)
      .finally(() => log.close()),
  };
}
