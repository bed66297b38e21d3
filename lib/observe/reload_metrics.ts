import { exposition, families } from "./prometheus.ts";

const FAMILIES = families(`
  counter greeter_config_reloads_total Configuration reloads (SIGHUP), by result.
  gauge greeter_config_last_reload_success_timestamp_seconds When the running configuration was loaded.
`);
const RESULTS = ["success", "failure"];

/** What {@linkcode renderReloadMetrics} reports. */
export type ReloadMetrics = {
  /** Reloads swapped in. */
  success: number;
  /** Reloads refused (the old configuration stayed). */
  failure: number;
  /** When the running configuration was loaded, ms since the epoch. */
  lastSuccess: number;
};

/**
 * The reload metrics, in the Prometheus text format:
 * `greeter_config_reloads_total{result}` and
 * `greeter_config_last_reload_success_timestamp_seconds` (the start counts
 * as the first load, as Prometheus' own metric does).
 */
export function renderReloadMetrics(reloads: ReloadMetrics): string {
  const last = Math.floor(reloads.lastSuccess / 1000);
  return exposition(FAMILIES, {
    greeter_config_reloads_total: ["result", reloads, RESULTS],
    greeter_config_last_reload_success_timestamp_seconds: last,
  });
}
