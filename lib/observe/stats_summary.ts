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

/** True where Deno can listen for SIGUSR1 and SIGUSR2 (not on Windows). */
export const STATS_SIGNAL_SUPPORTED: boolean = Deno.build.os !== "windows";

/** Waits `ms`, or less if `signal` aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** What became of the debugger port Deno opens on SIGUSR1. */
export type InspectorOutcome = "none" | "closed" | "kept" | "open";

/**
 * Since Deno 2.9.2 a SIGUSR1 also starts the V8 inspector on
 * 127.0.0.1:9229, which any local user could then connect to and run code
 * in the server. Close it again at once: "closed"; "kept" if greeter was
 * started with an --inspect flag on purpose; "open" if it cannot be closed
 * (closing needs --allow-sys=inspector); "none" if nothing was opened.
 */
async function closeSignalledInspector(
  startedOpen: Promise<boolean>,
  stopped: AbortSignal,
): Promise<InspectorOutcome> {
  try {
    const inspector = await import("node:inspector");
    if (await startedOpen) return "kept";
    // Deno starts the server a moment after the signal: wait up to 1 s.
    for (let waited = 0; inspector.url() === undefined; waited += 20) {
      if (waited >= 1_000 || stopped.aborted) return "none";
      await sleep(20, stopped);
    }
    inspector.close();
    return "closed";
  } catch {
    return "open";
  }
}

/**
 * Calls `callback` on every SIGUSR2, where the platform has it (not on
 * Windows, where this does nothing). SIGUSR1 is no longer a stats signal:
 * Deno opens its debugger on it, so greeter only closes that again and tells
 * `onInspector` what happened. Returns the function that stops both.
 */
export function watchStatsSignal(
  callback: () => unknown,
  onInspector: (outcome: InspectorOutcome) => void = () => {},
): () => void {
  if (!STATS_SIGNAL_SUPPORTED) return () => {};
  const startedOpen = import("node:inspector")
    .then((inspector) => inspector.url() !== undefined)
    .catch(() => false);
  const report = () => {
    try {
      // The callback may be async: a rejection must not crash the server.
      Promise.resolve(callback()).catch(() => {});
    } catch {
      // A failing observer must not stop the server.
    }
  };
  const stopped = new AbortController();
  const listener = () => {
    closeSignalledInspector(startedOpen, stopped.signal).then((outcome) => {
      try {
        onInspector(outcome);
      } catch {
        // A failing observer must not stop the server.
      }
    });
  };
  Deno.addSignalListener("SIGUSR2", report);
  Deno.addSignalListener("SIGUSR1", listener);
  let watching = true;
  return () => {
    if (!watching) return;
    watching = false;
    Deno.removeSignalListener("SIGUSR1", listener);
    Deno.removeSignalListener("SIGUSR2", report);
    stopped.abort();
  };
}
