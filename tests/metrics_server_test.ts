// The metrics endpoint's own HTTP/1.1 server: exact bytes on real sockets,
// its cap, its one deadline per connection, and its counters.
import {
  assert,
  assertEquals,
  assertLessOrEqual,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  createDurationHistogram,
  renderMetrics,
} from "../lib/observe/metrics.ts";
import {
  MAX_HEAD_BYTES,
  METRICS_CONTENT_TYPE,
  parseRequestHead,
  serveMetrics,
} from "../lib/observe/metrics_server.ts";
import {
  readProcessSample,
  renderProcessMetrics,
} from "../lib/observe/process_metrics.ts";
import { createServerStats } from "../lib/server/stats.ts";
import { canRun, waitUntil } from "./_helpers.ts";
import { promtoolCheck } from "./_tools.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Sends `request` on a new connection and reads until the server closes. */
async function raw(port: number, request: string | Uint8Array) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const bytes = typeof request === "string"
      ? encoder.encode(request)
      : request;
    let written = 0;
    while (written < bytes.length) {
      written += await conn.write(bytes.subarray(written));
    }
    let text = "";
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n));
    }
    return text;
  } finally {
    conn.close();
  }
}

/** The exact bytes of a plain-text answer. */
function plain(
  status: string,
  body: string,
  { head = false, allow }: { head?: boolean; allow?: string } = {},
) {
  return `HTTP/1.1 ${status}\r\n` +
    "Content-Type: text/plain; charset=utf-8\r\n" +
    `Content-Length: ${encoder.encode(body).length}\r\n` +
    "Cache-Control: no-store\r\n" +
    "Connection: close\r\n" +
    (allow ? `Allow: ${allow}\r\n` : "") +
    "\r\n" + (head ? "" : body);
}

/** Reads until the server closes or resets; resolves to when, in ms. */
async function closedAt(conn: Deno.Conn): Promise<number> {
  const buffer = new Uint8Array(1024);
  try {
    while (await conn.read(buffer) !== null) {
      // Nothing is expected; whatever comes is dropped.
    }
  } catch {
    // A reset is a close too.
  }
  return performance.now();
}

const sleep = (ms: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, ms));

Deno.test("serveMetrics() answers each kind of request with the exact bytes, then closes", async () => {
  let healthy = true;
  let broken = false;
  await using metrics = serveMetrics({
    hostname: "127.0.0.1",
    port: 0,
    render() {
      if (broken) throw new Error("broken");
      return "x 1\n";
    },
    // A Promise, as the CLI's health check gives.
    health: () =>
      Promise.resolve(
        healthy
          ? { ok: true, reason: "ok" }
          : { ok: false, reason: "draining" },
      ),
  });
  const { port } = metrics.addr;
  const get = (target: string, method = "GET") =>
    raw(port, `${method} ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);

  assertEquals(await get("/healthz"), plain("200 OK", "ok\n"));
  assertEquals(
    await get("/healthz", "HEAD"),
    plain("200 OK", "ok\n", { head: true }),
  );
  healthy = false;
  assertEquals(
    await get("/healthz?probe=1"),
    plain("503 Service Unavailable", "draining\n"),
  );
  assertEquals(
    await get("/"),
    plain("404 Not Found", "not found: try /metrics or /healthz\n"),
  );
  assertEquals(
    await get("/metrics", "DELETE"),
    plain("405 Method Not Allowed", "method not allowed: use GET\n", {
      allow: "GET, HEAD",
    }),
  );
  // A body the server never reads does not reset the connection before
  // the answer is read.
  assertEquals(
    await raw(
      port,
      "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    ),
    plain("405 Method Not Allowed", "method not allowed: use GET\n", {
      allow: "GET, HEAD",
    }),
  );
  for (
    const garbage of [
      "hello\r\n\r\n",
      "GET /metrics HTTP/2.0\r\n\r\n",
      "GET  /metrics HTTP/1.1\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
      "GET metrics HTTP/1.1\r\n\r\n",
    ]
  ) {
    assertEquals(
      await raw(port, garbage),
      plain("400 Bad Request", "bad request\n"),
      JSON.stringify(garbage),
    );
  }
  assertEquals(
    await raw(
      port,
      `GET /metrics HTTP/1.1\r\nX: ${"a".repeat(MAX_HEAD_BYTES)}\r\n\r\n`,
    ),
    plain("431 Request Header Fields Too Large", "request head too large\n"),
  );
  broken = true;
  assertEquals(
    await get("/metrics"),
    plain("500 Internal Server Error", "internal error\n"),
  );
  broken = false;
  // Bare line feeds and an absolute target are accepted.
  const scrape = await raw(port, "GET http://x/metrics HTTP/1.0\n\n");
  const [head, body] = scrape.split("\r\n\r\n");
  assertEquals(
    head,
    "HTTP/1.1 200 OK\r\n" +
      `Content-Type: ${METRICS_CONTENT_TYPE}\r\n` +
      `Content-Length: ${encoder.encode(body).length}\r\n` +
      "Cache-Control: no-store\r\nConnection: close",
  );
  assert(body.startsWith("x 1\n# HELP greeter_metrics_"), body);
  for (
    const line of [
      'greeter_metrics_http_responses_total{code="200"} 2',
      'greeter_metrics_http_responses_total{code="400"} 6',
      'greeter_metrics_http_responses_total{code="404"} 1',
      'greeter_metrics_http_responses_total{code="405"} 2',
      'greeter_metrics_http_responses_total{code="431"} 1',
      'greeter_metrics_http_responses_total{code="500"} 1',
      'greeter_metrics_http_responses_total{code="503"} 1',
      'greeter_metrics_http_errors_total{reason="bad_request"} 6',
      'greeter_metrics_http_errors_total{reason="header_too_large"} 1',
      'greeter_metrics_http_errors_total{reason="internal"} 1',
      'greeter_metrics_http_errors_total{reason="timeout"} 0',
      "greeter_metrics_connections_accepted_total 15",
      "greeter_metrics_connections_active 1",
    ]
  ) {
    assertStringIncludes(body, `\n${line}\n`);
  }
});

Deno.test("parseRequestHead() takes the method and the path of an HTTP/1.x head only", () => {
  assertEquals(parseRequestHead("GET /metrics?a=b HTTP/1.1\r\n\r\n"), {
    method: "GET",
    path: "/metrics",
  });
  assertEquals(parseRequestHead("HEAD http://h:1/healthz HTTP/1.0\n\n"), {
    method: "HEAD",
    path: "/healthz",
  });
  assertEquals(parseRequestHead("OPTIONS * HTTP/1.1\r\n\r\n"), {
    method: "OPTIONS",
    path: "*",
  });
  for (
    const head of [
      "",
      "GET /metrics\r\n\r\n",
      "GET /metrics HTTP/1.1 \r\n\r\n",
      "G(T /metrics HTTP/1.1\r\n\r\n",
      "GET http://[/x HTTP/1.1\r\n\r\n",
      "GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n",
    ]
  ) {
    assertEquals(parseRequestHead(head), undefined, JSON.stringify(head));
  }
});

Deno.test("serveMetrics() closes 1,000 idle connections, the oldest first to make room, never more than the cap open at once", async () => {
  const cap = 64;
  const timeout = 300;
  await using metrics = serveMetrics({
    hostname: "127.0.0.1",
    port: 0,
    render: () => "",
    health: () => ({ ok: true, reason: "ok" }),
    maxConnections: cap,
    timeout,
  });
  const { port } = metrics.addr;
  const { listener, errors } = metrics.stats;
  let most = 0;
  let watching = true;
  const watch = (async () => {
    while (watching) {
      most = Math.max(most, listener.active);
      await sleep(5);
    }
  })();
  const conns = await Promise.all(
    Array.from(
      { length: 1_000 },
      () => Deno.connect({ hostname: "127.0.0.1", port }),
    ),
  );
  try {
    // Every one is closed by the server, none by the client.
    await Promise.all(conns.map(closedAt));
  } finally {
    for (const conn of conns) conn.close();
  }
  await waitUntil(() => listener.active === 0, 2_000, "every place free");
  watching = false;
  await watch;
  assertEquals(listener.accepted, 1_000);
  // Each either made room for a newer one or reached its deadline.
  assertEquals(errors.evicted + errors.timeout, 1_000);
  assert(errors.evicted > 0, "none made room");
  assertLessOrEqual(most, cap);
  // A normal scrape is answered afterwards.
  assertStringIncludes(
    await raw(port, "GET /metrics HTTP/1.1\r\n\r\n"),
    `\ngreeter_metrics_http_errors_total{reason="evicted"} ${errors.evicted}\n`,
  );
});

Deno.test("serveMetrics() answers 10 of 10 /healthz probes within 1 s while one client holds 200 idle connections", async () => {
  await using metrics = serveMetrics({
    hostname: "127.0.0.1",
    port: 0,
    render: () => "",
    health: () => ({ ok: true, reason: "ok" }),
  });
  const { port } = metrics.addr;
  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    for (let probe = 0; probe < 10; probe++) {
      const started = performance.now();
      const answer = await raw(port, "GET /healthz HTTP/1.1\r\n\r\n");
      const took = performance.now() - started;
      assertStringIncludes(answer, "HTTP/1.1 200 OK\r\n");
      assertLessOrEqual(took, 1_000, `probe ${probe} took ${took} ms`);
      // The holder opens as many again: the probe is still never starved.
      held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
  } finally {
    for (const conn of held) conn.close();
  }
});

Deno.test("serveMetrics() cuts a client sending one byte per 200 ms at its deadline", async () => {
  const timeout = 1_000;
  await using metrics = serveMetrics({
    hostname: "127.0.0.1",
    port: 0,
    render: () => "",
    health: () => ({ ok: true, reason: "ok" }),
    timeout,
  });
  const { port } = metrics.addr;
  const request = encoder.encode("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const start = performance.now();
  let closed = false;
  const end = closedAt(conn).then((at) => {
    closed = true;
    return at;
  });
  let sent = 0;
  try {
    while (!closed && sent < request.length) {
      await conn.write(request.subarray(sent, sent + 1));
      sent++;
      await sleep(200);
    }
  } catch {
    // The server closed first: writing fails.
  }
  const after = (await end) - start;
  conn.close();
  console.log(`slow client cut after ${Math.round(after)} ms, ${sent} bytes`);
  // It was still sending when it was cut: progress does not extend the
  // deadline.
  assert(sent < request.length, `${sent} bytes`);
  assert(after >= timeout - 50 && after < timeout + 500, `${after} ms`);
  assertEquals(metrics.stats.errors.timeout, 1);
  assertEquals(metrics.stats.listener.active, 0);
});

Deno.test("serveMetrics() shutdown closes idle connections within its one-second drain and never rejects", async () => {
  const metrics = serveMetrics({
    hostname: "127.0.0.1",
    port: 0,
    render: () => "",
    health: () => ({ ok: true, reason: "ok" }),
  });
  const conns = await Promise.all(
    Array.from(
      { length: 10 },
      () => Deno.connect({ hostname: "127.0.0.1", port: metrics.addr.port }),
    ),
  );
  try {
    await waitUntil(() => metrics.stats.listener.active === 10, 2_000);
    const start = performance.now();
    await metrics.shutdown();
    await metrics.finished;
    const took = performance.now() - start;
    // Bounded by the one-second drain, not the five-second timeout.
    assert(took < 2_000, `${took} ms`);
    assertEquals(metrics.stats.listener.active, 0);
    assertEquals(metrics.failure, undefined);
    // Cut by shutdown: not counted as failures.
    assertEquals(metrics.stats.errors.timeout, 0);
    await metrics.shutdown();
  } finally {
    for (const conn of conns) conn.close();
  }
});

Deno.test("serveMetrics() refuses a cap or timeout out of range", () => {
  const base = {
    hostname: "127.0.0.1",
    port: 0,
    render: () => "",
    health: () => ({ ok: true, reason: "ok" }),
  };
  for (const maxConnections of [0, -1, 1.5, NaN]) {
    assertThrows(
      () => serveMetrics({ ...base, maxConnections }),
      RangeError,
      "Invalid maxConnections option",
    );
  }
  assertThrows(
    () => serveMetrics({ ...base, timeout: 0 }),
    RangeError,
    "Invalid timeout option",
  );
  assertThrows(
    () => serveMetrics({ ...base, timeout: "5" as unknown as number }),
    TypeError,
    "Invalid timeout option",
  );
});

const promtool = await canRun("promtool");

Deno.test({
  name: "serveMetrics() whole scrape, process metrics included, passes " +
    "promtool check metrics" +
    (promtool
      ? ""
      : " (skipped: promtool not found; apt-get install prometheus)"),
  ignore: !promtool,
  async fn() {
    const stats = createServerStats();
    stats.acceptErrors.EMFILE = 3;
    await using metrics = serveMetrics({
      hostname: "127.0.0.1",
      port: 0,
      render: () =>
        renderMetrics(stats, createDurationHistogram()) +
        renderProcessMetrics(readProcessSample()),
      health: () => ({ ok: true, reason: "ok" }),
    });
    // Some of the endpoint's own counters with labels.
    await raw(metrics.addr.port, "nonsense\r\n\r\n");
    const scrape = await raw(
      metrics.addr.port,
      "GET /metrics HTTP/1.1\r\n\r\n",
    );
    const body = scrape.slice(scrape.indexOf("\r\n\r\n") + 4);
    assertStringIncludes(body, "\nprocess_resident_memory_bytes ");
    assertEquals(body.match(/^# TYPE greeter_build_info /gm)?.length, 1);
    assertEquals(await promtoolCheck(body), [0, ""]);
  },
});

Deno.test("parseRequestHead() takes origin-form, * and http(s) absolute-form targets only", () => {
  const path = (target: string) =>
    parseRequestHead(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`)?.path;
  assertEquals(path("/metrics?x=1#y"), "/metrics");
  assertEquals(path("*"), "*");
  assertEquals(path("http://localhost/healthz"), "/healthz");
  assertEquals(path("HTTPS://localhost:9464/metrics"), "/metrics");
  assertEquals(path("http://u:p@localhost/healthz"), "/healthz");
  assertEquals(path("http://localhost/a/../healthz"), "/healthz");
  assertEquals(path("http://localhost"), "/");
  for (
    const target of [
      "ftp://x/healthz",
      "a://b/healthz",
      "http://:80/healthz",
      "metrics",
    ]
  ) {
    assertEquals(path(target), undefined, target);
  }
});
