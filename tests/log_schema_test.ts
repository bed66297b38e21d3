// The JSON log's v2 lines checked against schemas other people maintain:
// Elastic's own ECS field definitions (npm @elastic/ecs, EcsFlat: every
// field's type and allowed values) and OpenTelemetry's semantic conventions
// (npm @opentelemetry/semantic-conventions, the attribute names).
import { assert, assertEquals, assertMatch } from "@std/assert";
import { EcsFlat, EcsVersion } from "@elastic/ecs";
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_TRANSPORT,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_VERSION,
  NETWORK_TRANSPORT_VALUE_TCP,
  NETWORK_TRANSPORT_VALUE_UNIX,
} from "@opentelemetry/semantic-conventions";
import {
  ECS_VERSION,
  formatJsonConnectionLine,
  formatJsonErrorLine,
  formatJsonWarningLine,
} from "../lib/observe/log_format.ts";
import { formatJsonLogLine, RECORD, START } from "./_log_record.ts";
import { createServerStats } from "../lib/server/stats.ts";
import { POSIX_SIGNALS, readAll, runCli, startCli } from "./_helpers.ts";

interface EcsField {
  type: string;
  allowed_values?: { name: string }[];
}
const ECS = EcsFlat as unknown as Record<string, EcsField>;

/** The OpenTelemetry attributes greeter uses, by the name it uses. */
const OTEL: Record<string, string> = {
  "client.address": ATTR_CLIENT_ADDRESS,
  "client.port": ATTR_CLIENT_PORT,
  "server.address": ATTR_SERVER_ADDRESS,
  "server.port": ATTR_SERVER_PORT,
  "network.peer.address": ATTR_NETWORK_PEER_ADDRESS,
  "network.peer.port": ATTR_NETWORK_PEER_PORT,
  "network.transport": ATTR_NETWORK_TRANSPORT,
  "service.version": ATTR_SERVICE_VERSION,
};

const RFC3339_UTC_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const TEXT_TYPES = [
  "keyword",
  "constant_keyword",
  "match_only_text",
  "text",
  "wildcard",
];

/**
 * Checks one line: every ECS field has ECS's type and, where ECS lists
 * them, an allowed value; every other field is an OpenTelemetry attribute or
 * greeter's own (`greeter.`). Returns the problems found.
 */
function problems(line: Record<string, unknown>): string[] {
  const found: string[] = [];
  for (const [key, value] of Object.entries(line)) {
    if (key.startsWith("greeter.")) continue;
    const field = ECS[key];
    if (!field) {
      if (OTEL[key] !== key) found.push(`${key}: neither ECS nor OTel`);
      continue;
    }
    if (value === null) continue; // ECS: a null field is an absent one.
    const ok = field.type === "date"
      ? typeof value === "string" && RFC3339_UTC_MS.test(value) &&
        !Number.isNaN(Date.parse(value))
      : field.type === "long" || field.type === "integer"
      ? Number.isSafeInteger(value)
      : TEXT_TYPES.includes(field.type)
      ? typeof value === "string"
      : false;
    if (!ok) found.push(`${key}: ${JSON.stringify(value)} is no ${field.type}`);
    const allowed = field.allowed_values?.map((v) => v.name);
    if (allowed && !allowed.includes(value as string)) {
      found.push(`${key}: ${value} is not one of ${allowed.join(", ")}`);
    }
  }
  return found;
}

/** One line of each kind and variant the formatter writes. */
function sampleLines(): string[] {
  const stats = createServerStats();
  stats.accepted = 3;
  stats.outcomes.greeted = 2;
  stats.acceptErrors.EMFILE = 1;
  const listen: Deno.Addr[] = [
    { transport: "tcp", hostname: "0.0.0.0", port: 8080 },
    { transport: "unix", path: "/run/greeter.sock" },
  ];
  return [
    formatJsonLogLine({ event: "start", listen, time: START }),
    formatJsonConnectionLine(RECORD),
    formatJsonConnectionLine({
      ...RECORD,
      outcome: "refused",
      reason: "denied",
    }),
    formatJsonConnectionLine({ ...RECORD, outcome: "error", reason: "EIO" }),
    formatJsonConnectionLine({
      ...RECORD,
      peerAddr: {
        transport: "tcp",
        hostname: "10.0.0.2",
        port: 40000,
      },
    }),
    formatJsonConnectionLine({
      ...RECORD,
      remoteAddr: { transport: "unix", path: "" },
      localAddr: { transport: "unix", path: "/run/greeter.sock" },
    }),
    // Sensed (--greet-pause, --capture), with a masked address.
    formatJsonConnectionLine({
      ...RECORD,
      remoteAddr: { transport: "tcp", hostname: "192.0.2.0/24", port: 0 },
      outcome: "refused",
      reason: "early_talker",
      earlyTalker: true,
      probe: {
        kind: "http",
        method: "GET",
        path: "/",
        query: "a=1",
        version: "1.1",
        userAgent: "curl/8",
      },
      captured: new TextEncoder().encode("GET /?a=1 HTTP/1.1\r\n"),
    }),
    formatJsonConnectionLine({
      ...RECORD,
      earlyTalker: true,
      probe: { kind: "tls", serverName: "example.test" },
    }),
    formatJsonConnectionLine({
      ...RECORD,
      earlyTalker: false,
      probe: { kind: "ssh", version: "SSH-2.0-OpenSSH_9.2p1" },
    }),
    formatJsonLogLine({ event: "stats", stats }),
    formatJsonLogLine({ event: "stop", stats }),
    formatJsonLogLine({ event: "stop", stats, error: "Listener failed" }),
    formatJsonLogLine({ event: "suppressed", source: "192.0.2.7", count: 9 }),
    formatJsonLogLine({ event: "suppressed", source: undefined, count: 1 }),
    formatJsonErrorLine("Cannot listen on 0.0.0.0:8080: address in use"),
    formatJsonWarningLine("greeter: warning: SIGUSR1 does nothing"),
    formatJsonLogLine({
      event: "accept_error",
      code: "ENOTCONN",
      kind: "client",
      count: 1,
      message: "Transport endpoint is not connected",
    }),
    formatJsonLogLine({ event: "reload" }),
    formatJsonLogLine({ event: "reload", error: "Cannot read message file" }),
  ];
}

Deno.test("formatJsonLogLine() field names equal the published ECS and OpenTelemetry ones", () => {
  assertEquals(ECS_VERSION, EcsVersion);
  for (const [ours, theirs] of Object.entries(OTEL)) assertEquals(ours, theirs);
  assertEquals(
    [NETWORK_TRANSPORT_VALUE_TCP, NETWORK_TRANSPORT_VALUE_UNIX],
    ["tcp", "unix"],
  );
  // ECS defines event.duration in nanoseconds.
  assertMatch(
    (EcsFlat["event.duration"] as { description: string }).description,
    /nanoseconds/,
  );
});

Deno.test("formatJsonLogLine() lines of every kind pass ECS's field types and allowed values", () => {
  const seen = new Set<string>();
  for (const text of sampleLines()) {
    const line = JSON.parse(text);
    assertEquals(problems(line), [], text);
    for (const key of Object.keys(line)) seen.add(key);
    for (
      const key of [
        "@timestamp",
        "log.level",
        "message",
        "ecs.version",
        "event.kind",
        "event.action",
        "event.outcome",
      ]
    ) {
      assert(key in line, `${key} in ${text}`);
    }
  }
  // The check ran over the fields that matter, peer address included.
  for (
    const key of [
      "event.duration",
      "client.address",
      "client.port",
      "server.address",
      "server.port",
      "network.peer.address",
      "network.transport",
      "process.pid",
      "process.uptime",
      "service.version",
      "error.message",
      "tls.client.server_name",
      "http.request.method",
      "url.path",
      "url.query",
      "http.version",
      "user_agent.original",
    ]
  ) {
    assert(seen.has(key), key);
  }
});

Deno.test("problems() rejects wrong types, values and names", () => {
  // The checker itself can fail: each of these is caught.
  assertEquals(
    problems({
      "@timestamp": "2025-01-02 03:04:05",
      "event.outcome": "greeted",
      "event.duration": 1.5,
      "client.port": "80",
      remote_host: "192.0.2.7",
      "greeter.anything": 1,
    }),
    [
      '@timestamp: "2025-01-02 03:04:05" is no date',
      "event.outcome: greeted is not one of failure, success, unknown",
      "event.duration: 1.5 is no long",
      'client.port: "80" is no long',
      "remote_host: neither ECS nor OTel",
    ],
  );
});

Deno.test({
  name:
    "greeter --log-format json output passes ECS's types and allowed values",
  ...POSIX_SIGNALS,
  async fn() {
    await using server = await startCli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--log-format",
      "json",
    ]);
    await readAll(server.port);
    await server.waitFor(/"event.action":"connection"/);
    const { stdout } = await server.stop();
    const lines = stdout.trim().split("\n");
    assertEquals(lines.length, 3, stdout);
    for (const text of lines) {
      assertEquals(problems(JSON.parse(text)), [], text);
    }
  },
});

Deno.test({
  name:
    "greeter --greet-pause --capture --log-address truncate JSON output passes ECS's types and allowed values",
  ...POSIX_SIGNALS,
  async fn() {
    await using server = await startCli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--log-format",
      "json",
      "--greet-pause",
      "2s",
      "--capture",
      "128",
      "--log-address",
      "truncate",
    ]);
    const encoder = new TextEncoder();
    for (
      const message of [
        "GET /a?b=c HTTP/1.1\r\nUser-Agent: probe/1\r\n\r\n",
        "SSH-2.0-Test\r\n",
        "\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03",
      ]
    ) {
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      await conn.write(encoder.encode(message));
      while (await conn.read(new Uint8Array(64)).catch(() => null) !== null);
      conn.close();
    }
    await server.waitFor(/("event.action":"connection".*){3}/s);
    const { stdout } = await server.stop();
    const lines = stdout.trim().split("\n").map((text) => JSON.parse(text));
    const sensed = lines.filter((line) => line["greeter.probe.kind"]);
    assertEquals(sensed.map((line) => line["greeter.probe.kind"]), [
      "http",
      "ssh",
      "tls",
    ]);
    assertEquals(sensed[0]["url.path"], "/a");
    for (const line of lines) {
      assertEquals(problems(line), [], JSON.stringify(line));
    }
  },
});

Deno.test("greeter --log-format json reports a start-up failure as one JSON line on stderr", async () => {
  for (
    const [args, code, pattern] of [
      [["--port", "99999"], 2, /^greeter: Invalid value "99999" for --port/],
      [["--message-file", "/nonexistent/message.txt"], 2, /no such file/],
    ] as const
  ) {
    const result = await runCli([
      "--log-format",
      "json",
      "-H",
      "127.0.0.1",
      ...args,
    ]);
    assertEquals(result.code, code, result.stderr);
    const lines = result.stderr.trimEnd().split("\n");
    assertEquals(lines.length, 1, result.stderr);
    const line = JSON.parse(lines[0]);
    assertEquals(problems(line), []);
    assertEquals(
      [line["log.level"], line["event.action"], line["event.outcome"]],
      ["error", "start", "failure"],
    );
    assertMatch(line["error.message"], pattern);
  }
});
