import { formatAddress } from "../net/address.ts";
import type { ServerLog } from "../observe/connection_log.ts";
import type { MetricsServer } from "../observe/metrics.ts";
import {
  type InspectorOutcome,
  STATS_SIGNAL_SUPPORTED,
  watchStatsSignal,
} from "../observe/stats_summary.ts";
import type { ServerStats } from "../server/stats.ts";
import { createSystemdNotifier } from "./systemd_notify.ts";

/** Reloads so far, for the metrics. */
export interface ReloadCounters {
  /** Reloads whose configuration was swapped in. */
  success: number;
  /** Reloads refused: the old configuration stayed. */
  failure: number;
  /** When the last good configuration was loaded (start or reload), ms since the epoch. */
  lastSuccess: number;
}

/** Creates the counters, the start counting as the first good load. */
export function createReloadCounters(): ReloadCounters {
  return { success: 0, failure: 0, lastSuccess: Date.now() };
}

/** A running server, one thread or several, as the CLI drives it. */
export interface Service {
  /** The lifecycle lines: start, stats, reload, stop. */
  log: ServerLog;
  /** The metrics endpoint, if any; stopped after the server. */
  metrics: MetricsServer | undefined;
  /** Every address served. */
  addrs: Deno.Addr[];
  /** True when some listener serves TLS (said in the start lines). */
  tls: boolean;
  /** Counted by every reload. */
  reloads: ReloadCounters;
  /** The current counters. */
  stats(): Readonly<ServerStats>;
  /** Brings the counters up to date (workers report them periodically). */
  refresh?(): Promise<void>;
  /**
   * Re-reads the configuration, checks it in full and swaps it in at once;
   * resolves to undefined, or to one line saying why the old one stays.
   */
  reload(): Promise<string | undefined>;
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
 * Where greeter could not close the debugger a SIGUSR1 opens, it says so at
 * start-up, with the flag that lets it.
 */
function warnOfInspectorRisk() {
  if (!STATS_SIGNAL_SUPPORTED) return;
  if (Deno.permissions.querySync({ name: "sys" }).state === "granted") return;
  console.error(
    "greeter: warning: a SIGUSR1 makes Deno open a debugger on " +
      "127.0.0.1:9229 that any local user can attach to; run deno with " +
      "--allow-sys so that greeter closes it at once (the binaries, deno " +
      "task start and the systemd unit have it)",
  );
}

function statusLine(addrs: Deno.Addr[]): string {
  return `Greeting on ${addrs.map(formatAddress).join(", ")}`;
}

/**
 * Logs the start, serves until SIGINT/SIGTERM (draining) or a failure,
 * reloads on SIGHUP, prints stats on SIGUSR2, tells systemd (when
 * `NOTIFY_SOCKET` is set) that it is ready, reloading or stopping, then
 * logs the stop and flushes the log.
 *
 * @returns The exit code: 0, or 1 after a failure.
 */
export async function runUntilStopped(service: Service): Promise<number> {
  const { log, metrics, reloads } = service;
  const notifier = createSystemdNotifier();
  let stopping = false;
  // Sent before the process exits: systemd must hear STOPPING=1.
  let stoppingSent: Promise<unknown> | undefined;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    log.stopping();
    stoppingSent = notifier.stopping("Draining");
    Promise.resolve(service.shutdown()).catch(() => {});
  };
  // One reload at a time; a SIGHUP during one asks for one more after it.
  let reloading: Promise<void> | undefined;
  let again = false;
  const reload = () => {
    if (stopping) return;
    if (reloading) {
      again = true;
      return;
    }
    reloading = (async () => {
      do {
        again = false;
        await notifier.reloading("Reloading");
        let error: string | undefined;
        try {
          error = await service.reload();
        } catch (caught) {
          error = caught instanceof Error ? caught.message : String(caught);
        }
        if (error === undefined) {
          reloads.success++;
          reloads.lastSuccess = Date.now();
        } else {
          reloads.failure++;
        }
        log.reloaded(error);
        await notifier.ready(
          error === undefined
            ? statusLine(service.addrs)
            : `${statusLine(service.addrs)}; last reload failed`,
        );
      } while (again && !stopping);
    })().finally(() => reloading = undefined);
  };
  for (const signal of SHUTDOWN_SIGNALS) Deno.addSignalListener(signal, stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGHUP", reload);
  const unwatchStats = watchStatsSignal(
    async () => {
      await service.refresh?.();
      log.stats(service.stats());
    },
    warnOfOpenInspector,
  );
  log.started(service.addrs, service.tls, metrics?.addr);
  warnOfInspectorRisk();
  service.started?.();
  notifier.ready(statusLine(service.addrs));
  let failure: string | undefined;
  try {
    failure = await service.finished;
  } finally {
    for (const signal of SHUTDOWN_SIGNALS) {
      Deno.removeSignalListener(signal, stop);
    }
    if (Deno.build.os !== "windows") {
      Deno.removeSignalListener("SIGHUP", reload);
    }
    unwatchStats();
    await reloading;
    await metrics?.shutdown();
  }
  if (!stopping) stoppingSent = notifier.stopping(failure ?? "Stopped");
  await stoppingSent;
  service.stopped?.();
  await log.stopped(service.stats(), failure);
  return failure === undefined ? 0 : 1;
}
