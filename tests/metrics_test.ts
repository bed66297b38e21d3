import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  createDurationHistogram,
  renderMetrics,
  renderReloadMetrics,
  TRAPPED_BUCKETS,
} from "../lib/observe/metrics.ts";
import {
  METRICS_CONTENT_TYPE,
  serveMetrics,
} from "../lib/observe/metrics_server.ts";
import { serveGreeting } from "../lib/server/serve_greeting.ts";
import { createServerStats } from "../lib/server/stats.ts";
import { VERSION } from "../lib/version.ts";
import { canRun, pool, readAll, waitUntil } from "./_helpers.ts";
import { promtoolCheck } from "./_tools.ts";

function sampleStats() {
  const stats = createServerStats();
  stats.startTime = 1_735_787_045_600;
  stats.accepted = 7;
  stats.active = 1;
  stats.outcomes.greeted = 4;
  stats.outcomes.refused = 1;
  stats.outcomes.error = 1;
  stats.refused.denied = 1;
  stats.acceptErrors.EMFILE = 2;
  stats.acceptErrors['we"ird\\'] = 1;
  stats.pausedAtLimit = 3;
  stats.bytesWritten = 96;
  return stats;
}

Deno.test("createDurationHistogram() counts each duration in its bucket", () => {
  const histogram = createDurationHistogram();
  for (const ms of [0, 1, 1.5, 5, 7, 100, 999, 1000, 10_000, 10_001, 60_000]) {
    histogram.observe(ms);
  }
  // Upper bounds are inclusive: 1 ms is in the 0.001 s bucket.
  assertEquals(histogram.counts, [2, 2, 1, 0, 1, 0, 2, 0, 1, 2]);
  assertEquals(histogram.count, 11);
  assertEquals(histogram.sumMs, 82_114.5);
});

Deno.test("renderMetrics() writes the exact exposition text", () => {
  const histogram = createDurationHistogram();
  for (const ms of [0, 3, 3, 250, 7_000]) histogram.observe(ms);
  assertEquals(
    renderMetrics(sampleStats(), histogram, {
      draining: true,
      log: { suppressed: 12, dropped: 0 },
    }),
    `# HELP greeter_build_info Always 1; the versions are in the labels.
# TYPE greeter_build_info gauge
greeter_build_info{version="${VERSION}",deno="${Deno.version.deno}"} 1
# HELP greeter_start_time_seconds When the server started, in seconds since the Unix epoch.
# TYPE greeter_start_time_seconds gauge
greeter_start_time_seconds 1735787045.6
# HELP greeter_connections_accepted_total Connections accepted.
# TYPE greeter_connections_accepted_total counter
greeter_connections_accepted_total 7
# HELP greeter_connections_total Connections that have ended, by outcome.
# TYPE greeter_connections_total counter
greeter_connections_total{outcome="greeted"} 4
greeter_connections_total{outcome="refused"} 1
greeter_connections_total{outcome="timed_out"} 0
greeter_connections_total{outcome="reset"} 0
greeter_connections_total{outcome="aborted"} 0
greeter_connections_total{outcome="error"} 1
# HELP greeter_connections_refused_total Connections refused, by reason.
# TYPE greeter_connections_refused_total counter
greeter_connections_refused_total{reason="denied"} 1
greeter_connections_refused_total{reason="per_ip_limit"} 0
greeter_connections_refused_total{reason="rate_limit"} 0
greeter_connections_refused_total{reason="proxy_untrusted"} 0
greeter_connections_refused_total{reason="proxy_header"} 0
greeter_connections_refused_total{reason="early_talker"} 0
# HELP greeter_accept_errors_total Failed accepts, by error code; the server backed off and went on.
# TYPE greeter_accept_errors_total counter
greeter_accept_errors_total{code="EMFILE"} 2
greeter_accept_errors_total{code="we\\"ird\\\\"} 1
# HELP greeter_accept_paused_total Times accepting paused because the connection cap was reached.
# TYPE greeter_accept_paused_total counter
greeter_accept_paused_total 3
# HELP greeter_connections_active Connections open now.
# TYPE greeter_connections_active gauge
greeter_connections_active 1
# HELP greeter_bytes_written_total Bytes written to clients.
# TYPE greeter_bytes_written_total counter
greeter_bytes_written_total 96
# HELP greeter_early_talkers_total Clients that sent something during the greeting pause (--greet-pause).
# TYPE greeter_early_talkers_total counter
greeter_early_talkers_total 0
# HELP greeter_client_probes_total Sensed clients that sent something, by what their first bytes looked like.
# TYPE greeter_client_probes_total counter
greeter_client_probes_total{kind="tls"} 0
greeter_client_probes_total{kind="http"} 0
greeter_client_probes_total{kind="ssh"} 0
greeter_client_probes_total{kind="rdp"} 0
greeter_client_probes_total{kind="smb"} 0
greeter_client_probes_total{kind="proxy"} 0
greeter_client_probes_total{kind="unknown"} 0
# HELP greeter_connection_duration_seconds How long connections lived, in seconds.
# TYPE greeter_connection_duration_seconds histogram
greeter_connection_duration_seconds_bucket{le="0.001"} 1
greeter_connection_duration_seconds_bucket{le="0.005"} 3
greeter_connection_duration_seconds_bucket{le="0.01"} 3
greeter_connection_duration_seconds_bucket{le="0.05"} 3
greeter_connection_duration_seconds_bucket{le="0.1"} 3
greeter_connection_duration_seconds_bucket{le="0.5"} 4
greeter_connection_duration_seconds_bucket{le="1"} 4
greeter_connection_duration_seconds_bucket{le="5"} 4
greeter_connection_duration_seconds_bucket{le="10"} 5
greeter_connection_duration_seconds_bucket{le="+Inf"} 5
greeter_connection_duration_seconds_sum 7.256
greeter_connection_duration_seconds_count 5
# HELP greeter_draining 1 while the server is shutting down, 0 while it accepts.
# TYPE greeter_draining gauge
greeter_draining 1
# HELP greeter_log_lines_suppressed_total Connection log lines left out under a flood, and summarized.
# TYPE greeter_log_lines_suppressed_total counter
greeter_log_lines_suppressed_total 12
# HELP greeter_log_lines_dropped_total Log lines dropped because the output was too slow.
# TYPE greeter_log_lines_dropped_total counter
greeter_log_lines_dropped_total 0
`,
  );
});

// canRun: Command.output() throws at once (not a rejected promise) when
// the program is missing, which .then(..., () => false) does not catch.
const promtool = await canRun("promtool");

Deno.test({
  name: "renderMetrics() passes promtool check metrics" +
    (promtool
      ? ""
      : " (skipped: promtool not found; apt-get install prometheus)"),
  ignore: !promtool,
  async fn() {
    const histogram = createDurationHistogram();
    for (const ms of [0, 3, 250, 7_000, 20_000]) histogram.observe(ms);
    const trapped = createDurationHistogram(TRAPPED_BUCKETS);
    trapped.observe(90_000);
    for (const draining of [false, true]) {
      // promtool exits 0 and prints nothing for valid, lint-clean metrics.
      assertEquals(
        await promtoolCheck(
          renderMetrics(sampleStats(), histogram, {
            draining,
            log: { suppressed: 1, dropped: 2 },
            // The tarpit's families, with the other half of the cases.
            tarpit: draining
              ? { stats: { clients: 2, bytesSent: 90 }, trapped }
              : undefined,
          }),
        ),
        [0, ""],
      );
    }
  },
});

Deno.test("renderReloadMetrics() writes both families exactly, lint-clean for promtool", async () => {
  const text = renderReloadMetrics({
    success: 3,
    failure: 1,
    lastSuccess: 1_700_000_000_999,
  });
  assertEquals(
    text,
    "# HELP greeter_config_reloads_total Configuration reloads (SIGHUP), by result.\n" +
      "# TYPE greeter_config_reloads_total counter\n" +
      'greeter_config_reloads_total{result="success"} 3\n' +
      'greeter_config_reloads_total{result="failure"} 1\n' +
      "# HELP greeter_config_last_reload_success_timestamp_seconds When the running configuration was loaded.\n" +
      "# TYPE greeter_config_last_reload_success_timestamp_seconds gauge\n" +
      "greeter_config_last_reload_success_timestamp_seconds 1700000000\n",
  );
  if (promtool) assertEquals(await promtoolCheck(text), [0, ""]);
});

/** Fetches a path of the metrics server; returns status, type and body. */
async function get(port: number, path: string, method = "GET") {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    body: await response.text(),
  };
}

Deno.test("serveMetrics() counts exactly N connections of a real server", async () => {
  const histogram = createDurationHistogram();
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    onClose: (record) => histogram.observe(record.duration),
  });
  await using metrics = serveMetrics({
    hostname: "127.0.0.1",
    port: 0,
    render: () =>
      renderMetrics(server.stats, histogram, { draining: server.draining }),
    health: () => ({
      ok: !server.draining,
      reason: server.draining ? "draining" : "ok",
    }),
  });
  const connections = 50;
  await pool(connections, 10, () => readAll(server.addr.port));
  await waitUntil(() => histogram.count === connections, 5_000, "onClose");
  const { status, type, body } = await get(metrics.addr.port, "/metrics");
  assertEquals([status, type], [200, METRICS_CONTENT_TYPE]);
  const samples = body.split("\n").filter((line) => !line.startsWith("#"));
  for (
    const sample of [
      "greeter_connections_accepted_total 50",
      'greeter_connections_total{outcome="greeted"} 50',
      'greeter_connections_total{outcome="refused"} 0',
      "greeter_connections_active 0",
      `greeter_bytes_written_total ${50 * 24}`,
      'greeter_connection_duration_seconds_bucket{le="+Inf"} 50',
      "greeter_connection_duration_seconds_count 50",
      "greeter_draining 0",
    ]
  ) {
    assert(samples.includes(sample), `${sample} in\n${body}`);
  }
  assertEquals(await get(metrics.addr.port, "/healthz"), {
    status: 200,
    type: "text/plain; charset=utf-8",
    body: "ok\n",
  });
});

Deno.test("serveMetrics() answers 404 for other paths and 405 for other methods", async () => {
  await using metrics = serveMetrics({
    hostname: "127.0.0.1",
    port: 0,
    render: () => "x 1\n",
    health: () => ({ ok: true, reason: "ok" }),
  });
  const { port } = metrics.addr;
  assertEquals((await get(port, "/")).status, 404);
  assertEquals((await get(port, "/metrics/x")).status, 404);
  assertEquals((await get(port, "/metrics", "POST")).status, 405);
  assertEquals((await get(port, "/metrics", "HEAD")).body, "");
  // The endpoint's own counters follow what render gives.
  const { body } = await get(port, "/metrics");
  assert(body.startsWith("x 1\n# HELP greeter_metrics_"), body);
  assertStringIncludes(
    body,
    '\ngreeter_metrics_http_responses_total{code="404"} 2\n',
  );
  assertStringIncludes(
    body,
    '\ngreeter_metrics_http_responses_total{code="405"} 1\n',
  );
});

Deno.test("serveMetrics() throws AddrInUse for a port already in use", () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  assertThrows(
    () =>
      serveMetrics({
        hostname: "127.0.0.1",
        port: listener.addr.port,
        render: () => "",
        health: () => ({ ok: true, reason: "ok" }),
      }),
    Deno.errors.AddrInUse,
  );
});

Deno.test("serveMetrics() /healthz answers 503 while the server drains", async () => {
  // A client that never reads a greeting larger than socket buffers keeps
  // the server draining until the drain timeout or the client goes.
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    greeting: new Uint8Array(64 * 1024 * 1024),
    drainTimeout: 10_000,
  });
  await using metrics = serveMetrics({
    hostname: "127.0.0.1",
    port: 0,
    render: () =>
      renderMetrics(server.stats, createDurationHistogram(), {
        draining: server.draining,
      }),
    health: () => ({
      ok: !server.draining,
      reason: server.draining ? "draining" : "ok",
    }),
  });
  const idle = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await waitUntil(() => server.stats.active === 1, 5_000, "accept");
  assertEquals((await get(metrics.addr.port, "/healthz")).status, 200);
  const stopped = server.shutdown();
  assertEquals(await get(metrics.addr.port, "/healthz"), {
    status: 503,
    type: "text/plain; charset=utf-8",
    body: "draining\n",
  });
  const { body } = await get(metrics.addr.port, "/metrics");
  assertStringIncludes(body, "\ngreeter_draining 1\n");
  assertStringIncludes(body, "\ngreeter_connections_active 1\n");
  idle.close();
  await stopped;
  assertEquals(server.stats.active, 0);
});
