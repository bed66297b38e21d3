/**
 * The log's two formats. `text`: the classic human lines
 * (`Connection received from HOST:PORT`), optionally after an RFC 3339
 * timestamp. `json`: one object per line, schema v2, in the common names of
 * Elastic Common Schema (ECS) and OpenTelemetry (OTel) so log pipelines
 * (Elastic, Loki, OTel collectors) read it without mapping. Keys are flat
 * dotted names (`"client.port": 51234`), which both ECS and OTel accept; the
 * ones without a common name are under `greeter.`.
 *
 * | key                                  | lines       | type      | standard | what |
 * | ------------------------------------ | ----------- | --------- | -------- | ---- |
 * | `@timestamp`                         | all         | string    | ECS      | RFC 3339, UTC, milliseconds; a connection's is when it ended |
 * | `log.level`                          | all         | string    | ECS      | `info`, `warn` (suppressed lines) or `error` |
 * | `message`                            | all         | string    | ECS      | the text line: `Connection received from HOST:PORT`, ... |
 * | `ecs.version`                        | all         | string    | ECS      | {@linkcode ECS_VERSION} |
 * | `event.kind`                         | all         | string    | ECS      | `metric` for `stats`, `event` otherwise |
 * | `event.action`                       | all         | string    | ECS      | `start`, `connection`, `suppressed`, `stats`, `stop` (v1's `event`) |
 * | `event.outcome`                      | all         | string    | ECS      | `success` or `failure` (a connection is a success when greeted) |
 * | `greeter.schema`                     | all         | number    | greeter  | {@linkcode LOG_SCHEMA_VERSION} (v1's `v`) |
 * | `event.duration`                     | connection  | integer   | ECS      | accept to close, nanoseconds (v1's `duration_ms`) |
 * | `client.address`, `client.port`      | connection  | string, integer | ECS, OTel | the client; IPv4 clients of `::` as IPv4; null on Unix sockets (v1's `remote_host`, `remote_port`); with `--log-address truncate` its network, with `hash` its token, and the port null |
 * | `server.address`, `server.port`      | connection  | string, integer | ECS, OTel | the address the client reached, or the socket's path and null (v1's `local`) |
 * | `network.peer.address`, `network.peer.port` | connection | string, integer | OTel | the direct peer, only when it is not the client (a proxy) |
 * | `network.transport`                  | connection  | string    | ECS, OTel | `tcp` or `unix` |
 * | `greeter.outcome`                    | connection  | string    | greeter  | `greeted`, `refused`, `timed_out`, `reset`, `aborted`, `error` (v1's `outcome`) |
 * | `greeter.reason`                     | connection  | string, null | greeter | why it was refused, or the error's code |
 * | `greeter.bytes`                      | connection, stats, stop | integer | greeter | bytes written (to this client; in total) |
 * | `greeter.greeting_bytes`             | connection  | integer   | greeter  | bytes there were to write |
 * | `greeter.held`                       | connection  | number    | greeter  | tarpit mode only: seconds the tarpit held the client |
 * | `greeter.early_talker`               | connection (sensed) | boolean | greeter | the client sent something during `--greet-pause` |
 * | `greeter.probe.kind`                 | connection (sensed) | string | greeter | what its first bytes looked like: `tls`, `http`, `ssh`, `rdp`, `smb`, `proxy`, `unknown`; absent if it sent nothing |
 * | `tls.client.server_name`             | connection (tls) | string | ECS   | the SNI of its ClientHello |
 * | `http.request.method`, `url.path`, `url.query`, `http.version` | connection (http) | string | ECS, OTel | its request line |
 * | `user_agent.original`                | connection (http) | string | ECS, OTel | its User-Agent header |
 * | `greeter.probe.version`              | connection (ssh) | string | greeter | its SSH version line |
 * | `greeter.capture.text`, `greeter.capture.base64`, `greeter.capture.bytes` | connection (`--capture`) | string, string, integer | greeter | the first bytes it sent: escaped (printable ASCII as is, `\\xHH` otherwise), base64, and how many |
 * | `service.version`                    | start       | string    | ECS, OTel | greeter's version |
 * | `process.pid`                        | start       | integer   | ECS      | the process id |
 * | `greeter.listen`                     | start       | string[]  | greeter  | every address listened on, `HOST:PORT` or a path |
 * | `greeter.metrics`                    | start       | string, null | greeter | where metrics are served, `HOST:PORT` |
 * | `process.uptime`                     | stats, stop | integer   | ECS      | seconds since the server started (v1's `uptime_ms`) |
 * | `greeter.accepted`, `greeter.active`, `greeter.outcomes`, `greeter.refused`, `greeter.accept_errors`, `greeter.paused_at_limit` | stats, stop | | greeter | the totals, as in v1 |
 * | `error.message`                      | stop, start-up error | string | ECS | why it stopped or could not start |
 * | `greeter.suppressed.source`          | suppressed  | string, null | greeter | an IPv4 address or an IPv6 /64; null for untracked sources |
 * | `greeter.suppressed.count`           | suppressed  | integer   | greeter  | connection lines left out, exactly |
 *
 * @module
 */
import { formatAddress, isNetAddr } from "../net/address.ts";
import { formatClientAddress } from "../net/address_privacy.ts";
import { escapeBytes, escapeControl, quote } from "../net/escape.ts";
import { unmapIpv4 } from "../net/ip.ts";
import type { AcceptErrorKind, ConnectionRecord } from "../server/options.ts";
import type { ServerStats } from "../server/stats.ts";
import { VERSION } from "../version.ts";

/**
 * The version of the JSON log schema, `greeter.schema` on every line. Within
 * one version fields are only ever added, never removed, renamed or retyped.
 */
export const LOG_SCHEMA_VERSION = 2;

/** The ECS version whose field names and types the JSON lines follow. */
export const ECS_VERSION = "9.4.0";

/** The log formats, for `--log-format`. */
export const LOG_FORMATS = ["text", "json"] as const;

/** The log formats the command line offers. */
export type LogFormat = typeof LOG_FORMATS[number];

/**
 * Whether text lines carry timestamps by default: yes when stdout is not a
 * terminal (a file, a pipe) and not journald's (which stamps lines itself and
 * sets `JOURNAL_STREAM` for the services it runs).
 *
 * @example
 * ```ts
 * import { defaultLogTimestamps } from "./log_format.ts";
 *
 * defaultLogTimestamps({
 *   isTerminal: Deno.stdout.isTerminal(),
 *   journalStream: Deno.env.get("JOURNAL_STREAM"),
 * });
 * ```
 */
export function defaultLogTimestamps(
  env: { isTerminal: boolean; journalStream?: string },
): boolean {
  return !env.isTerminal && !env.journalStream;
}

/** An event's level, words (the text line's, JSON's `message`) and fields. */
type Described = ["info" | "warn" | "error", string, Record<string, unknown>?];

/** An event of the server's own (not a connection's), for {@linkcode formatLogLine}. */
export type ServerEvent =
  & { time?: number }
  & (
    | { event: "start"; listen: Deno.Addr[]; metrics?: Deno.Addr }
    | { event: "stats"; stats: Readonly<ServerStats> }
    | { event: "stop"; stats: Readonly<ServerStats>; error?: string }
    | { event: "suppressed"; source: string | undefined; count: number }
    | { event: "reload"; error?: string }
    | {
      event: "accept_error";
      code: string;
      kind: AcceptErrorKind;
      /** How many failed: 1 with `message`, else the ones since. */
      count: number;
      message?: string;
    }
  );

/** The start of the start-up line, in both formats. */
export const LISTENING = "Server is listening for incoming connections on";

/** What each kind of failed accept means, in its line's words. */
const ACCEPT_ERROR_MEANING: Record<AcceptErrorKind, string> = {
  client: "one client's own failure; going on",
  exhausted: "out of descriptors or memory; waiting for a connection to end",
  other: "unexpected; retrying",
};

// The date and time up to the second change once a second: format them
// once and reuse them (toISOString is most of the cost of a line).
let cachedSecond = NaN;
let cachedPrefix = "";

/**
 * Formats milliseconds since the epoch as RFC 3339 in UTC with
 * milliseconds, like `Date.prototype.toISOString` but cheaper when called
 * many times a second.
 */
export function formatLogTime(ms: number): string {
  const time = Math.floor(ms);
  const second = Math.floor(time / 1000);
  if (second !== cachedSecond) {
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    cachedSecond = second;
  }
  return `${cachedPrefix}${String(time - second * 1000).padStart(3, "0")}Z`;
}

/**
 * The fields of a JSON line from `ecs.version` to `greeter.schema`:
 * constant for an action and an outcome (`stats` is a metric, the rest
 * events).
 */
function jsonMiddle(action: string, failed: boolean): string {
  return `,"ecs.version":"${ECS_VERSION}","event.kind":"${
    action === "stats" ? "metric" : "event"
  }","event.action":"${action}","event.outcome":"${
    failed ? "failure" : "success"
  }","greeter.schema":${LOG_SCHEMA_VERSION}`;
}
// Made once, for a success and a failure: the connection line adds no
// string for them.
const CONNECTION_MIDDLE = [false, true].map((f) => jsonMiddle("connection", f));

/**
 * The fields every JSON line starts with, in order, up to `greeter.schema`
 * (no closing brace): one code for the connection lines and the others.
 */
function jsonHead(
  time: number,
  level: Described[0],
  message: string,
  middle: string,
): string {
  // One template, so that it adds no more strings than the fields need.
  return `{"@timestamp":"${
    formatLogTime(time)
  }","log.level":"${level}","message":${JSON.stringify(message)}${middle}`;
}

/**
 * A JSON line of any event but a connection: the common fields, then
 * `fields` (a field whose value is undefined is left out). Its outcome is a
 * failure at level `error` and for a failed accept.
 */
function jsonLine(action: string, time: number, line: Described): string {
  const [level, message, fields = {}] = line;
  const rest = JSON.stringify(fields);
  const failed = level === "error" || action === "accept_error";
  return jsonHead(time, level, message, jsonMiddle(action, failed)) +
    (rest === "{}" ? "}" : `,${rest.slice(1)}`);
}

/** The totals of the `stats` and `stop` lines. */
function totals(stats: Readonly<ServerStats>, time: number) {
  return {
    "process.uptime": Math.floor(Math.max(0, time - stats.startTime) / 1000),
    "greeter.accepted": stats.accepted,
    "greeter.active": stats.active,
    "greeter.outcomes": stats.outcomes,
    "greeter.refused": stats.refused,
    "greeter.accept_errors": stats.acceptErrors,
    "greeter.paused_at_limit": stats.pausedAtLimit,
    "greeter.bytes": stats.bytesWritten,
  };
}

/**
 * An address's JSON fields `NAME.address` and `NAME.port`, after a comma:
 * its IP (IPv4-mapped shown as IPv4) and port, or a Unix socket's path and
 * null. Port 0 (dropped by --log-address) is null too.
 */
function jsonAddr(name: string, addr: Deno.Addr): string {
  const net = isNetAddr(addr);
  const host = net ? unmapIpv4(addr.hostname) : (addr as Deno.UnixAddr).path;
  return `,"${name}.address":${JSON.stringify(host ?? null)},"${name}.port":${
    net && addr.port ? addr.port : null
  }`;
}

/** The client as lines name it, and the proxy it came through, if any. */
function client(remoteAddr: Deno.Addr, peerAddr?: Deno.Addr): string {
  return `${formatClientAddress(remoteAddr)}${
    peerAddr ? ` (via ${formatAddress(peerAddr)})` : ""
  }`;
}

/**
 * A probe's fields: where the record has them, their text key and their
 * JSON key (`version` is `http.version` or `greeter.probe.version`).
 */
const PROBE_FIELDS = [
  ["serverName", "server_name", "tls.client.server_name"],
  ["method", "method", "http.request.method"],
  ["path", "path", "url.path"],
  ["query", "query", "url.query"],
  ["version", "version", "http.version"],
  ["userAgent", "user_agent", "user_agent.original"],
] as const;

/**
 * What was sensed of a connection, as text
 * (` early_talker=no probe=http method="GET" ...`) or as JSON fields (each
 * after a comma); "" when it was not sensed. Every value a client chose is
 * escaped.
 */
function sensed(record: ConnectionRecord, json: boolean): string {
  const { earlyTalker, probe, captured } = record;
  if (earlyTalker === undefined) return "";
  let fields = json
    ? `,"greeter.early_talker":${earlyTalker}`
    : ` early_talker=${earlyTalker ? "yes" : "no"}`;
  if (probe) {
    const { kind } = probe;
    fields += json ? `,"greeter.probe.kind":"${kind}"` : ` probe=${kind}`;
    for (const [field, text, key] of PROBE_FIELDS) {
      const value = probe[field];
      if (value === undefined) continue;
      // `version` is HTTP's, or SSH's version line (only those have one).
      const name = field === "version" && kind === "ssh"
        ? "greeter.probe.version"
        : key;
      fields += json
        ? `,"${name}":${JSON.stringify(value)}`
        : ` ${text}=${quote(value)}`;
    }
  }
  if (captured && !json) fields += ` captured="${escapeBytes(captured)}"`;
  else if (captured) {
    fields += `,"greeter.capture.text":${
      JSON.stringify(escapeBytes(captured))
    },"greeter.capture.base64":"${captured.toBase64()}","greeter.capture.bytes":${captured.length}`;
  }
  return fields;
}

/**
 * The human line of a sensed connection (`greetPause`, `capture`), logged
 * when it ends: `Connection received from HOST:PORT outcome=greeted
 * early_talker=no probe=http method=GET path="/" ... captured="..."`.
 */
export function formatTextSensedLine(record: ConnectionRecord): string {
  return `${
    formatTextConnectionLine(record.remoteAddr, record.peerAddr)
  } outcome=${record.outcome}${
    record.reason === undefined ? "" : ` reason=${escapeControl(record.reason)}`
  }${sensed(record, false)}`;
}

/**
 * Formats a `connection` line: the per-connection path, so one template
 * string, with JSON escaping only where text could need it. The record's
 * `peerAddr`, the direct peer when it is not the client (a proxy that passed
 * the client's address on), adds `network.peer.address` and `.port`.
 */
export function formatJsonConnectionLine(record: ConnectionRecord): string {
  const { remoteAddr, reason, outcome, peerAddr } = record;
  const unix = !isNetAddr(remoteAddr);
  return `${
    jsonHead(
      record.startTime + record.duration,
      outcome === "error" ? "error" : "info",
      record.earlyTalker !== undefined
        ? formatTextSensedLine(record)
        : record.held !== undefined
        ? formatTextTarpitLine(record)
        : outcome === "greeted"
        ? formatTextConnectionLine(remoteAddr, peerAddr)
        : `Connection from ${client(remoteAddr, peerAddr)} ${outcome}${
          reason === undefined ? "" : ` (${reason})`
        }`,
      CONNECTION_MIDDLE[outcome === "greeted" ? 0 : 1],
    )
  },"event.duration":${Math.round(record.duration * 1_000_000)}${
    unix
      ? ',"client.address":null,"client.port":null'
      : jsonAddr("client", remoteAddr)
  }${jsonAddr("server", record.localAddr)}${
    peerAddr ? jsonAddr("network.peer", peerAddr) : ""
  },"network.transport":"${
    unix ? "unix" : remoteAddr.transport
  }","greeter.outcome":"${outcome}","greeter.reason":${
    reason === undefined ? "null" : JSON.stringify(reason)
  },"greeter.bytes":${record.bytesWritten},"greeter.greeting_bytes":${record.greetingLength}${
    sensed(record, true)
  }${
    record.held === undefined ? "" : `,"greeter.held":${record.held / 1000}`
  }}`;
}

/** `1 connection`, `2 connections`. */
const plural = (count: number, word: string) =>
  `${count} ${word}${count === 1 ? "" : "s"}`;

/**
 * The level, the words (the text line's, the JSON `message`) and the JSON
 * fields of a server event.
 */
function describe(event: ServerEvent, now: number): Described {
  const error = "error" in event ? event.error : undefined;
  const level = error === undefined ? "info" : "error";
  switch (event.event) {
    case "start": {
      const listen = event.listen.map(formatAddress);
      return ["info", `${LISTENING} ${listen.join(", ")}`, {
        "service.version": VERSION,
        "process.pid": Deno.pid,
        "greeter.listen": listen,
        "greeter.metrics": event.metrics ? formatAddress(event.metrics) : null,
      }];
    }
    case "stats": {
      const { accepted, active } = event.stats;
      const words = `Stats: ${accepted} accepted, ${active} active`;
      return ["info", words, totals(event.stats, now)];
    }
    case "stop": {
      const { accepted, outcomes } = event.stats;
      const words = error ??
        `${plural(accepted, "connection")}, ${outcomes.greeted} greeted`;
      return [level, `Server stopped: ${words}`, {
        ...totals(event.stats, now),
        "error.message": error,
      }];
    }
    case "reload": {
      const words = error === undefined
        ? "Configuration reloaded"
        : `Reload failed, the old configuration stays: ${error}`;
      return [level, words, { "error.message": error }];
    }
    case "accept_error": {
      const { code, kind, count, message } = event;
      const failure = message === undefined
        ? `${plural(count, "more time")} with ${code}`
        : `with ${code}: ${message}`;
      const words = `Accept failed ${failure} (${ACCEPT_ERROR_MEANING[kind]})`;
      return [kind === "client" ? "info" : "warn", words, {
        "error.code": code,
        "error.message": message,
        "greeter.accept_error.kind": kind,
        "greeter.accept_error.count": count,
      }];
    }
    case "suppressed": {
      const { source, count } = event;
      return ["warn", formatTextSuppressedLine(source, count), {
        "greeter.suppressed.source": source ?? null,
        "greeter.suppressed.count": count,
      }];
    }
  }
}

/**
 * Formats a server event in `format`: a JSON line, or its words as a text
 * line (after a timestamp when `options.timestamps` is set).
 */
export function formatLogLine(
  event: ServerEvent,
  format: LogFormat,
  options?: { timestamps?: boolean },
): string {
  const now = event.time ?? Date.now();
  const line = describe(event, now);
  return format === "json"
    ? jsonLine(event.event, now, line)
    : formatTextLine(line[1], options, now);
}

/**
 * Formats a failure to start (bad TLS files, a busy port) as a JSON line, for
 * `--log-format json`. `message` is the text the CLI would print.
 */
export function formatJsonErrorLine(message: string, time = Date.now()) {
  const fields = { "error.message": message };
  return jsonLine("start", time, ["error", message, fields]);
}

/**
 * Formats a warning (a permission that a feature lacks, a log that cannot
 * be written) as a JSON line, for `--log-format json`: every line greeter
 * writes is then JSON. `message` is the text the CLI would print.
 */
export function formatJsonWarningLine(message: string, time = Date.now()) {
  return jsonLine("warning", time, ["warn", message]);
}

/**
 * A text line: `message`, after an RFC 3339 timestamp when
 * `options.timestamps` is set (`2025-01-02T03:04:05.678Z Server stopped`).
 */
export function formatTextLine(
  message: string,
  options?: { timestamps?: boolean },
  time?: number,
): string {
  return options?.timestamps
    ? `${formatLogTime(time ?? Date.now())} ${message}`
    : message;
}

/** The human line for an admitted client: `Connection received from HOST:PORT`. */
export function formatTextConnectionLine(
  remoteAddr: Deno.Addr,
  peerAddr?: Deno.Addr,
): string {
  return `Connection received from ${client(remoteAddr, peerAddr)}`;
}

/**
 * The human line for a client the tarpit let go:
 * `Tarpit released 192.0.2.1:4000 after 12.5s, 320 bytes sent (reset)`.
 */
export function formatTextTarpitLine(record: ConnectionRecord): string {
  return `Tarpit released ${client(record.remoteAddr, record.peerAddr)} after ${
    ((record.held ?? record.duration) / 1000).toFixed(1)
  }s, ${record.bytesWritten} bytes sent (${record.outcome}${
    record.reason === undefined ? "" : `: ${record.reason}`
  })`;
}

/**
 * The human line for suppressed connection lines:
 * `15 more connections from 192.0.2.1 suppressed`.
 */
export function formatTextSuppressedLine(
  source: string | undefined,
  count: number,
): string {
  return `${plural(count, "more connection")} from ${
    source ?? "other sources"
  } suppressed`;
}
