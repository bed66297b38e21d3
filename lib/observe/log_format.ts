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
import { formatAddress } from "../net/address.ts";
import { formatClientAddress } from "../net/address_privacy.ts";
import { escapeBytes, escapeControl, quote } from "./escape.ts";
import type { RefuseReason } from "../server/admission.ts";
import { unmapIpv4 } from "../net/ip.ts";
import type { ConnectionRecord } from "../server/options.ts";
import type { ConnectionOutcome, ServerStats } from "../server/stats.ts";
import { VERSION } from "../version.ts";

/**
 * The version of the JSON log schema, `greeter.schema` on every line. Within
 * one version fields are only ever added, never removed, renamed or retyped.
 */
export const LOG_SCHEMA_VERSION = 2;

/** The ECS version whose field names and types the JSON lines follow. */
export const ECS_VERSION = "9.4.0";

/** The log formats the command line offers. */
export type LogFormat = "text" | "json";

/** The log formats, for `--log-format`. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/** How text lines are written. */
export interface TextLogOptions {
  /** Start each line with an RFC 3339 UTC timestamp and a space. */
  timestamps: boolean;
}

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

/** `log.level` values. */
export type LogLevel = "info" | "warn" | "error";

/** Fields every JSON log line starts with. */
export interface LogLineBase {
  /** When it happened: RFC 3339, UTC, milliseconds (`2025-01-02T03:04:05.678Z`). */
  "@timestamp": string;
  /** How much it matters. */
  "log.level": LogLevel;
  /** The line in words, as the text format has it. */
  message: string;
  /** {@linkcode ECS_VERSION}. */
  "ecs.version": string;
  /** `metric` for totals, `event` otherwise. */
  "event.kind": "event" | "metric";
  /** What happened; says which other fields the line has. */
  "event.action":
    | "start"
    | "connection"
    | "stop"
    | "suppressed"
    | "stats"
    | "accept_error"
    | "reload"
    | "warning";
  /** ECS's verdict: greeter's own is `greeter.outcome`. */
  "event.outcome": "success" | "failure";
  /** The schema version, {@linkcode LOG_SCHEMA_VERSION}. */
  "greeter.schema": number;
}

/** `start`: the server is listening. */
export interface StartLogLine extends LogLineBase {
  /** Always `start`. */
  "event.action": "start";
  /** greeter's version. */
  "service.version": string;
  /** The process id. */
  "process.pid": number;
  /** Every address listened on, as `HOST:PORT` (`[::]:8080` for IPv6). */
  "greeter.listen": string[];
  /** Where metrics are served, as `HOST:PORT`, or null. */
  "greeter.metrics": string | null;
}

/** `connection`: one connection ended. `@timestamp` is when it ended. */
export interface ConnectionLogLine extends LogLineBase {
  /** Always `connection`. */
  "event.action": "connection";
  /** From accept to close, in nanoseconds. */
  "event.duration": number;
  /** The client's IP address, without brackets; null on a Unix socket. */
  "client.address": string | null;
  /** The client's port; null on a Unix socket. */
  "client.port": number | null;
  /** The address the client reached (IP address or socket path). */
  "server.address": string;
  /** The port the client reached; null on a Unix socket. */
  "server.port": number | null;
  /** The direct peer, when it is not the client (behind a proxy). */
  "network.peer.address"?: string;
  /** The direct peer's port, when it is not the client. */
  "network.peer.port"?: number;
  /** `tcp` or `unix`. */
  "network.transport": string;
  /** How it ended. */
  "greeter.outcome": ConnectionOutcome;
  /** Why it was refused, or the error's code; null otherwise. */
  "greeter.reason": string | null;
  /** Bytes written to the client. */
  "greeter.bytes": number;
  /** Bytes there were to write (the greeting or the refuse message). */
  "greeter.greeting_bytes": number;
  /** Sensed: whether it talked during the greeting pause. */
  "greeter.early_talker"?: boolean;
  /** Sensed: what its first bytes looked like. */
  "greeter.probe.kind"?: string;
  /** A TLS client's SNI. */
  "tls.client.server_name"?: string;
  /** An HTTP client's method. */
  "http.request.method"?: string;
  /** An HTTP client's path. */
  "url.path"?: string;
  /** An HTTP client's query, without `?`. */
  "url.query"?: string;
  /** An HTTP client's protocol version. */
  "http.version"?: string;
  /** An HTTP client's User-Agent. */
  "user_agent.original"?: string;
  /** An SSH client's version line. */
  "greeter.probe.version"?: string;
  /** Captured: the first bytes it sent, escaped. */
  "greeter.capture.text"?: string;
  /** Captured: the same bytes, base64. */
  "greeter.capture.base64"?: string;
  /** Captured: how many bytes. */
  "greeter.capture.bytes"?: number;
}

/** Totals shared by the `stats` and `stop` lines. */
export interface TotalsLogFields {
  /** Whole seconds since the server started. */
  "process.uptime": number;
  /** Connections accepted. */
  "greeter.accepted": number;
  /** Connections open at `@timestamp`. */
  "greeter.active": number;
  /** Ended connections by outcome; every outcome, zeros included. */
  "greeter.outcomes": Record<ConnectionOutcome, number>;
  /** Refused connections by reason; every reason, zeros included. */
  "greeter.refused": Record<RefuseReason, number>;
  /** Failed accepts by error code (`EMFILE`); only codes seen. */
  "greeter.accept_errors": Record<string, number>;
  /** Times accepting paused at the connection cap. */
  "greeter.paused_at_limit": number;
  /** Bytes written to clients. */
  "greeter.bytes": number;
}

/** `stats`: the totals so far (on SIGUSR2). */
export interface StatsLogLine extends LogLineBase, TotalsLogFields {
  /** Always `stats`. */
  "event.action": "stats";
}

/** `stop`: the server has shut down; the final totals. */
export interface StopLogLine extends LogLineBase, TotalsLogFields {
  /** Always `stop`. */
  "event.action": "stop";
  /** Why it stopped on its own (a listener failure), if it did. */
  "error.message"?: string;
}

/** `suppressed`: connection lines left out under a flood, counted exactly. */
export interface SuppressedLogLine extends LogLineBase {
  /** Always `suppressed`. */
  "event.action": "suppressed";
  /**
   * The source whose lines were left out (an IPv4 address or an IPv6 /64,
   * `2001:db8:0:1::/64`); null for sources not tracked one by one.
   */
  "greeter.suppressed.source": string | null;
  /** How many connection lines were left out since the last such line. */
  "greeter.suppressed.count": number;
}

/** A start-up failure, for {@linkcode formatJsonErrorLine}. */
export interface ErrorLogLine extends LogLineBase {
  /** Always `start`: the server did not start. */
  "event.action": "start";
  /** Always `failure`. */
  "event.outcome": "failure";
  /** What went wrong, as the text line says it. */
  "error.message": string;
}

/** A warning about greeter's environment, for {@linkcode formatJsonWarningLine}. */
export interface WarningLogLine extends LogLineBase {
  /** Always `warning`. */
  "event.action": "warning";
}

/**
 * `accept_error`: accepting failed; the first of a code in an interval has
 * the error's message, later ones are summed up with a count.
 */
export interface AcceptErrorLogLine extends LogLineBase {
  /** Always `accept_error`. */
  "event.action": "accept_error";
  /** The errno name, such as `ENOTCONN` or `EMFILE`. */
  "error.code": string;
  /** The error's message, on the first line of a code in an interval. */
  "error.message"?: string;
  /** `client`, `exhausted` or `other`: what the server does about it. */
  "greeter.accept_error.kind": string;
  /** How many accepts failed with this code, exactly. */
  "greeter.accept_error.count": number;
}

/** `reload`: SIGHUP re-read the configuration, or could not. */
export interface ReloadLogLine extends LogLineBase {
  /** Always `reload`. */
  "event.action": "reload";
  /** Why the old configuration stays, when the reload failed. */
  "error.message"?: string;
}

/** Any JSON log line. */
export type LogLine =
  | AcceptErrorLogLine
  | ReloadLogLine
  | StartLogLine
  | ConnectionLogLine
  | StatsLogLine
  | StopLogLine
  | SuppressedLogLine
  | ErrorLogLine;

/** What {@linkcode formatJsonLogLine} formats. `time` defaults to now. */
export type LogEvent =
  | {
    event: "start";
    listen: Deno.Addr[];
    metrics?: Deno.Addr;
    time?: number;
  }
  | { event: "connection"; record: ConnectionRecord }
  | { event: "stats"; stats: Readonly<ServerStats>; time?: number }
  | {
    event: "stop";
    stats: Readonly<ServerStats>;
    error?: string;
    time?: number;
  }
  | {
    event: "suppressed";
    source: string | undefined;
    count: number;
    time?: number;
  }
  | {
    event: "accept_error";
    code: string;
    kind: string;
    count: number;
    /** The line for people (the text format's). */
    text: string;
    message?: string;
    time?: number;
  }
  | { event: "reload"; error?: string; time?: number };

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
  const milli = time - second * 1000;
  return cachedPrefix + (milli < 10 ? "00" : milli < 100 ? "0" : "") + milli +
    "Z";
}

/** The fields every line starts with, in order. */
function baseFields(
  time: number,
  level: LogLevel,
  message: string,
  kind: "event" | "metric",
  action: LogLineBase["event.action"],
  outcome: "success" | "failure",
): LogLineBase {
  return {
    "@timestamp": formatLogTime(time),
    "log.level": level,
    message,
    "ecs.version": ECS_VERSION,
    "event.kind": kind,
    "event.action": action,
    "event.outcome": outcome,
    "greeter.schema": LOG_SCHEMA_VERSION,
  };
}

function totals(stats: Readonly<ServerStats>, time: number): TotalsLogFields {
  return {
    "process.uptime": Math.floor(Math.max(0, time - stats.startTime) / 1000),
    "greeter.accepted": stats.accepted,
    "greeter.active": stats.active,
    "greeter.outcomes": { ...stats.outcomes },
    "greeter.refused": { ...stats.refused },
    "greeter.accept_errors": { ...stats.acceptErrors },
    "greeter.paused_at_limit": stats.pausedAtLimit,
    "greeter.bytes": stats.bytesWritten,
  };
}

// The JSON text of an address's IP (IPv4-mapped shown as IPv4) and port, or
// of a Unix socket's path and a null port.
function jsonHost(addr: Deno.Addr): string {
  return addr.transport === "tcp" || addr.transport === "udp"
    ? JSON.stringify(unmapIpv4(addr.hostname))
    : "path" in addr
    ? JSON.stringify(addr.path)
    : "null";
}
function jsonPort(addr: Deno.Addr): string | number {
  // Port 0: dropped by --log-address.
  return (addr.transport === "tcp" || addr.transport === "udp") && addr.port
    ? addr.port
    : "null";
}

/** The JSON fields of a sensed record (after a comma), or "". */
function sensedFields(record: ConnectionRecord): string {
  if (record.earlyTalker === undefined) return "";
  let fields = `,"greeter.early_talker":${record.earlyTalker}`;
  const probe = record.probe;
  if (probe) {
    fields += `,"greeter.probe.kind":"${probe.kind}"`;
    const add = (key: string, value: string | undefined) => {
      if (value !== undefined) fields += `,"${key}":${JSON.stringify(value)}`;
    };
    add("tls.client.server_name", probe.serverName);
    add("http.request.method", probe.method);
    add("url.path", probe.path);
    add("url.query", probe.query);
    if (probe.kind === "http") add("http.version", probe.version);
    add("user_agent.original", probe.userAgent);
    if (probe.kind === "ssh") add("greeter.probe.version", probe.version);
  }
  const captured = record.captured;
  if (captured) {
    let binary = "";
    for (const byte of captured) binary += String.fromCharCode(byte);
    fields += `,"greeter.capture.text":${
      JSON.stringify(escapeBytes(captured))
    },"greeter.capture.base64":"${
      btoa(binary)
    }","greeter.capture.bytes":${captured.length}`;
  }
  return fields;
}

/**
 * The human line of a sensed connection (`greetPause`, `capture`), logged
 * when it ends: `Connection received from HOST:PORT outcome=greeted
 * early_talker=no probe=http method=GET path="/" ... captured="..."`. Every
 * value a client chose is escaped: one line, no raw control byte.
 */
export function formatTextSensedLine(
  record: ConnectionRecord,
  options?: TextLogOptions,
): string {
  const { peerAddr, probe, captured, reason } = record;
  let line = `Connection received from ${
    formatClientAddress(record.remoteAddr)
  }${
    peerAddr ? ` (via ${formatAddress(peerAddr)})` : ""
  } outcome=${record.outcome}${
    reason === undefined ? "" : ` reason=${escapeControl(reason)}`
  }${
    record.earlyTalker === undefined
      ? ""
      : ` early_talker=${record.earlyTalker ? "yes" : "no"}`
  }`;
  if (probe) {
    line += ` probe=${probe.kind}`;
    const add = (key: string, value: string | undefined) => {
      if (value !== undefined) line += ` ${key}=${quote(value)}`;
    };
    add("server_name", probe.serverName);
    add("method", probe.method);
    add("path", probe.path);
    add("query", probe.query);
    add("version", probe.version);
    add("user_agent", probe.userAgent);
  }
  if (captured) line += ` captured="${escapeBytes(captured)}"`;
  return options?.timestamps ? formatTextLine(line, options) : line;
}

/**
 * Formats a `connection` line: the per-connection path, so one template
 * string, with JSON escaping only where text could need it. `peerAddr` is
 * the direct peer when it is not the client (a proxy that passed the
 * client's address on); it adds `network.peer.address` and `.port`.
 */
export function formatJsonConnectionLine(
  record: ConnectionRecord,
  peerAddr?: Deno.Addr,
): string {
  const { remoteAddr, localAddr, reason, outcome } = record;
  const unix = remoteAddr.transport !== "tcp" &&
    remoteAddr.transport !== "udp";
  const peer = peerAddr
    ? `,"network.peer.address":${jsonHost(peerAddr)},"network.peer.port":${
      jsonPort(peerAddr)
    }`
    : "";
  return `{"@timestamp":"${
    formatLogTime(record.startTime + record.duration)
  }","log.level":"${outcome === "error" ? "error" : "info"}","message":${
    JSON.stringify(
      record.earlyTalker !== undefined
        ? formatTextSensedLine(record)
        : record.held !== undefined
        ? formatTextTarpitLine(record)
        : outcome === "greeted"
        ? formatTextConnectionLine(remoteAddr, undefined, peerAddr)
        : `Connection from ${formatClientAddress(remoteAddr)}${
          peerAddr ? ` (via ${formatAddress(peerAddr)})` : ""
        } ${outcome}${reason === undefined ? "" : ` (${reason})`}`,
    )
  },"ecs.version":"${ECS_VERSION}","event.kind":"event",` +
    `"event.action":"connection","event.outcome":"${
      outcome === "greeted" ? "success" : "failure"
    }","greeter.schema":${LOG_SCHEMA_VERSION},"event.duration":${
      Math.round(record.duration * 1_000_000)
    },"client.address":${unix ? "null" : jsonHost(remoteAddr)},` +
    `"client.port":${unix ? "null" : jsonPort(remoteAddr)},"server.address":${
      jsonHost(localAddr)
    },"server.port":${jsonPort(localAddr)}${peer},"network.transport":"${
      unix ? "unix" : remoteAddr.transport
    }","greeter.outcome":"${outcome}","greeter.reason":${
      reason === undefined ? "null" : JSON.stringify(reason)
    },"greeter.bytes":${record.bytesWritten},"greeter.greeting_bytes":${record.greetingLength}${
      sensedFields(record)
    }${
      record.held === undefined ? "" : `,"greeter.held":${record.held / 1000}`
    }}`;
}

/** Builds the JSON log line of any event but a connection, as an object. */
function toLogLine(
  event: Exclude<LogEvent, { event: "connection" }>,
): LogLine {
  const now = event.time ?? Date.now();
  switch (event.event) {
    case "start": {
      const listen = event.listen.map(formatAddress);
      return {
        ...baseFields(
          now,
          "info",
          `Server is listening for incoming connections on ${
            listen.join(", ")
          }`,
          "event",
          "start",
          "success",
        ),
        "event.action": "start",
        "service.version": VERSION,
        "process.pid": Deno.pid,
        "greeter.listen": listen,
        "greeter.metrics": event.metrics ? formatAddress(event.metrics) : null,
      };
    }
    case "stats":
      return {
        ...baseFields(
          now,
          "info",
          `Stats: ${event.stats.accepted} accepted, ${event.stats.active} active`,
          "metric",
          "stats",
          "success",
        ),
        "event.action": "stats",
        ...totals(event.stats, now),
      };
    case "stop": {
      const { stats, error } = event;
      return {
        ...baseFields(
          now,
          error === undefined ? "info" : "error",
          error === undefined
            ? `Server stopped: ${stats.accepted} connection${
              stats.accepted === 1 ? "" : "s"
            }, ${stats.outcomes.greeted} greeted`
            : `Server stopped: ${error}`,
          "event",
          "stop",
          error === undefined ? "success" : "failure",
        ),
        "event.action": "stop",
        ...totals(stats, now),
        ...(error === undefined ? {} : { "error.message": error }),
      };
    }
    case "accept_error":
      return {
        ...baseFields(
          now,
          event.kind === "client" ? "info" : "warn",
          event.text,
          "event",
          "accept_error",
          "failure",
        ),
        "event.action": "accept_error",
        "error.code": event.code,
        ...(event.message === undefined
          ? {}
          : { "error.message": event.message }),
        "greeter.accept_error.kind": event.kind,
        "greeter.accept_error.count": event.count,
      };
    case "reload":
      return {
        ...baseFields(
          now,
          event.error === undefined ? "info" : "error",
          event.error === undefined
            ? "Configuration reloaded"
            : `Reload failed, the old configuration stays: ${event.error}`,
          "event",
          "reload",
          event.error === undefined ? "success" : "failure",
        ),
        "event.action": "reload",
        ...(event.error === undefined ? {} : { "error.message": event.error }),
      };
    case "suppressed":
      return {
        ...baseFields(
          now,
          "warn",
          formatTextSuppressedLine(event.source, event.count),
          "event",
          "suppressed",
          "success",
        ),
        "event.action": "suppressed",
        "greeter.suppressed.source": event.source ?? null,
        "greeter.suppressed.count": event.count,
      };
  }
}

/**
 * Formats one event as one line of JSON (without the newline), following
 * the schema of {@linkcode LogLine}: the common fields first.
 */
export function formatJsonLogLine(event: LogEvent): string {
  return event.event === "connection"
    ? formatJsonConnectionLine(event.record)
    : JSON.stringify(toLogLine(event));
}

/**
 * Formats a failure to start (bad TLS files, a busy port) as a JSON line, for
 * `--log-format json`. `message` is the text the CLI would print.
 */
export function formatJsonErrorLine(
  message: string,
  time: number = Date.now(),
): string {
  const line: ErrorLogLine = {
    ...baseFields(time, "error", message, "event", "start", "failure"),
    "event.action": "start",
    "event.outcome": "failure",
    "error.message": message,
  };
  return JSON.stringify(line);
}

/**
 * Formats a warning (a permission that a feature lacks, a log that cannot
 * be written) as a JSON line, for `--log-format json`: every line greeter
 * writes is then JSON. `message` is the text the CLI would print.
 */
export function formatJsonWarningLine(
  message: string,
  time: number = Date.now(),
): string {
  const line: WarningLogLine = {
    ...baseFields(time, "warn", message, "event", "warning", "success"),
    "event.action": "warning",
  };
  return JSON.stringify(line);
}

/**
 * A text line: `message`, after an RFC 3339 timestamp when
 * `options.timestamps` is set (`2025-01-02T03:04:05.678Z Server stopped`).
 */
export function formatTextLine(
  message: string,
  options?: TextLogOptions,
  time?: number,
): string {
  return options?.timestamps
    ? `${formatLogTime(time ?? Date.now())} ${message}`
    : message;
}

/** The human line for an admitted client: `Connection received from HOST:PORT`. */
export function formatTextConnectionLine(
  remoteAddr: Deno.Addr,
  options?: TextLogOptions,
  peerAddr?: Deno.Addr,
): string {
  const line = `Connection received from ${formatClientAddress(remoteAddr)}${
    peerAddr ? ` (via ${formatAddress(peerAddr)})` : ""
  }`;
  return options?.timestamps ? formatTextLine(line, options) : line;
}

/**
 * The human line for a client the tarpit let go:
 * `Tarpit released 192.0.2.1:4000 after 12.5s, 320 bytes sent (reset)`.
 */
export function formatTextTarpitLine(
  record: ConnectionRecord,
  options?: TextLogOptions,
): string {
  const { remoteAddr, peerAddr, outcome, reason } = record;
  return formatTextLine(
    `Tarpit released ${formatClientAddress(remoteAddr)}${
      peerAddr ? ` (via ${formatAddress(peerAddr)})` : ""
    } after ${
      ((record.held ?? record.duration) / 1000).toFixed(1)
    }s, ${record.bytesWritten} bytes sent (${outcome}${
      reason === undefined ? "" : `: ${reason}`
    })`,
    options,
  );
}

/**
 * The human line for suppressed connection lines:
 * `15 more connections from 192.0.2.1 suppressed`.
 */
export function formatTextSuppressedLine(
  source: string | undefined,
  count: number,
  options?: TextLogOptions,
): string {
  return formatTextLine(
    `${count} more connection${count === 1 ? "" : "s"} from ${
      source ?? "other sources"
    } suppressed`,
    options,
  );
}

/** The `suppressed` JSON line, in the shape {@linkcode formatTextSuppressedLine} has. */
export function formatJsonSuppressedLine(
  source: string | undefined,
  count: number,
): string {
  return formatJsonLogLine({ event: "suppressed", source, count });
}
