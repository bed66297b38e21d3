import { expose } from "./prometheus.ts";

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
