import { assert, assertEquals } from "@std/assert";
import { sourceKey } from "../lib/net/ip.ts";
import {
  formatJsonConnectionLine,
  formatLogLine,
} from "../lib/observe/log_format.ts";
import {
  createLogThrottle,
  type LogThrottle,
} from "../lib/observe/log_throttle.ts";
import { serveGreeting } from "../lib/server/serve_greeting.ts";
import { pool, readAll, waitUntil } from "./_helpers.ts";
import { liveTimers } from "../lib/server/wait.ts";

/** What the connection log does: makes and keeps a line only if allowed. */
function offer(
  throttle: LogThrottle,
  lines: string[],
  source: string,
  makeLine: () => string,
): boolean {
  const allowed = throttle.allow(source);
  if (allowed) lines.push(makeLine());
  return allowed;
}

/** Sums the counts of text summaries, by source. */
function summarized(lines: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of lines) {
    const match = /^(\d+) more connections? from (.+) suppressed$/.exec(line);
    if (match) {
      counts.set(match[2], (counts.get(match[2]) ?? 0) + Number(match[1]));
    }
  }
  return counts;
}

Deno.test("createLogThrottle() logs up to the per-source rate, then counts", () => {
  const lines: string[] = [];
  const throttle = createLogThrottle({
    emit: (line) => lines.push(line),
    perSourcePerSecond: 3,
  });
  let made = 0;
  for (let i = 0; i < 10; i++) {
    offer(throttle, lines, "192.0.2.1", () => `a${++made}`);
  }
  assert(
    offer(throttle, lines, "192.0.2.2", () => "b1"),
    "another source logs",
  );
  // Lines that are not logged are never formatted.
  assertEquals(made, 3);
  assertEquals(lines, ["a1", "a2", "a3", "b1"]);
  assertEquals([throttle.logged, throttle.suppressed], [4, 7]);
  throttle.close();
  assertEquals(lines.slice(4), [
    "7 more connections from 192.0.2.1 suppressed",
  ]);
  // Nothing is pending any more: flushing again emits nothing.
  throttle.flush();
  assertEquals(lines.length, 5);
});

Deno.test("createLogThrottle() limits all sources together", () => {
  const lines: string[] = [];
  const throttle = createLogThrottle({
    emit: (line) => lines.push(line),
    perSourcePerSecond: 100,
    perSecond: 5,
  });
  for (let i = 0; i < 8; i++) {
    offer(throttle, lines, `10.0.0.${i}`, () => `${i}`);
  }
  assertEquals(lines, ["0", "1", "2", "3", "4"]);
  throttle.close();
  assertEquals(lines.slice(5).sort(), [
    "1 more connection from 10.0.0.5 suppressed",
    "1 more connection from 10.0.0.6 suppressed",
    "1 more connection from 10.0.0.7 suppressed",
  ]);
});

Deno.test("createLogThrottle() summarizes once per interval with one timer", async () => {
  const lines: string[] = [];
  const throttle = createLogThrottle({
    emit: (line) => lines.push(line),
    perSourcePerSecond: 1,
    interval: 50,
  });
  const before = liveTimers();
  for (let i = 0; i < 4; i++) offer(throttle, lines, "192.0.2.1", () => "line");
  assertEquals(lines, ["line"]);
  assertEquals(liveTimers(), before + 1, "one timer for three suppressed");
  await waitUntil(() => lines.length === 2, 2_000, "the summary");
  assertEquals(lines[1], "3 more connections from 192.0.2.1 suppressed");
  // The timer stopped with nothing to report. A new suppression starts it
  // again.
  assertEquals(liveTimers(), before);
  offer(throttle, lines, "192.0.2.1", () => "line");
  assertEquals(liveTimers(), before + 1);
  await waitUntil(() => lines.length === 3, 2_000, "the second summary");
  assertEquals(lines[2], "1 more connection from 192.0.2.1 suppressed");
  throttle.close();
  assertEquals(liveTimers(), before);
});

Deno.test("createLogThrottle() bounds memory under a flood from many sources and counts exactly", () => {
  const lines: string[] = [];
  const throttle = createLogThrottle({
    emit: (line) => lines.push(line),
    perSourcePerSecond: 2,
    maxSources: 100,
    maxSummaries: 5,
  });
  // Ten noisy sources, 30 connections each: 2 logged, 28 counted each.
  for (let a = 0; a < 10; a++) {
    for (let k = 0; k < 30; k++) offer(throttle, lines, `a${a}`, () => "line");
  }
  // Then 10,000 sources once each: 90 fill the map and are logged; the
  // other 9,910 are limited and counted as one source: 2 logged.
  for (let i = 0; i < 10_000; i++) {
    offer(throttle, lines, `10.0.${i >> 8}.${i & 255}`, () => "line");
  }
  assertEquals(throttle.sources, 100);
  throttle.close();
  assertEquals(lines.filter((line) => line === "line").length, 112);
  // Five summaries by source, the other five folded into one line.
  assertEquals(
    [...summarized(lines)],
    [
      ["a0", 28],
      ["a1", 28],
      ["a2", 28],
      ["a3", 28],
      ["a4", 28],
      ["other sources", 5 * 28 + 9_908],
    ],
  );
  assertEquals(lines.length, 118);
  assertEquals([throttle.logged, throttle.suppressed], [112, 10_300 - 112]);
});

Deno.test("createLogThrottle() accounts for every connection of a real server", async () => {
  const lines: string[] = [];
  const throttle = createLogThrottle({
    emit: (line) => lines.push(line),
    perSourcePerSecond: 10,
    formatSuppressed: (source, count) =>
      formatLogLine({ event: "suppressed", source, count }, "json"),
  });
  const connections = 60;
  const server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    onClose: (record) =>
      offer(
        throttle,
        lines,
        sourceKey((record.remoteAddr as Deno.NetAddr).hostname),
        () => formatJsonConnectionLine(record),
      ),
  });
  await pool(connections, 8, () => readAll(server.addr.port));
  await waitUntil(
    () => throttle.logged + throttle.suppressed === connections,
    5_000,
    "every connection to end",
  );
  await server.shutdown();
  throttle.close();
  const events = lines.map((line) => JSON.parse(line));
  const logged = events.filter((event) =>
    event["event.action"] === "connection"
  );
  const suppressed = events.filter((event) =>
    event["event.action"] === "suppressed"
  );
  // The burst takes well under a second on loopback; if it straddles a
  // second, more lines pass, but the sum stays exact.
  assert(logged.length >= 10 && logged.length < connections);
  assertEquals(
    logged.length +
      suppressed.reduce(
        (sum: number, event) => sum + event["greeter.suppressed.count"],
        0,
      ),
    connections,
  );
  assertEquals(
    suppressed.map((event) => event["greeter.suppressed.source"]),
    ["127.0.0.1"],
  );
});

Deno.test("createLogThrottle() forgets quiet sources once the map is full in a later second", () => {
  const lines: string[] = [];
  let time = 10_000;
  const throttle = createLogThrottle({
    emit: (line) => lines.push(line),
    perSourcePerSecond: 1,
    maxSources: 2,
    now: () => time,
  });
  offer(throttle, lines, "a", () => "a");
  offer(throttle, lines, "b", () => "b");
  // Full in this second: c is counted with the other sources.
  offer(throttle, lines, "c", () => "c");
  offer(throttle, lines, "c", () => "c");
  assertEquals(throttle.sources, 2);
  // 999 ms on, the same second: the map is still full, d counts as other.
  time += 999;
  offer(throttle, lines, "d", () => "d!");
  assertEquals(throttle.sources, 2);
  // A new second: a and b have nothing pending and are forgotten.
  time += 1;
  offer(throttle, lines, "d", () => "d");
  offer(throttle, lines, "d", () => "d");
  assertEquals(throttle.sources, 1);
  throttle.close();
  assertEquals(lines, [
    "a",
    "b",
    "c",
    "d",
    "1 more connection from d suppressed",
    "2 more connections from other sources suppressed",
  ]);
});
