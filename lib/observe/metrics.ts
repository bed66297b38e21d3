import { renderBuildInfo } from "./process_metrics.ts";
import { expose } from "./prometheus.ts";
import { REFUSE_REASONS } from "../server/admission.ts";
import { CONNECTION_OUTCOMES, type ServerStats } from "../server/stats.ts";
import { PROBE_KINDS } from "../net/probe.ts";
import type { TarpitStats } from "../server/tarpit.ts";

/** The upper bounds of the connection duration buckets, in seconds. */
export const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

/**
 * The upper bounds of the tarpit's held-time buckets, in seconds: a minute
 * to a day, where scanners' patience lies.
 */
// deno-fmt-ignore
export const TRAPPED_BUCKETS = [1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400];

/** A histogram of connection durations; see {@linkcode createDurationHistogram}. */
export type DurationHistogram = ReturnType<typeof createDurationHistogram>;

/**
 * Creates a histogram of connection durations: a fixed array of counts and
 * a linear scan per observation, cheap enough for every connection.
 */
export function createDurationHistogram(bounds = DURATION_BUCKETS) {
  const limits = bounds.map((seconds) => seconds * 1000);
  const histogram = {
    bounds,
    counts: new Array<number>(bounds.length + 1).fill(0),
    sumMs: 0,
    count: 0,
    observe(ms: number) {
      let i = 0;
      while (i < limits.length && ms > limits[i]) i++;
      histogram.counts[i]++;
      histogram.sumMs += ms;
      histogram.count++;
    },
  };
  return histogram;
}

/** Options for {@linkcode renderMetrics}. */
export interface RenderMetricsOptions {
  /** True while the server is shutting down. */
  draining?: boolean;
  /** Log lines left out by the flood limiter and dropped by a slow sink. */
  log?: { suppressed: number; dropped: number };
  /** In tarpit mode: its counters, and how long held clients were held. */
  tarpit?: { stats: Readonly<TarpitStats>; trapped: DurationHistogram };
}

/**
 * Renders the server's counters in the Prometheus text exposition format
 * (version 0.0.4), every metric prefixed `greeter_`.
 */
export function renderMetrics(
  stats: Readonly<ServerStats>,
  histogram: DurationHistogram,
  options: RenderMetricsOptions = {},
): string {
  const started = stats.startTime / 1000;
  const outcomes = ["outcome", stats.outcomes, CONNECTION_OUTCOMES] as const;
  const refused = ["reason", stats.refused, REFUSE_REASONS] as const;
  const acceptErrors = ["code", stats.acceptErrors] as const;
  const probes = ["kind", stats.probes, PROBE_KINDS] as const;
  const draining = options.draining ? 1 : 0;
  // The one greeter_build_info family, labelled version and deno.
  return renderBuildInfo() + expose`
  gauge greeter_start_time_seconds ${started} When the server started, in seconds since the Unix epoch.
  counter greeter_connections_accepted_total ${stats.accepted} Connections accepted.
  counter greeter_connections_total ${outcomes} Connections that have ended, by outcome.
  counter greeter_connections_refused_total ${refused} Connections refused, by reason.
  counter greeter_accept_errors_total ${acceptErrors} Failed accepts, by error code; the server backed off and went on.
  counter greeter_accept_paused_total ${stats.pausedAtLimit} Times accepting paused because the connection cap was reached.
  gauge greeter_connections_active ${stats.active} Connections open now.
  counter greeter_bytes_written_total ${stats.bytesWritten} Bytes written to clients.
  counter greeter_early_talkers_total ${stats.earlyTalkers} Clients that sent something during the greeting pause (--greet-pause).
  counter greeter_client_probes_total ${probes} Sensed clients that sent something, by what their first bytes looked like.
  histogram greeter_connection_duration_seconds ${histogram} How long connections lived, in seconds.
  gauge greeter_tarpit_clients ${options.tarpit?.stats.clients} Clients the tarpit holds now.
  counter greeter_tarpit_bytes_sent_total ${options.tarpit?.stats.bytesSent} Bytes the tarpit sent to held clients.
  histogram greeter_tarpit_trapped_seconds ${options.tarpit?.trapped} How long the tarpit held each client that has left, in seconds.
  gauge greeter_draining ${draining} 1 while the server is shutting down, 0 while it accepts.
  counter greeter_log_lines_suppressed_total ${options.log?.suppressed} Connection log lines left out under a flood, and summarized.
  counter greeter_log_lines_dropped_total ${options.log?.dropped} Log lines dropped because the output was too slow.
`;
}
/**
 * What {@linkcode renderReloadMetrics} reports: reloads swapped in
 * (`success`) and refused (`failure`, the old configuration stayed), and
 * when the running configuration was loaded (`lastSuccess`, ms since the
 * epoch).
 */
export type ReloadMetrics = Record<
  "success" | "failure" | "lastSuccess",
  number
>;

/**
 * The reload metrics, in the Prometheus text format:
 * `greeter_config_reloads_total{result}` and
 * `greeter_config_last_reload_success_timestamp_seconds` (the start counts
 * as the first load, as Prometheus' own metric does).
 */
export function renderReloadMetrics(reloads: ReloadMetrics): string {
  const last = Math.floor(reloads.lastSuccess / 1000);
  const results = ["result", reloads, ["success", "failure"]] as const;
  return expose`
  counter greeter_config_reloads_total ${results} Configuration reloads (SIGHUP), by result.
  gauge greeter_config_last_reload_success_timestamp_seconds ${last} When the running configuration was loaded.
`;
}
