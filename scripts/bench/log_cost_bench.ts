// The per-connection cost of logging: one JSON or text line, and the flood
// limiter's offer. Run: deno bench scripts/bench/log_cost_bench.ts
import {
  formatJsonConnectionLine,
  formatTextConnectionLine,
} from "../../lib/observe/log_format.ts";
import { createLogThrottle } from "../../lib/observe/log_throttle.ts";
import { createDurationHistogram } from "../../lib/observe/metrics.ts";
import type { ConnectionRecord } from "../../lib/server/options.ts";

const record: ConnectionRecord = {
  remoteAddr: { transport: "tcp", hostname: "192.168.100.200", port: 51234 },
  localAddr: { transport: "tcp", hostname: "0.0.0.0", port: 8080 },
  outcome: "greeted",
  bytesWritten: 24,
  greetingLength: 24,
  startTime: Date.now(),
  duration: 3,
};
const ipv6: ConnectionRecord = {
  ...record,
  remoteAddr: { transport: "tcp", hostname: "2001:db8::1234", port: 51234 },
  localAddr: { transport: "tcp", hostname: "::", port: 8080 },
};

const tcp = record as ConnectionRecord & {
  remoteAddr: Deno.NetAddr;
  localAddr: Deno.NetAddr;
};

let sink = 0;
const emit = (line: string) => sink += line.length;

Deno.bench("text line", { group: "format", baseline: true }, () => {
  emit(formatTextConnectionLine(record.remoteAddr));
});
Deno.bench("JSON line, IPv4", { group: "format" }, () => {
  emit(formatJsonConnectionLine(record));
});
Deno.bench("JSON line, IPv6", { group: "format" }, () => {
  emit(formatJsonConnectionLine(ipv6));
});
Deno.bench("naive: toISOString + JSON.stringify of an object", {
  group: "format",
}, () => {
  emit(JSON.stringify({
    time: new Date(record.startTime + record.duration).toISOString(),
    event: "connection",
    v: 1,
    remote: `${tcp.remoteAddr.hostname}:${tcp.remoteAddr.port}`,
    remote_host: tcp.remoteAddr.hostname,
    remote_port: tcp.remoteAddr.port,
    local: `${tcp.localAddr.hostname}:${tcp.localAddr.port}`,
    outcome: record.outcome,
    reason: record.reason ?? null,
    bytes: record.bytesWritten,
    greeting_bytes: record.greetingLength,
    duration_ms: record.duration,
  }));
});

// Limits far above the bench's rate: every offer is logged.
const open = createLogThrottle({
  emit,
  perSourcePerSecond: 1e12,
  perSecond: 1e12,
});
// A flood from one source: every offer past the first is only counted.
const flood = createLogThrottle({
  emit,
  perSourcePerSecond: 1,
  interval: 3_600_000,
});
const sources = Array.from(
  { length: 1000 },
  (_, i) => `10.0.${i >> 8}.${i & 255}`,
);
let i = 0;

Deno.bench("allow + JSON line (logged)", { group: "throttle" }, () => {
  if (open.allow(sources[i++ % 1000])) emit(formatJsonConnectionLine(record));
});
Deno.bench("allow (suppressed: only counted)", { group: "throttle" }, () => {
  if (flood.allow("192.0.2.1")) emit(formatJsonConnectionLine(record));
});

const histogram = createDurationHistogram();
Deno.bench("histogram observe", { group: "metrics" }, () => {
  histogram.observe(i++ % 2000);
});

globalThis.addEventListener("unload", () => {
  open.close();
  flood.close();
  if (sink < 0) console.log(sink);
});
