import { CONNECTION_OUTCOMES, type ServerStats } from "../server/stats.ts";

/**
 * Formats a duration as `45s`, `2m03s`, `1h02m03s` or `2d01h02m03s`.
 */
export function formatUptime(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const seconds = total % 60;
  const minutes = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600) % 24;
  const days = Math.floor(total / 86400);
  const two = (n: number) => String(n).padStart(2, "0");
  if (days > 0) return `${days}d${two(hours)}h${two(minutes)}m${two(seconds)}s`;
  if (hours > 0) return `${hours}h${two(minutes)}m${two(seconds)}s`;
  if (minutes > 0) return `${minutes}m${two(seconds)}s`;
  return `${seconds}s`;
}

/**
 * Formats the counters as one line: `uptime 1h02m03s; accepted 10;
 * greeted 8, refused 1, timed_out 0, reset 1, aborted 0, error 0; active 0`.
 */
export function formatStatsSummary(
  stats: Readonly<ServerStats>,
  now: number = Date.now(),
): string {
  const outcomes = CONNECTION_OUTCOMES.map((outcome) =>
    `${outcome} ${stats.outcomes[outcome]}`
  ).join(", ");
  return `uptime ${
    formatUptime(now - stats.startTime)
  }; accepted ${stats.accepted}; ${outcomes}; active ${stats.active}`;
}
