import { assert, assertEquals } from "@std/assert";
import {
  defaultLogTimestamps,
  ECS_VERSION,
  formatJsonConnectionLine,
  formatJsonErrorLine,
  formatLogTime,
  formatTextConnectionLine,
  formatTextLine,
  formatTextSuppressedLine,
  LOG_SCHEMA_VERSION,
} from "../lib/observe/log_format.ts";
import { formatJsonLogLine, RECORD, START } from "./_log_record.ts";
import { createServerStats } from "../lib/server/stats.ts";
import { VERSION } from "../lib/version.ts";

/** The fields every v2 line starts with. */
function head(
  time: string,
  level: string,
  message: string,
  action: string,
  outcome = "success",
  kind = "event",
): string {
  return `{"@timestamp":"${time}","log.level":"${level}","message":${
    JSON.stringify(message)
  },"ecs.version":"${ECS_VERSION}","event.kind":"${kind}",` +
    `"event.action":"${action}","event.outcome":"${outcome}",` +
    `"greeter.schema":2`;
}

Deno.test("formatJsonConnectionLine() writes the documented fields in order", () => {
  assertEquals(LOG_SCHEMA_VERSION, 2);
  assertEquals(
    formatJsonConnectionLine(RECORD),
    head(
      "2025-01-02T03:04:05.678Z",
      "info",
      "Connection received from 192.0.2.7:51234",
      "connection",
    ) +
      ',"event.duration":78000000,"client.address":"192.0.2.7",' +
      '"client.port":51234,"server.address":"::","server.port":8080,' +
      '"network.transport":"tcp","greeter.outcome":"greeted",' +
      '"greeter.reason":null,"greeter.bytes":24,"greeter.greeting_bytes":24}',
  );
});

Deno.test("formatJsonConnectionLine() escapes the reason, keeps IPv6 hosts bare and fails what is not greeted", () => {
  const line = formatJsonConnectionLine({
    ...RECORD,
    remoteAddr: { transport: "tcp", hostname: "2001:db8::1", port: 1 },
    localAddr: { transport: "tcp", hostname: "::ffff:127.0.0.1", port: 23 },
    outcome: "error",
    reason: 'odd "code"\n',
    bytesWritten: 3,
    duration: 0.5,
  });
  assertEquals(JSON.parse(line), {
    "@timestamp": "2025-01-02T03:04:05.600Z",
    "log.level": "error",
    message: 'Connection from [2001:db8::1]:1 error (odd "code"\n)',
    "ecs.version": ECS_VERSION,
    "event.kind": "event",
    "event.action": "connection",
    "event.outcome": "failure",
    "greeter.schema": 2,
    "event.duration": 500_000,
    "client.address": "2001:db8::1",
    "client.port": 1,
    "server.address": "127.0.0.1",
    "server.port": 23,
    "network.transport": "tcp",
    "greeter.outcome": "error",
    "greeter.reason": 'odd "code"\n',
    "greeter.bytes": 3,
    "greeter.greeting_bytes": 24,
  });
  assertEquals(line.includes("\n"), false);
  for (const outcome of ["refused", "timed_out", "reset", "aborted"] as const) {
    const parsed = JSON.parse(formatJsonConnectionLine({ ...RECORD, outcome }));
    assertEquals(
      [parsed["event.outcome"], parsed["log.level"], parsed["greeter.outcome"]],
      ["failure", "info", outcome],
    );
  }
});

Deno.test("formatJsonConnectionLine() gives a Unix socket's path and null ports", () => {
  const parsed = JSON.parse(formatJsonConnectionLine({
    ...RECORD,
    remoteAddr: { transport: "unix", path: "" },
    localAddr: { transport: "unix", path: "/run/greeter.sock" },
  }));
  assertEquals(parsed.message, "Connection received from unix socket");
  assertEquals(
    [
      parsed["client.address"],
      parsed["client.port"],
      parsed["server.address"],
      parsed["server.port"],
      parsed["network.transport"],
    ],
    [null, null, "/run/greeter.sock", null, "unix"],
  );
});

Deno.test("formatJsonConnectionLine() names the direct peer only when given one", () => {
  assert(!formatJsonConnectionLine(RECORD).includes("network.peer"));
  const parsed = JSON.parse(
    formatJsonConnectionLine({
      ...RECORD,
      peerAddr: {
        transport: "tcp",
        hostname: "10.0.0.2",
        port: 40000,
      },
    }),
  );
  assertEquals(
    [
      parsed["client.address"],
      parsed["network.peer.address"],
      parsed["network.peer.port"],
    ],
    ["192.0.2.7", "10.0.0.2", 40000],
  );
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
    head(
      "2025-01-02T03:04:05.600Z",
      "info",
      "Server is listening for incoming connections on 0.0.0.0:8080, [::1]:8443",
      "start",
    ) +
      `,"service.version":${
        JSON.stringify(VERSION)
      },"process.pid":${Deno.pid},` +
      `"greeter.listen":["0.0.0.0:8080","[::1]:8443"],"greeter.metrics":null}`,
  );
  assertEquals(
    JSON.parse(formatJsonLogLine({
      event: "start",
      listen: [],
      metrics: { transport: "tcp", hostname: "127.0.0.1", port: 9464 },
    }))["greeter.metrics"],
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
  const totals = '"process.uptime":3723,"greeter.accepted":5,' +
    '"greeter.active":1,"greeter.outcomes":{"greeted":2,"refused":1,' +
    '"timed_out":0,"reset":1,"aborted":0,"error":0},"greeter.refused":' +
    '{"denied":0,"per_ip_limit":0,"rate_limit":1,"proxy_untrusted":0,"proxy_header":0,"early_talker":0},"greeter.accept_errors":' +
    '{"EMFILE":3},"greeter.paused_at_limit":2,"greeter.bytes":48';
  const time = START + 3_723_999;
  const at = "2025-01-02T04:06:09.599Z";
  assertEquals(
    formatJsonLogLine({ event: "stats", stats, time }),
    head(
      at,
      "info",
      "Stats: 5 accepted, 1 active",
      "stats",
      "success",
      "metric",
    ) +
      `,${totals}}`,
  );
  assertEquals(
    formatJsonLogLine({ event: "stop", stats, time }),
    head(at, "info", "Server stopped: 5 connections, 2 greeted", "stop") +
      `,${totals}}`,
  );
  assertEquals(
    formatJsonLogLine({ event: "stop", stats, time, error: "Boom" }),
    head(at, "error", "Server stopped: Boom", "stop", "failure") +
      `,${totals},"error.message":"Boom"}`,
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
    head(
      "2025-01-02T03:04:05.600Z",
      "warn",
      "15 more connections from 192.0.2.7 suppressed",
      "suppressed",
    ) +
      ',"greeter.suppressed.source":"192.0.2.7","greeter.suppressed.count":15}',
  );
  assertEquals(
    JSON.parse(formatJsonLogLine({
      event: "suppressed",
      source: undefined,
      count: 1,
      time: START,
    }))["greeter.suppressed.source"],
    null,
  );
});

Deno.test("formatJsonErrorLine() writes a start-up failure as a JSON line", () => {
  assertEquals(
    formatJsonErrorLine(
      "Cannot listen on 127.0.0.1:1: permission denied",
      START,
    ),
    head(
      "2025-01-02T03:04:05.600Z",
      "error",
      "Cannot listen on 127.0.0.1:1: permission denied",
      "start",
      "failure",
    ) + ',"error.message":"Cannot listen on 127.0.0.1:1: permission denied"}',
  );
});

Deno.test("formatTextConnectionLine() keeps the human line, formatTextLine() stamps it when asked", () => {
  const words = formatTextConnectionLine(RECORD.remoteAddr);
  assertEquals(words, "Connection received from 192.0.2.7:51234");
  assertEquals(
    formatTextLine(words, { timestamps: false }),
    "Connection received from 192.0.2.7:51234",
  );
  const before = Date.now();
  const line = formatTextLine(words, { timestamps: true });
  const after = Date.now();
  const match = /^(\S+) Connection received from 192\.0\.2\.7:51234$/.exec(
    line,
  );
  assert(match, line);
  const stamped = Date.parse(match[1]);
  assertEquals(formatLogTime(stamped), match[1]);
  assert(before <= stamped && stamped <= after, line);
});

Deno.test("formatTextLine() puts an RFC 3339 timestamp first only when asked", () => {
  assertEquals(
    formatTextLine("Server stopped", { timestamps: true }, START),
    "2025-01-02T03:04:05.600Z Server stopped",
  );
  assertEquals(
    formatTextLine("Server stopped", { timestamps: false }, START),
    "Server stopped",
  );
  assertEquals(formatTextLine("Server stopped"), "Server stopped");
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

Deno.test("defaultLogTimestamps() stamps lines only off a terminal and off journald", () => {
  assertEquals(defaultLogTimestamps({ isTerminal: false }), true);
  assertEquals(defaultLogTimestamps({ isTerminal: true }), false);
  assertEquals(
    defaultLogTimestamps({ isTerminal: false, journalStream: "8:12345" }),
    false,
  );
  assertEquals(
    defaultLogTimestamps({ isTerminal: true, journalStream: "8:12345" }),
    false,
  );
  assertEquals(
    defaultLogTimestamps({ isTerminal: false, journalStream: "" }),
    true,
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
