// Reads one file with readLimited in a fresh process and reports the
// outcome, the time it took and the peak memory, for tests that must
// measure a refusal without the test runner's own memory in the way.
//
//   deno run --allow-read _read_limited_fixture.ts PATH LIMIT
//
// The peak memory (VmHWM) comes from /proc/self/status, which Deno lets
// only --allow-all read; without it, maxRssBytes is null. (getrusage's
// ru_maxrss is no substitute: it keeps the peak of the process that forked
// this one, the test runner.)
import { readLimited, ReadLimitedError } from "../lib/cli/read_limited.ts";

const [path, limit] = Deno.args;
const started = performance.now();
let report: Record<string, unknown>;
try {
  const bytes = await readLimited(path, Number(limit));
  report = { ok: true, length: bytes.length };
} catch (error) {
  report = error instanceof ReadLimitedError
    ? {
      ok: false,
      kind: error.kind,
      fileType: error.fileType,
      size: error.size,
      limit: error.limit,
      message: error.message,
    }
    : { ok: false, other: String(error) };
}
report.ms = performance.now() - started;
try {
  const status = Deno.readTextFileSync("/proc/self/status");
  report.maxRssBytes = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)![1]) * 1024;
} catch {
  report.maxRssBytes = null;
}
console.log(JSON.stringify(report));
