/**
 * The HTTP endpoint behind `--metrics`: the least HTTP/1.1 that answers
 * `GET /metrics` and `GET /healthz`, on the greeting server's own core, so
 * that nothing the metrics port meets can hurt the greeting service.
 *
 * - It runs on the greeting server's core ({@linkcode startServerCore}): a
 *   failed accept is counted by code (EMFILE and the like wait for a
 *   descriptor or a back-off of at most one second), never thrown.
 * - At most `maxConnections` connections are open at once (the
 *   {@linkcode createPlaces} cap). When the last place is taken, the oldest
 *   connection still reading its request head is closed, so a place is
 *   always free: one peer holding idle connections cannot starve a probe.
 * - Each connection has one deadline, `timeout` after it was accepted, for
 *   its whole life: reading the request head, answering, closing. The
 *   {@linkcode createConnectionTable} sweep enforces it with one timer, so a
 *   client that sends nothing, or one byte at a time, is cut at the deadline.
 * - One request per connection, then `Connection: close`: no keep-alive, so
 *   an idle connection is only ever one that has not sent its head yet.
 * - Every failure of a connection is counted in
 *   `greeter_metrics_http_errors_total{reason}` and never thrown; a failure
 *   of the listener itself stops the endpoint (see
 *   {@linkcode MetricsServer.failure}) and rejects nothing.
 *
 * @module
 */
import { type Slot, writeAll } from "../server/connection_table.ts";
import { listenOnDescriptor } from "../server/descriptor_listener.ts";
import {
  type ServerCore,
  startServerCore,
} from "../server/connection_server.ts";
import { type ServerStats, zeroCounts } from "../server/stats.ts";
import { checkInteger, MAX_COUNT } from "../server/options.ts";
import { MAX_TIMER_MS } from "../server/wait.ts";
import type { Health } from "./health.ts";
import { expose } from "./prometheus.ts";

/** The Content-Type of the Prometheus text exposition format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
/** The largest request head (request line and headers) read, in bytes. */
export const MAX_HEAD_BYTES = 8 * 1024;

/**
 * Why a connection to the metrics endpoint failed:
 * - `bad_request`: the request head is not HTTP/1.x (answered 400);
 * - `header_too_large`: no end of the head in {@linkcode MAX_HEAD_BYTES}
 *   (answered 431);
 * - `timeout`: the connection outlived its deadline and was closed;
 * - `closed_early`: the client closed before its request head was complete;
 * - `reset`: reading or writing failed (the client reset, or went away);
 * - `evicted`: closed before its head was complete, to make room for a
 *   newer connection when every place was taken;
 * - `internal`: the metrics or the health check threw (answered 500).
 */
export type MetricsHttpError = typeof METRICS_HTTP_ERRORS[number];

/** The reasons, in a stable order (for the metrics). */
export const METRICS_HTTP_ERRORS = [
  "bad_request",
  "header_too_large",
  "timeout",
  "closed_early",
  "reset",
  "evicted",
  "internal",
] as const;

/** The counters of the metrics endpoint itself. */
export interface MetricsServerStats {
  /**
   * The listener's counters, as the greeting server keeps them: accepted,
   * open now (`active`), failed accepts by code, pauses at the cap.
   */
  readonly listener: ServerStats;
  /** Responses written in full, by status code. */
  readonly responses: Record<string, number>;
  /** Connections that failed, by reason. */
  readonly errors: Record<MetricsHttpError, number>;
}

/** Options for {@linkcode serveMetrics}. */
export interface ServeMetricsOptions {
  /** The address to listen on. */
  hostname: string;
  /** The TCP port; 0 picks a free one. */
  port: number;
  /**
   * A listening socket already open (one systemd passed) to serve on
   * instead of `hostname` and `port`.
   */
  fd?: number;
  /**
   * Makes the body of `GET /metrics`; the endpoint appends its own counters
   * (`greeter_metrics_*`, see {@linkcode renderMetricsServerStats}), or a
   * promise of it (counters brought up to date first). If it throws or
   * rejects, the answer is 500.
   */
  render: () => string | Promise<string>;
  /**
   * Whether the server can greet now: `GET /healthz` answers 200 `ok`, else
   * 503 with the reason (see `createHealthCheck`). If it throws or rejects,
   * the answer is 500.
   */
  health: () => Health | Promise<Health>;
  /**
   * How many connections may be open at once; more wait in the listen
   * queue.
   *
   * @default {64}
   */
  maxConnections?: number;
  /**
   * The longest life of a connection, in ms, from accept to close: the
   * request head and the whole response must fit in it.
   *
   * @default {5000}
   */
  timeout?: number;
  /** Aborting it stops the endpoint. */
  signal?: AbortSignal;
}

/** A running metrics endpoint, as returned by {@linkcode serveMetrics}. */
export type MetricsServer = ReturnType<typeof serveMetrics>;

/** Each status's reason phrase, and the failure it counts, if any. */
const STATUS: Readonly<Record<number, readonly [string, MetricsHttpError?]>> = {
  200: ["OK"],
  400: ["Bad Request", "bad_request"],
  404: ["Not Found"],
  405: ["Method Not Allowed"],
  431: ["Request Header Fields Too Large", "header_too_large"],
  500: ["Internal Server Error", "internal"],
  503: ["Service Unavailable"],
};
/** The longest wait at shutdown for the requests in progress, in ms. */
const DRAIN_TIMEOUT = 1_000;
// A token (RFC 9110 5.6.2): methods and header names.
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
// The method, then the request target.
const REQUEST_LINE = new RegExp(`^(${TOKEN}) (\\S+) HTTP/1\\.[01]$`);
const HEADER_LINE = new RegExp(`^${TOKEN}:`);
// The blank line that ends a request head; a bare LF ends a line too (RFC
// 9112 2.2).
const HEAD_END = /\n\r?\n/g;
const encoder = new TextEncoder();
// Bytes a client sends after its head land here; shared, never read.
const scratch = new Uint8Array(4 * 1024);

/**
 * The request's method and path, or undefined if the head is not HTTP/1.x:
 * a request line, then header lines that each have a name.
 */
export function parseRequestHead(head: string) {
  const [first, ...lines] = head.split(/\r?\n/);
  const [, method, target = ""] = REQUEST_LINE.exec(first) ?? [];
  // A line folded onto the one before (obs-fold) has no name: refused too.
  if (!lines.every((line) => line === "" || HEADER_LINE.test(line))) return;
  // The path of origin-form (`/metrics?x`), `*`, or an http(s)
  // absolute-form (`http://host/metrics`, dot segments resolved as `URL`
  // does); none for any other target.
  const path = target === "*" || target.startsWith("/")
    ? /^[^?#]*/.exec(target)![0]
    : /^https?:\/\//i.test(target)
    ? URL.parse(target)?.pathname
    : undefined;
  return path === undefined ? undefined : { method, path };
}

/** An answer: its status and its bytes. */
type Answer = [number, Uint8Array];

/** A whole response; no body after a HEAD request. */
function response(
  status: number,
  body: string,
  bare = false,
  type = "text/plain; charset=utf-8",
): Answer {
  const allow = status === 405 ? "Allow: GET, HEAD\r\n" : "";
  const head =
    `HTTP/1.1 ${status} ${STATUS[status][0]}\r\nContent-Type: ${type}\r\n` +
    `Content-Length: ${encoder.encode(body).length}\r\n` +
    `Cache-Control: no-store\r\nConnection: close\r\n${allow}\r\n`;
  return [status, encoder.encode(bare ? head : head + body)];
}

/**
 * Renders the endpoint's own counters in the text format (0.0.4), every
 * family prefixed `greeter_metrics_`. They are kept apart from the
 * greeting listener's `greeter_accept_errors_total` and the like, whose
 * series stay as they were.
 */
export function renderMetricsServerStats(stats: MetricsServerStats): string {
  const acceptErrors = ["code", stats.listener.acceptErrors] as const;
  const responses = ["code", stats.responses] as const;
  const errors = ["reason", stats.errors, METRICS_HTTP_ERRORS] as const;
  return expose`
  counter greeter_metrics_connections_accepted_total ${stats.listener.accepted} Connections accepted by the metrics endpoint.
  gauge greeter_metrics_connections_active ${stats.listener.active} Connections to the metrics endpoint open now.
  counter greeter_metrics_accept_errors_total ${acceptErrors} Failed accepts of the metrics endpoint, by error code; it backed off and went on.
  counter greeter_metrics_accept_paused_total ${stats.listener.pausedAtLimit} Times the metrics endpoint paused accepting at its connection cap.
  counter greeter_metrics_http_responses_total ${responses} Responses of the metrics endpoint written in full, by status code.
  counter greeter_metrics_http_errors_total ${errors} Connections to the metrics endpoint that failed, by reason.
`;
}

/**
 * The answer to a head: 400 for one that is not HTTP/1.x, 404 for another
 * path, 405 for another method, 500 when render or health throws.
 */
async function answer(
  options: ServeMetricsOptions,
  own: MetricsServerStats,
  head: string,
): Promise<Answer> {
  const { method, path } = parseRequestHead(head) ?? {};
  if (!method) return response(400, "bad request\n");
  const bare = method === "HEAD";
  if (path !== "/metrics" && path !== "/healthz") {
    return response(404, "not found: try /metrics or /healthz\n", bare);
  }
  if (method !== "GET" && !bare) {
    return response(405, "method not allowed: use GET\n");
  }
  try {
    if (path === "/metrics") {
      const body = await options.render() + renderMetricsServerStats(own);
      return response(200, body, bare, METRICS_CONTENT_TYPE);
    }
    const { ok, reason } = await options.health();
    return response(ok ? 200 : 503, `${reason}\n`, bare);
  } catch {
    return response(500, "internal error\n", bare);
  }
}

/**
 * Reads one request head, answers it, closes. Returns why it failed, or
 * undefined; never throws.
 */
async function exchange(
  options: ServeMetricsOptions,
  { core, own }: { core: ServerCore; own: MetricsServerStats },
  slot: Slot,
): Promise<MetricsHttpError | undefined> {
  // Released by the table: the deadline passed, or eviction (which says so
  // in the slot's reason) or shutdown cut it.
  const cut = () => slot.reason === "evicted" ? "evicted" : "timeout";
  const buffer = new Uint8Array(MAX_HEAD_BYTES);
  let head = "";
  let end: RegExpExecArray | null = null;
  try {
    while (!end && head.length < buffer.length) {
      const n = await slot.conn.read(buffer.subarray(head.length));
      if (n === null) return slot.list ? "closed_early" : cut();
      const chunk = buffer.subarray(head.length, head.length + n);
      // From the last bytes read before: the blank line can straddle reads.
      HEAD_END.lastIndex = Math.max(0, head.length - 2);
      // Latin-1, byte for byte: the head is ASCII, and this cannot fail.
      head += String.fromCharCode(...chunk);
      end = HEAD_END.exec(head);
    }
  } catch {
    return slot.list ? "reset" : cut();
  }
  // No longer idle: out of the list that eviction takes from.
  core.table.linger(slot);
  const [status, bytes] = end
    ? await answer(options, own, head.slice(0, end.index + end[0].length))
    : response(431, "request head too large\n");
  // The failure its status counts, if any (400, 431, 500).
  const failed = STATUS[status][1];
  let written = false;
  try {
    await writeAll(slot.conn, bytes);
    written = true;
    own.responses[status] = (own.responses[status] ?? 0) + 1;
    // Close our side, then read what the client still sends until it
    // closes (bounded by the deadline): closing with unread bytes would
    // reset the connection and could destroy the response in flight.
    await slot.conn.closeWrite();
    while (slot.list && await slot.conn.read(scratch) !== null) {
      // Discarded.
    }
  } catch {
    // Once the response is written, a reset or the deadline changes
    // nothing for the client.
    if (!written) return failed ?? (slot.list ? "reset" : "timeout");
  }
  return failed;
}

/**
 * Serves Prometheus metrics over HTTP/1.1: `GET /metrics` (text format
 * 0.0.4), `GET /healthz` (200 `ok` while the server can greet, 503 and the
 * reason while it cannot), `HEAD` of either, 404 for any other path, 405
 * (with `Allow`) for any other method, 400 for a head that is not HTTP/1.x,
 * 431 for a head over 8 KiB. Every answer closes its connection.
 *
 * @throws {TypeError} For `maxConnections` or `timeout` of the wrong type.
 * @throws {RangeError} For `maxConnections` below 1 or `timeout` below 1 ms.
 * @throws {Deno.errors.AddrInUse} (and the other errors of `Deno.listen`)
 * synchronously, when the address cannot be listened on.
 */
export function serveMetrics(options: ServeMetricsOptions) {
  const { maxConnections = 64, timeout = 5_000, signal } = options;
  checkInteger("maxConnections", maxConnections, 1, MAX_COUNT);
  checkInteger("timeout", timeout, 1, MAX_TIMER_MS);
  const listener = options.fd === undefined
    ? Deno.listen({ hostname: options.hostname, port: options.port })
    : listenOnDescriptor(options.fd);
  const errors = zeroCounts(METRICS_HTTP_ERRORS);
  const started = startServerCore(
    {
      listeners: [{ listener }],
      maxConnections,
      timeout,
      linger: timeout,
      drainTimeout: Math.min(timeout, DRAIN_TIMEOUT),
      signal,
    },
    (core) => ({ core, own: { listener: core.stats, responses: {}, errors } }),
    async (endpoint, conn) => {
      const { core } = endpoint;
      core.stats.accepted++;
      const slot = core.table.add(conn);
      // Every place taken: the oldest connection still reading its head
      // makes room, so the next client (a probe) is never kept waiting.
      const oldest = core.table.serving.head;
      if (core.places.free === 0 && oldest && oldest !== slot) {
        oldest.reason = "evicted";
        core.table.release(oldest);
      }
      core.inFlight++;
      try {
        const failed = await exchange(options, endpoint, slot);
        // Connections cut by shutdown are not failures.
        if (failed && !(failed === "timeout" && core.closing)) errors[failed]++;
      } catch {
        // exchange() does not throw; this keeps a surprise from being unhandled.
        errors.internal++;
      } finally {
        core.table.release(slot);
        core.handled();
      }
    },
  );
  // The endpoint never rejects: a failed listener is kept in `failure`.
  const keep = (error: unknown) => void (server.failure = error);
  const shutdown = () => started.shutdown().catch(keep);
  const server = {
    /** The address it listens on, with the real port if 0 was asked. */
    addr: listener.addr as Deno.NetAddr,
    /** Its own counters. */
    stats: started.state.own as Readonly<MetricsServerStats>,
    /**
     * The listener's error if it failed outside of shutdown (the endpoint
     * then stopped by itself); undefined otherwise.
     */
    failure: undefined as unknown,
    /** Settles once it has stopped; never rejects. */
    finished: started.finished.catch(keep),
    /**
     * Stops accepting, gives the requests in progress a moment (at most one
     * second, or the timeout if shorter), then closes what is left. Never
     * rejects; safe to call more than once.
     */
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
  return server;
}
