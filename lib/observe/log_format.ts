import { formatAddress } from "../net/address.ts";
import type { RefuseReason } from "../server/admission.ts";
import { unmapIpv4 } from "../net/ip.ts";
import type { ConnectionRecord } from "../server/options.ts";
import type { ConnectionOutcome, ServerStats } from "../server/stats.ts";
import { VERSION } from "../version.ts";

/**
 * The version of the JSON log schema, the `v` of every line. Within one
 * version fields are only ever added, never removed, renamed or retyped.
 */
export const LOG_SCHEMA_VERSION = 1;

/** The log formats the command line offers. */
export type LogFormat = "text" | "json";

/** The log formats, for `--log-format`. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/** Fields every JSON log line starts with. */
export interface LogLineBase {
  /** When it happened: RFC 3339, UTC, milliseconds (`2025-01-02T03:04:05.678Z`). */
  time: string;
  /** What happened; says which other fields the line has. */
  event: "start" | "connection" | "stop" | "suppressed" | "stats";
  /** The schema version, {@linkcode LOG_SCHEMA_VERSION}. */
  v: number;
}

/** `start`: the server is listening. */
export interface StartLogLine extends LogLineBase {
  /** Always `start`. */
  event: "start";
  /** greeter's version. */
  version: string;
  /** The process id. */
  pid: number;
  /** Every address listened on, as `HOST:PORT` (`[::]:8080` for IPv6). */
  listen: string[];
  /** Where metrics are served, as `HOST:PORT`, or null. */
  metrics: string | null;
}

/** `connection`: one connection ended. `time` is when it ended. */
export interface ConnectionLogLine extends LogLineBase {
  /** Always `connection`. */
  event: "connection";
  /** The client, `HOST:PORT`; IPv4 clients of `::` shown as IPv4. */
  remote: string;
  /** The client's IP address alone, without brackets. */
  remote_host: string;
  /** The client's port. */
  remote_port: number;
  /** The address the client reached, `HOST:PORT`. */
  local: string;
  /** How it ended. */
  outcome: ConnectionOutcome;
  /** Why it was refused, or the error's code; null otherwise. */
  reason: string | null;
  /** Bytes written to the client. */
  bytes: number;
  /** Bytes there were to write (the greeting or the refuse message). */
  greeting_bytes: number;
  /** From accept to close, in milliseconds. */
  duration_ms: number;
}

/** Totals shared by the `stats` and `stop` lines. */
export interface TotalsLogFields {
  /** Milliseconds since the server started. */
  uptime_ms: number;
  /** Connections accepted. */
  accepted: number;
  /** Connections open at `time`. */
  active: number;
  /** Ended connections by outcome; every outcome, zeros included. */
  outcomes: Record<ConnectionOutcome, number>;
  /** Refused connections by reason; every reason, zeros included. */
  refused: Record<RefuseReason, number>;
  /** Failed accepts by error code (`EMFILE`); only codes seen. */
  accept_errors: Record<string, number>;
  /** Times accepting paused at the connection cap. */
  paused_at_limit: number;
  /** Bytes written to clients. */
  bytes: number;
}

/** `stats`: the totals so far (on SIGUSR1). */
export interface StatsLogLine extends LogLineBase, TotalsLogFields {
  /** Always `stats`. */
  event: "stats";
}

/** `stop`: the server has shut down; the final totals. */
export interface StopLogLine extends LogLineBase, TotalsLogFields {
  /** Always `stop`. */
  event: "stop";
  /** Why it stopped on its own (a listener failure); null after a signal. */
  error: string | null;
}

/** `suppressed`: connection lines left out under a flood, counted exactly. */
export interface SuppressedLogLine extends LogLineBase {
  /** Always `suppressed`. */
  event: "suppressed";
  /**
   * The source whose lines were left out (an IPv4 address or an IPv6 /64,
   * `2001:db8:0:1::/64`); null for sources not tracked one by one.
   */
  source: string | null;
  /** How many connection lines were left out since the last such line. */
  count: number;
}

/** Any JSON log line. */
export type LogLine =
  | StartLogLine
  | ConnectionLogLine
  | StatsLogLine
  | StopLogLine
  | SuppressedLogLine;

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
  const milli = time - second * 1000;
  return cachedPrefix + (milli < 10 ? "00" : milli < 100 ? "0" : "") + milli +
    "Z";
}

function totals(stats: Readonly<ServerStats>, time: number): TotalsLogFields {
  return {
    uptime_ms: Math.max(0, time - stats.startTime),
    accepted: stats.accepted,
    active: stats.active,
    outcomes: { ...stats.outcomes },
    refused: { ...stats.refused },
    accept_errors: { ...stats.acceptErrors },
    paused_at_limit: stats.pausedAtLimit,
    bytes: stats.bytesWritten,
  };
}

/**
 * Formats a `connection` line: the per-connection path, so one template
 * string, with JSON escaping only where text could need it.
 */
export function formatJsonConnectionLine(record: ConnectionRecord): string {
  const { remoteAddr, reason } = record;
  const tcp = remoteAddr.transport === "tcp" || remoteAddr.transport === "udp";
  return `{"time":"${
    formatLogTime(record.startTime + record.duration)
  }","event":"connection","v":${LOG_SCHEMA_VERSION},"remote":${
    JSON.stringify(formatAddress(remoteAddr))
  },"remote_host":${
    tcp ? JSON.stringify(unmapIpv4(remoteAddr.hostname)) : "null"
  },"remote_port":${tcp ? remoteAddr.port : "null"},"local":${
    JSON.stringify(formatAddress(record.localAddr))
  },"outcome":"${record.outcome}","reason":${
    reason === undefined ? "null" : JSON.stringify(reason)
  },"bytes":${record.bytesWritten},"greeting_bytes":${record.greetingLength}` +
    `,"duration_ms":${record.duration}}`;
}

/** Builds the JSON log line for an event, as an object of the schema. */
export function toLogLine(event: LogEvent): LogLine {
  if (event.event === "connection") {
    return JSON.parse(formatJsonConnectionLine(event.record));
  }
  const now = event.time ?? Date.now();
  const base = {
    time: formatLogTime(now),
    v: LOG_SCHEMA_VERSION,
  };
  switch (event.event) {
    case "start":
      return {
        time: base.time,
        event: "start",
        v: base.v,
        version: VERSION,
        pid: Deno.pid,
        listen: event.listen.map(formatAddress),
        metrics: event.metrics ? formatAddress(event.metrics) : null,
      };
    case "stats":
      return {
        time: base.time,
        event: "stats",
        v: base.v,
        ...totals(event.stats, now),
      };
    case "stop":
      return {
        time: base.time,
        event: "stop",
        v: base.v,
        ...totals(event.stats, now),
        error: event.error ?? null,
      };
    case "suppressed":
      return {
        time: base.time,
        event: "suppressed",
        v: base.v,
        source: event.source ?? null,
        count: event.count,
      };
  }
}

/**
 * Formats one event as one line of JSON (without the newline), following
 * the schema of {@linkcode LogLine}: snake_case keys, `time`, `event` and
 * `v` first.
 */
export function formatJsonLogLine(event: LogEvent): string {
  return event.event === "connection"
    ? formatJsonConnectionLine(event.record)
    : JSON.stringify(toLogLine(event));
}

/** The human line for an admitted client: `Connection received from HOST:PORT`. */
export function formatTextConnectionLine(remoteAddr: Deno.Addr): string {
  return `Connection received from ${formatAddress(remoteAddr)}`;
}

/**
 * The human line for suppressed connection lines:
 * `15 more connections from 192.0.2.1 suppressed`.
 */
export function formatTextSuppressedLine(
  source: string | undefined,
  count: number,
): string {
  return `${count} more connection${count === 1 ? "" : "s"} from ${
    source ?? "other sources"
  } suppressed`;
}

/** The `suppressed` JSON line, in the shape {@linkcode formatTextSuppressedLine} has. */
export function formatJsonSuppressedLine(
  source: string | undefined,
  count: number,
): string {
  return formatJsonLogLine({ event: "suppressed", source, count });
}
