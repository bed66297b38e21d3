import { assertEquals } from "@std/assert";
import {
  formatStatsSummary,
  formatUptime,
} from "../lib/observe/connection_log.ts";
import { createServerStats } from "../lib/server/stats.ts";

Deno.test("formatUptime() writes seconds, minutes, hours and days", () => {
  assertEquals(
    [0, 999, 45_000, 123_000, 3_723_000, 90_061_000, -5].map(formatUptime),
    ["0s", "0s", "45s", "2m03s", "1h02m03s", "1d01h01m01s", "0s"],
  );
});

Deno.test("formatStatsSummary() writes one line with every outcome", () => {
  const stats = createServerStats();
  stats.startTime = 1_000_000;
  stats.accepted = 10;
  stats.active = 0;
  stats.outcomes.greeted = 8;
  stats.outcomes.refused = 1;
  stats.outcomes.reset = 1;
  assertEquals(
    formatStatsSummary(stats, 1_000_000 + 3_723_000),
    "uptime 1h02m03s; accepted 10; greeted 8, refused 1, timed_out 0, " +
      "reset 1, aborted 0, error 0; active 0",
  );
});
