import { assertEquals } from "@std/assert";
import {
  formatStatsSummary,
  formatUptime,
  STATS_SIGNAL_SUPPORTED,
  watchStatsSignal,
} from "../lib/observe/stats_summary.ts";
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

/**
 * Waits for `promise`, failing after `ms`. The timer also keeps the event
 * loop alive: signal listeners alone do not.
 */
async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error("No signal")), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "watchStatsSignal() calls back on a real SIGUSR2 until unregistered" +
    (STATS_SIGNAL_SUPPORTED ? "" : " (skipped: Windows has no SIGUSR2)"),
  ignore: !STATS_SIGNAL_SUPPORTED,
  async fn() {
    let calls = 0;
    let signalled!: () => void;
    const received = new Promise<void>((resolve) => signalled = resolve);
    const stop = watchStatsSignal(() => {
      calls++;
      signalled();
    });
    Deno.kill(Deno.pid, "SIGUSR2");
    await within(received, 5_000);
    assertEquals(calls, 1);
    stop();
    stop(); // Safe to call twice.
    // Once unregistered, a signal reaches only other listeners.
    let marked!: () => void;
    const marker = new Promise<void>((resolve) => marked = resolve);
    const other = () => marked();
    Deno.addSignalListener("SIGUSR2", other);
    try {
      Deno.kill(Deno.pid, "SIGUSR2");
      await within(marker, 5_000);
    } finally {
      Deno.removeSignalListener("SIGUSR2", other);
    }
    assertEquals(calls, 1);
  },
});
