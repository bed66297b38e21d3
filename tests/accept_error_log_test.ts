import { assert, assertEquals, assertMatch } from "@std/assert";
import { createAcceptErrorLog } from "../lib/observe/connection_log.ts";
import { LOG_SCHEMA_VERSION } from "../lib/observe/log_format.ts";
import { waitUntil } from "./_helpers.ts";
import { liveTimers } from "../lib/server/wait.ts";

const INTERVAL = 50;
const CLIENT = "one client's own failure; going on";
const EXHAUSTED =
  "out of descriptors or memory; waiting for a connection to end";

/** An accept error as the runtime throws it. */
function osError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const notConnected = () =>
  osError("ENOTCONN", "Transport endpoint is not connected (os error 107)");

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The count a line stands for: 1 for a first line, N for "N more". */
function countOf(line: string): number {
  const more = /^Accept failed (\d+) more times? with /.exec(line);
  return more ? Number(more[1]) : 1;
}

Deno.test("createAcceptErrorLog() logs 500 errors of one code in 2 lines per interval", async () => {
  const lines: string[] = [];
  const log = createAcceptErrorLog({
    emit: (line) => lines.push(line),
    format: "text",
    interval: INTERVAL,
  });
  try {
    for (let i = 0; i < 500; i++) {
      log.onAcceptError(notConnected(), "client", "ENOTCONN");
    }
    // The first is logged at once, with its message (without the errno).
    assertEquals(lines, [
      `Accept failed with ENOTCONN: Transport endpoint is not connected (${CLIENT})`,
    ]);
    await waitUntil(() => lines.length >= 2, 2_000, "the summary");
    assertEquals(lines.slice(1), [
      `Accept failed 499 more times with ENOTCONN (${CLIENT})`,
    ]);
    // Nothing new happens: nothing more is logged.
    await sleep(3 * INTERVAL);
    assertEquals(lines.length, 2);
  } finally {
    log.close();
  }
  assertEquals(lines.length, 2, "close() adds nothing when nothing pends");
});

Deno.test("createAcceptErrorLog() counts every error exactly, across codes and intervals", async () => {
  const lines: string[] = [];
  const log = createAcceptErrorLog({
    emit: (line) => lines.push(line),
    format: "text",
    interval: INTERVAL,
  });
  const sent: Record<string, number> = {};
  const send = (code: string, n: number) => {
    sent[code] = (sent[code] ?? 0) + n;
    for (let i = 0; i < n; i++) {
      log.onAcceptError(
        osError(code, `${code} happened`),
        code === "EMFILE" ? "exhausted" : "client",
        code,
      );
    }
  };
  try {
    send("ENOTCONN", 300);
    send("ECONNABORTED", 1);
    send("EMFILE", 7);
    await sleep(INTERVAL * 1.5);
    send("ENOTCONN", 41);
    send("EMFILE", 2);
    await sleep(INTERVAL * 1.5);
  } finally {
    log.close();
  }
  const logged: Record<string, number> = {};
  for (const line of lines) {
    const code = /with ([A-Z]+)/.exec(line)![1];
    logged[code] = (logged[code] ?? 0) + countOf(line);
  }
  assertEquals(logged, sent);
  assert(
    lines.includes(`Accept failed 6 more times with EMFILE (${EXHAUSTED})`),
    lines.join("\n"),
  );
  // A lone error has no summary line.
  assertEquals(lines.filter((line) => line.includes("ECONNABORTED")), [
    `Accept failed with ECONNABORTED: ECONNABORTED happened (${CLIENT})`,
  ]);
  // Bounded: at most 2 lines per code and interval, whatever the volume.
  assert(lines.length <= 2 * 3 * 3, `${lines.length} lines`);
});

Deno.test("createAcceptErrorLog() JSON lines parse and carry exact counts", () => {
  const lines: string[] = [];
  const log = createAcceptErrorLog({
    emit: (line) => lines.push(line),
    format: "json",
    interval: INTERVAL,
  });
  for (let i = 0; i < 500; i++) {
    log.onAcceptError(notConnected(), "client", "ENOTCONN");
  }
  log.onAcceptError(
    osError("EMFILE", "Too many open files"),
    "exhausted",
    "EMFILE",
  );
  log.close();
  const parsed = lines.map((line) => JSON.parse(line));
  for (const entry of parsed) {
    assertMatch(
      entry["@timestamp"],
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    );
    assertEquals(entry["greeter.schema"], LOG_SCHEMA_VERSION);
    assertEquals(entry["event.action"], "accept_error");
  }
  assertEquals(
    parsed.map((entry) => [
      entry["error.code"],
      entry["greeter.accept_error.kind"],
      entry["greeter.accept_error.count"],
      entry["error.message"],
      entry["log.level"],
    ]),
    [
      ["ENOTCONN", "client", 1, "Transport endpoint is not connected", "info"],
      ["EMFILE", "exhausted", 1, "Too many open files", "warn"],
      ["ENOTCONN", "client", 499, undefined, "info"],
    ],
  );
  assertEquals(
    parsed[2].message,
    `Accept failed 499 more times with ENOTCONN (${CLIENT})`,
  );
});

// No timer is left at the end of the tests below (the test sanitizer does not
// see the runtime's own timers: liveTimers() counts them).

Deno.test("createAcceptErrorLog() close() flushes what is pending and stops its timer", () => {
  const lines: string[] = [];
  const log = createAcceptErrorLog({
    emit: (line) => lines.push(line),
    format: "text",
    interval: 60_000,
  });
  const before = liveTimers();
  for (let i = 0; i < 10; i++) {
    log.onAcceptError(notConnected(), "client", "ENOTCONN");
  }
  assertEquals(lines.length, 1);
  assertEquals(liveTimers(), before + 1);
  log.close();
  assertEquals(liveTimers(), before);
  assertEquals(lines.slice(1), [
    `Accept failed 9 more times with ENOTCONN (${CLIENT})`,
  ]);
  log.close();
  assertEquals(lines.length, 2, "a second close() adds nothing");
});

Deno.test("createAcceptErrorLog() stops its timer by itself after a quiet interval", async () => {
  const lines: string[] = [];
  const log = createAcceptErrorLog({
    emit: (line) => lines.push(line),
    format: "text",
    interval: 20,
  });
  const before = liveTimers();
  log.onAcceptError(
    new Deno.errors.NotConnected("Not connected"),
    "client",
    "ENOTCONN",
  );
  log.onAcceptError(
    new Deno.errors.NotConnected("Not connected"),
    "client",
    "ENOTCONN",
  );
  await waitUntil(() => lines.length === 2, 2_000, "the summary");
  assertEquals(lines[1], `Accept failed 1 more time with ENOTCONN (${CLIENT})`);
  // One more interval finds nothing pending and clears the timer; no close().
  await sleep(100);
  assertEquals(lines.length, 2);
  assertEquals(liveTimers(), before);
});

Deno.test("createAcceptErrorLog() JSON lines carry the schema version", () => {
  const lines: string[] = [];
  const log = createAcceptErrorLog({
    emit: (line) => lines.push(line),
    format: "json",
  });
  log.onAcceptError(notConnected(), "client", "ENOTCONN");
  log.onAcceptError(notConnected(), "client", "ENOTCONN");
  log.close();
  assertEquals(lines.length, 2);
  for (const line of lines) {
    assertEquals(JSON.parse(line)["greeter.schema"], LOG_SCHEMA_VERSION, line);
  }
});
