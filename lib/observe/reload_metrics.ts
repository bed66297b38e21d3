import { labelledCounter, metric } from "./prometheus.ts";

/** What {@linkcode renderReloadMetrics} reports. */
export interface ReloadMetrics {
  /** Reloads swapped in. */
  success: number;
  /** Reloads refused (the old configuration stayed). */
  failure: number;
  /** When the running configuration was loaded, ms since the epoch. */
  lastSuccess: number;
}

/**
 * The reload metrics, in the Prometheus text format:
 * `greeter_config_reloads_total{result}` and
 * `greeter_config_last_reload_success_timestamp_seconds` (the start counts
 * as the first load, as Prometheus' own metric does).
 */
export function renderReloadMetrics(reloads: ReloadMetrics): string {
  return labelledCounter(
    "greeter_config_reloads_total",
    "Configuration reloads (SIGHUP), by result.",
    "result",
    { success: reloads.success, failure: reloads.failure },
    ["success", "failure"],
  ) +
    metric(
      "greeter_config_last_reload_success_timestamp_seconds",
      "gauge",
      "When the running configuration was loaded.",
      Math.floor(reloads.lastSuccess / 1000),
    );
}
