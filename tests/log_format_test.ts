import { assertEquals } from "@std/assert";
import {
  formatJsonConnectionLine,
  formatJsonLogLine,
  formatLogTime,
  formatTextConnectionLine,
  formatTextSuppressedLine,
  LOG_SCHEMA_VERSION,
} from "../lib/observe/log_format.ts";
import type { ConnectionRecord } from "../lib/server/options.ts";
import { createServerStats } from "../lib/server/stats.ts";
import { VERSION } from "../lib/version.ts";

const START = Date.UTC(2025, 0, 2, 3, 4, 5, 600);

const RECORD: ConnectionRecord = {
  remoteAddr: { transport: "tcp", hostname: "::ffff:192.0.2.7", port: 51234 },
  localAddr: { transport: "tcp", hostname: "::", port: 8080 },
  outcome: "greeted",
  bytesWritten: 24,
  greetingLength: 24,
  startTime: START,
  duration: 78,
};

Deno.test("formatJsonConnectionLine() writes the documented fields in order", () => {
  assertEquals(
    formatJsonConnectionLine(RECORD),
    '{"time":"2025-01-02T03:04:05.678Z","event":"connection","v":1,' +
      '"remote":"192.0.2.7:51234","remote_host":"192.0.2.7",' +
      '"remote_port":51234,"local":"[::]:8080","outcome":"greeted",' +
      '"reason":null,"bytes":24,"greeting_bytes":24,"duration_ms":78}',
  );
});

Deno.test("formatJsonConnectionLine() escapes the reason and keeps IPv6 hosts bare", () => {
  const line = formatJsonConnectionLine({
    ...RECORD,
    remoteAddr: { transport: "tcp", hostname: "2001:db8::1", port: 1 },
    outcome: "error",
    reason: 'odd "code"\n',
    bytesWritten: 3,
  });
  assertEquals(JSON.parse(line), {
    time: "2025-01-02T03:04:05.678Z",
    event: "connection",
    v: LOG_SCHEMA_VERSION,
    remote: "[2001:db8::1]:1",
    remote_host: "2001:db8::1",
    remote_port: 1,
    local: "[::]:8080",
    outcome: "error",
    reason: 'odd "code"\n',
    bytes: 3,
    greeting_bytes: 24,
    duration_ms: 78,
  });
  assertEquals(line.includes("\n"), false);
});

Deno.test("formatJsonLogLine() formats a connection event like formatJsonConnectionLine()", () => {
  assertEquals(
    formatJsonLogLine({ event: "connection", record: RECORD }),
    formatJsonConnectionLine(RECORD),
  );
});

Deno.test("formatJsonLogLine() formats start with version, pid and every address", () => {
  assertEquals(
    formatJsonLogLine({
      event: "start",
      time: START,
      listen: [
        { transport: "tcp", hostname: "0.0.0.0", port: 8080 },
        { transport: "tcp", hostname: "::1", port: 8443 },
      ],
    }),
    `{"time":"2025-01-02T03:04:05.600Z","event":"start","v":1,` +
      `"version":${JSON.stringify(VERSION)},"pid":${Deno.pid},` +
      `"listen":["0.0.0.0:8080","[::1]:8443"],"metrics":null}`,
  );
  assertEquals(
    JSON.parse(formatJsonLogLine({
      event: "start",
      listen: [],
      metrics: { transport: "tcp", hostname: "127.0.0.1", port: 9464 },
    })).metrics,
    "127.0.0.1:9464",
  );
});

Deno.test("formatJsonLogLine() formats stats and stop with every total", () => {
  const stats = createServerStats();
  stats.startTime = START;
  stats.accepted = 5;
  stats.active = 1;
  stats.outcomes.greeted = 2;
  stats.outcomes.refused = 1;
  stats.outcomes.reset = 1;
  stats.refused.rate_limit = 1;
  stats.acceptErrors.EMFILE = 3;
  stats.pausedAtLimit = 2;
  stats.bytesWritten = 48;
  const totals = '"uptime_ms":3723000,"accepted":5,"active":1,' +
    '"outcomes":{"greeted":2,"refused":1,"timed_out":0,"reset":1,' +
    '"aborted":0,"error":0},"refused":{"denied":0,"per_ip_limit":0,' +
    '"rate_limit":1},"accept_errors":{"EMFILE":3},"paused_at_limit":2,' +
    '"bytes":48';
  const time = START + 3_723_000;
  assertEquals(
    formatJsonLogLine({ event: "stats", stats, time }),
    `{"time":"2025-01-02T04:06:08.600Z","event":"stats","v":1,${totals}}`,
  );
  assertEquals(
    formatJsonLogLine({ event: "stop", stats, time }),
    `{"time":"2025-01-02T04:06:08.600Z","event":"stop","v":1,${totals},` +
      `"error":null}`,
  );
  assertEquals(
    JSON.parse(
      formatJsonLogLine({ event: "stop", stats, time, error: "Boom" }),
    ).error,
    "Boom",
  );
});

Deno.test("formatJsonLogLine() formats suppressed with the source or null", () => {
  assertEquals(
    formatJsonLogLine({
      event: "suppressed",
      source: "192.0.2.7",
      count: 15,
      time: START,
    }),
    '{"time":"2025-01-02T03:04:05.600Z","event":"suppressed","v":1,' +
      '"source":"192.0.2.7","count":15}',
  );
  assertEquals(
    formatJsonLogLine({
      event: "suppressed",
      source: undefined,
      count: 1,
      time: START,
    }),
    '{"time":"2025-01-02T03:04:05.600Z","event":"suppressed","v":1,' +
      '"source":null,"count":1}',
  );
});

Deno.test("formatTextConnectionLine() keeps the human line", () => {
  assertEquals(
    formatTextConnectionLine(RECORD.remoteAddr),
    "Connection received from 192.0.2.7:51234",
  );
});

Deno.test("formatTextSuppressedLine() counts in words, singular and plural", () => {
  assertEquals(
    formatTextSuppressedLine("192.0.2.7", 15),
    "15 more connections from 192.0.2.7 suppressed",
  );
  assertEquals(
    formatTextSuppressedLine("2001:db8:0:1::/64", 1),
    "1 more connection from 2001:db8:0:1::/64 suppressed",
  );
  assertEquals(
    formatTextSuppressedLine(undefined, 7),
    "7 more connections from other sources suppressed",
  );
});

Deno.test("formatLogTime() equals toISOString() across seconds, days and years", () => {
  const times = [
    0,
    START,
    START + 399,
    START + 400, // The next second, from the cached one.
    START - 601, // Back a second.
    Date.UTC(2024, 11, 31, 23, 59, 59, 999),
    Date.UTC(2025, 0, 1),
    Date.UTC(2025, 0, 1, 0, 0, 0, 9),
    Date.UTC(2025, 0, 1, 0, 0, 0, 10),
    Date.UTC(2025, 0, 1, 0, 0, 0, 99),
    Date.UTC(2025, 0, 1, 0, 0, 0, 100),
  ];
  for (const time of times) {
    assertEquals(formatLogTime(time), new Date(time).toISOString());
  }
  assertEquals(formatLogTime(START + 0.9), "2025-01-02T03:04:05.600Z");
});
