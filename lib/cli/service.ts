import { formatAddress } from "../net/address.ts";
import type { ServerLog } from "../observe/connection_log.ts";
import type { MetricsServer } from "../observe/metrics_server.ts";
import type { ServerStats } from "../server/stats.ts";
import { onSignal } from "./signals.ts";
import { sayHeldWarnings, warn } from "./warn.ts";
import type { LogFormat } from "../observe/log_format.ts";
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
  /** The log's format, which warnings follow too. */
  format?: LogFormat;
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

const POSIX = Deno.build.os !== "windows";

let toldOfSigusr1 = false;

/**
 * SIGUSR1 does nothing in greeter: Deno would open its debugger on it,
 * which the debugger guard prevents. Said once, so that an operator who
 * sent it by habit learns which signal does what.
 */
function tellOfSigusr1(format: LogFormat) {
  if (toldOfSigusr1) return;
  toldOfSigusr1 = true;
  warn(
    "SIGUSR1 does nothing (Deno's debugger stays shut); send SIGUSR2 for " +
      "stats, SIGHUP to reload",
    format,
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
  sayHeldWarnings();
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
  let ended = false;
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
        // A reload that ends after the server did is not waited for (a read
        // may hang) and says nothing after the stop line.
        if (ended) return;
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
  const removers = SHUTDOWN_SIGNALS.map((signal) => onSignal(signal, stop));
  if (POSIX) {
    removers.push(
      onSignal("SIGHUP", reload),
      onSignal("SIGUSR1", () => tellOfSigusr1(service.format ?? "text")),
      onSignal("SIGUSR2", () => {
        // Stats must never stop the server, whatever fails in them.
        (async () => {
          await service.refresh?.();
          log.stats(service.stats());
        })().catch(() => {});
      }),
    );
  }
  log.started(service.addrs, service.tls, metrics?.addr);
  service.started?.();
  notifier.ready(statusLine(service.addrs)).then((told) => {
    // Never silence: a Type=notify unit would wait for READY=1 until its
    // timeout.
    if (!told && notifier.enabled) {
      warn(
        `cannot tell systemd that greeter is ready (${
          notifier.lastError?.message ?? "unknown error"
        }): run deno with --allow-write for $NOTIFY_SOCKET and ` +
          "--unstable-net, or use the binary",
        service.format ?? "text",
      );
    }
  });
  let failure: string | undefined;
  try {
    failure = await service.finished;
  } finally {
    for (const remove of removers) remove();
    ended = true;
    await metrics?.shutdown();
  }
  if (!stopping) stoppingSent = notifier.stopping(failure ?? "Stopped");
  await stoppingSent;
  service.stopped?.();
  await log.stopped(service.stats(), failure);
  return failure === undefined ? 0 : 1;
}
