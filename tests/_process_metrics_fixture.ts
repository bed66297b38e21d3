// Reads the process metrics in a process of its own, with the permissions
// the test chose, then holds still so the test can count this process's
// descriptors from outside.
//
//   deno run [--allow-all] _process_metrics_fixture.ts
// Prints one JSON line, then sleeps until killed (at most 20 s). It waits
// on a timer, not on stdin: reading stdin makes Deno open descriptors.
import {
  loadProcessMetrics,
  readFdLimit,
  readProcessSample,
  readSoftFdLimit,
  renderBuildInfo,
  renderProcessMetrics,
} from "../lib/observe/process_metrics.ts";

await loadProcessMetrics();
const before = readProcessSample();
const files: Deno.FsFile[] = [];
for (let i = 0; i < 50; i++) files.push(Deno.openSync("/dev/null"));
const sample = readProcessSample();

// Second opinions, straight from /proc where this process may read it.
let proc: Record<string, number> | undefined;
try {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const btime = Number(
    /^btime (\d+)$/m.exec(Deno.readTextFileSync("/proc/stat"))![1],
  );
  const status = Deno.readTextFileSync("/proc/self/status");
  proc = {
    cpuSeconds: (Number(fields[11]) + Number(fields[12])) / 100, // CLK_TCK
    startTimeSeconds: btime + Number(fields[19]) / 100,
    vsize: Number(fields[20]),
    vmRssBytes: Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) * 1024,
  };
} catch {
  // No --allow-all: no second opinion.
}

console.log(JSON.stringify({
  pid: Deno.pid,
  openFdsBefore: before.openFds ?? null,
  sample,
  fdLimit: readFdLimit() ?? null,
  softFdLimit: readSoftFdLimit() ?? null,
  text: renderProcessMetrics(sample) + renderBuildInfo(),
  proc: proc ?? null,
}));

// Hold every descriptor open until the test has counted them.
await new Promise((resolve) => setTimeout(resolve, 20_000));
for (const file of files) file.close();
