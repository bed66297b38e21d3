import type { ServerLog } from "../observe/connection_log.ts";
import type { MetricsServer } from "../observe/metrics.ts";
import {
  type InspectorOutcome,
  watchStatsSignal,
} from "../observe/stats_summary.ts";
import type { ServerStats } from "../server/stats.ts";

/** A running server, one thread or several, as the CLI drives it. */
export interface Service {
  /** The lifecycle lines: start, stats, stop. */
  log: ServerLog;
  /** The metrics endpoint, if any; stopped after the server. */
  metrics: MetricsServer | undefined;
  /** Every address served. */
  addrs: Deno.Addr[];
  /** True when some listener serves TLS (said in the start lines). */
  tls: boolean;
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
  /** Called once the server has stopped, before the stop line. */
  stopped?(): void;
}

const SHUTDOWN_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

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

/**
 * Logs the start, serves until SIGINT/SIGTERM (draining) or a failure,
 * prints stats on SIGUSR1/SIGUSR2, then logs the stop and flushes the log.
 *
 * @returns The exit code: 0, or 1 after a failure.
 */
export async function runUntilStopped(service: Service): Promise<number> {
  const { log, metrics } = service;
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
  log.started(service.addrs, service.tls, metrics?.addr);
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
  service.stopped?.();
  await log.stopped(service.stats(), failure);
  return failure === undefined ? 0 : 1;
}
