import { renderBuildInfo } from "./process_metrics.ts";
import { family, labelledCounter, metric } from "./prometheus.ts";
import { REFUSE_REASONS } from "../server/admission.ts";
import { CONNECTION_OUTCOMES, type ServerStats } from "../server/stats.ts";
import { PROBE_KINDS } from "../net/probe.ts";
import type { TarpitStats } from "../server/tarpit.ts";

// The HTTP endpoint lives in metrics_server.ts; these names stay here too.
export {
  METRICS_CONTENT_TYPE,
  type MetricsServer,
  serveMetrics,
  type ServeMetricsOptions,
} from "./metrics_server.ts";

/** The upper bounds of the connection duration buckets, in seconds. */
export const DURATION_BUCKETS: readonly number[] = [
  0.001,
  0.005,
  0.01,
  0.05,
  0.1,
  0.5,
  1,
  5,
  10,
];

/**
 * The upper bounds of the tarpit's held-time buckets, in seconds: a minute
 * to a day, where scanners' patience lies.
 */
export const TRAPPED_BUCKETS: readonly number[] = [
  1,
  10,
  60,
  300,
  900,
  1800,
  3600,
  7200,
  14400,
  43200,
  86400,
];

/** A histogram of connection durations; see {@linkcode createDurationHistogram}. */
export interface DurationHistogram {
  /** Counts one connection that lived `ms` milliseconds. */
  observe(ms: number): void;
  /** The buckets' upper bounds, in seconds (+Inf is implied). */
  readonly bounds: readonly number[];
  /** Observations per bucket, not cumulative; the last is above every bound. */
  readonly counts: readonly number[];
  /** The sum of the observations, in milliseconds. */
  readonly sumMs: number;
  /** How many observations there were. */
  readonly count: number;
}

/**
 * Creates a histogram of connection durations: a fixed array of counts and
 * a linear scan per observation, cheap enough for every connection.
 */
export function createDurationHistogram(
  bounds: readonly number[] = DURATION_BUCKETS,
): DurationHistogram {
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
  const counter = (name: string, help: string, value: number) =>
    metric(name, "counter", help, value);
  const gauge = (name: string, help: string, value: number) =>
    metric(name, "gauge", help, value);
  const seconds = (name: string, help: string, of: DurationHistogram) => {
    let text = family(name, "histogram", help);
    let cumulative = 0;
    of.bounds.forEach((bound, i) => {
      cumulative += of.counts[i];
      text += `${name}_bucket{le="${bound}"} ${cumulative}\n`;
    });
    return text + `${name}_bucket{le="+Inf"} ${of.count}\n` +
      `${name}_sum ${of.sumMs / 1000}\n${name}_count ${of.count}\n`;
  };

  const { tarpit, log } = options;
  // The one greeter_build_info family, labelled version and deno.
  return renderBuildInfo() +
    gauge(
      "greeter_start_time_seconds",
      "When the server started, in seconds since the Unix epoch.",
      stats.startTime / 1000,
    ) +
    counter(
      "greeter_connections_accepted_total",
      "Connections accepted.",
      stats.accepted,
    ) +
    labelledCounter(
      "greeter_connections_total",
      "Connections that have ended, by outcome.",
      "outcome",
      stats.outcomes,
      CONNECTION_OUTCOMES,
    ) +
    labelledCounter(
      "greeter_connections_refused_total",
      "Connections refused, by reason.",
      "reason",
      stats.refused,
      REFUSE_REASONS,
    ) +
    labelledCounter(
      "greeter_accept_errors_total",
      "Failed accepts, by error code; the server backed off and went on.",
      "code",
      stats.acceptErrors,
    ) +
    counter(
      "greeter_accept_paused_total",
      "Times accepting paused because the connection cap was reached.",
      stats.pausedAtLimit,
    ) +
    gauge("greeter_connections_active", "Connections open now.", stats.active) +
    counter(
      "greeter_bytes_written_total",
      "Bytes written to clients.",
      stats.bytesWritten,
    ) +
    counter(
      "greeter_early_talkers_total",
      "Clients that sent something during the greeting pause (--greet-pause).",
      stats.earlyTalkers,
    ) +
    labelledCounter(
      "greeter_client_probes_total",
      "Sensed clients that sent something, by what their first bytes looked like.",
      "kind",
      stats.probes,
      PROBE_KINDS,
    ) +
    seconds(
      "greeter_connection_duration_seconds",
      "How long connections lived, in seconds.",
      histogram,
    ) +
    (tarpit
      ? gauge(
        "greeter_tarpit_clients",
        "Clients the tarpit holds now.",
        tarpit.stats.clients,
      ) +
        counter(
          "greeter_tarpit_bytes_sent_total",
          "Bytes the tarpit sent to held clients.",
          tarpit.stats.bytesSent,
        ) +
        seconds(
          "greeter_tarpit_trapped_seconds",
          "How long the tarpit held each client that has left, in seconds.",
          tarpit.trapped,
        )
      : "") +
    gauge(
      "greeter_draining",
      "1 while the server is shutting down, 0 while it accepts.",
      options.draining ? 1 : 0,
    ) +
    (log
      ? counter(
        "greeter_log_lines_suppressed_total",
        "Connection log lines left out under a flood, and summarized.",
        log.suppressed,
      ) +
        counter(
          "greeter_log_lines_dropped_total",
          "Log lines dropped because the output was too slow.",
          log.dropped,
        )
      : "");
}
