import { assert, assertEquals } from "@std/assert";
import {
  loadProcessMetrics,
  parseFdLimit,
  parseProcStat,
  readProcessSample,
  renderBuildInfo,
  renderProcessMetrics,
} from "../lib/observe/process_metrics.ts";

// The CPU time needs node:process, which the metrics endpoint loads first.
await loadProcessMetrics();
import { VERSION } from "../lib/version.ts";
import { canRun } from "./_helpers.ts";
import { promtoolCheck } from "./_tools.ts";

const FIXTURE =
  new URL("./_process_metrics_fixture.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

interface FixtureReport {
  pid: number;
  openFdsBefore: number | null;
  sample: Record<string, number>;
  fdLimit: { soft: number; hard: number } | null;
  softFdLimit: number | null;
  text: string;
  proc: Record<string, number> | null;
}

/**
 * Runs the fixture, lets `whileOpen` look at it while it holds still, then
 * stops it.
 */
async function withFixture(
  permissions: string[],
  whileOpen: (report: FixtureReport) => Promise<void>,
  prefix: string[] = [],
): Promise<void> {
  const [command, ...args] = [
    ...prefix,
    Deno.execPath(),
    "run",
    "--no-prompt",
    ...permissions,
    FIXTURE,
  ];
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    if (!text.includes("\n")) {
      throw new Error(
        `fixture said nothing: ${
          decoder.decode((await child.output()).stderr)
        }`,
      );
    }
    await whileOpen(JSON.parse(text));
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await reader.cancel();
    await child.stderr.cancel();
    await child.status;
  }
}

Deno.test("parseProcStat() counts fields from the last parenthesis to the virtual size", () => {
  const tail =
    "S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 15 16 17 18 4321 987654 20 21";
  for (const comm of ["deno", "a b", "x) S 9 (y", "((", ")"]) {
    assertEquals(parseProcStat(`1234 (${comm}) ${tail}\n`), 987654, comm);
  }
  assertEquals(parseProcStat(""), undefined);
  assertEquals(parseProcStat("1234 (deno) S 1 2"), undefined);
});

Deno.test("parseFdLimit() reads the soft and hard open-file limits", () => {
  const limits = [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max processes             96365                96365                processes ",
    "Max open files            1024                 524288               files     ",
    "Max locked memory         8388608              8388608              bytes     ",
    "",
  ].join("\n");
  assertEquals(parseFdLimit(limits), { soft: 1024, hard: 524288 });
  assertEquals(
    parseFdLimit(
      "Max open files            unlimited            unlimited            files     \n",
    ),
    { soft: Infinity, hard: Infinity },
  );
  assertEquals(parseFdLimit("Max processes 1 1 processes\n"), undefined);
});

Deno.test("renderProcessMetrics() writes HELP, TYPE and value for each number present", () => {
  assertEquals(
    renderProcessMetrics({
      cpuSeconds: 1.25,
      openFds: 12,
      maxFds: 1024,
      virtualBytes: 1_000_000,
      residentBytes: 40_000,
      startTimeSeconds: 1_700_000_000.5,
    }),
    [
      "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
      "# TYPE process_cpu_seconds_total counter",
      "process_cpu_seconds_total 1.25",
      "# HELP process_open_fds Number of open file descriptors.",
      "# TYPE process_open_fds gauge",
      "process_open_fds 12",
      "# HELP process_max_fds Maximum number of open file descriptors.",
      "# TYPE process_max_fds gauge",
      "process_max_fds 1024",
      "# HELP process_virtual_memory_bytes Virtual memory size in bytes.",
      "# TYPE process_virtual_memory_bytes gauge",
      "process_virtual_memory_bytes 1000000",
      "# HELP process_resident_memory_bytes Resident memory size in bytes.",
      "# TYPE process_resident_memory_bytes gauge",
      "process_resident_memory_bytes 40000",
      "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
      "# TYPE process_start_time_seconds gauge",
      "process_start_time_seconds 1700000000.5",
      "",
    ].join("\n"),
  );
});

Deno.test("renderProcessMetrics() leaves out what could not be read", () => {
  assertEquals(renderProcessMetrics({}), "");
  assertEquals(
    renderProcessMetrics({ residentBytes: 5, maxFds: Infinity }),
    "# HELP process_resident_memory_bytes Resident memory size in bytes.\n" +
      "# TYPE process_resident_memory_bytes gauge\n" +
      "process_resident_memory_bytes 5\n",
  );
});

Deno.test("renderBuildInfo() labels greeter's and Deno's versions, escaped", () => {
  assertEquals(
    renderBuildInfo(),
    "# HELP greeter_build_info Always 1; the versions are in the labels.\n" +
      "# TYPE greeter_build_info gauge\n" +
      `greeter_build_info{version="${VERSION}",deno="${Deno.version.deno}"} 1\n`,
  );
  assertEquals(
    renderBuildInfo('1.0"\\\n', "2.9.6").split("\n")[2],
    'greeter_build_info{version="1.0\\"\\\\\\n",deno="2.9.6"} 1',
  );
});

Deno.test("readProcessSample() reads CPU, memory and start time without any permission", () => {
  const sample = readProcessSample();
  assert(
    sample.cpuSeconds! > 0 && sample.cpuSeconds! < 3600,
    `${sample.cpuSeconds}`,
  );
  assert(sample.residentBytes! > 1024 * 1024, `${sample.residentBytes}`);
  const now = Date.now() / 1000;
  // The test runner started before this test, and not a day ago.
  assert(
    sample.startTimeSeconds! <= now && sample.startTimeSeconds! > now - 86_400,
  );
  // 100 ms of spinning shows up (loosely: a busy VM may steal some of it).
  const burn = performance.now() + 100;
  while (performance.now() < burn) { /* spin */ }
  const later = readProcessSample().cpuSeconds!;
  assert(later >= sample.cpuSeconds! + 0.01, `${sample.cpuSeconds} → ${later}`);
});

Deno.test("readProcessSample() counts open descriptors exactly, as seen from outside", async () => {
  await withFixture(["--allow-all"], async (report) => {
    // 50 more files opened between the two readings: exactly 50 more.
    assertEquals(report.sample.openFds - report.openFdsBefore!, 50);
    // The same count as `ls /proc/PID/fd`, taken while the fixture is idle.
    const ls = await new Deno.Command("ls", {
      args: [`/proc/${report.pid}/fd`],
      stdin: "null",
    }).output();
    assertEquals(ls.code, 0);
    const outside = decoder.decode(ls.stdout).trim().split("\n").length;
    assertEquals(report.sample.openFds, outside);
  });
});

Deno.test("readProcessSample() agrees with /proc where /proc can be read", async () => {
  await withFixture(["--allow-all"], (report) => {
    const { sample, proc } = report;
    assert(proc !== null);
    // /proc counts CPU in 10 ms ticks, truncated, and was read just after.
    assert(
      proc!.cpuSeconds >= sample.cpuSeconds - 0.025,
      JSON.stringify(report),
    );
    assert(
      proc!.cpuSeconds <= sample.cpuSeconds + 0.25,
      JSON.stringify(report),
    );
    // btime is whole seconds, and the runtime starts soon after exec.
    assert(
      Math.abs(proc!.startTimeSeconds - sample.startTimeSeconds) < 2,
      JSON.stringify(report),
    );
    assert(
      Math.abs(proc!.vmRssBytes - sample.residentBytes) < 16 * 1024 * 1024,
    );
    assert(Math.abs(proc!.vsize - sample.virtualBytes) <= proc!.vsize / 10);
    return Promise.resolve();
  });
});

Deno.test("readProcessSample() reports the soft descriptor limit it runs under", async (t) => {
  if (!(await canRun("prlimit", ["--version"]))) {
    t.step({
      name: "skipped: prlimit is not installed",
      ignore: true,
      fn() {},
    });
    return;
  }
  await withFixture(["--allow-all"], (report) => {
    // Deno raises its soft limit to the hard one as it starts, so what
    // greeter gets is the hard limit whatever the soft one was.
    assertEquals(report.sample.maxFds, 4000);
    assertEquals(report.fdLimit, { soft: 4000, hard: 4000 });
    assertEquals(report.softFdLimit, 4000);
    assert(report.text.includes("\nprocess_max_fds 4000\n"));
    return Promise.resolve();
  }, ["prlimit", "--nofile=321:4000"]);
  await withFixture(["--allow-all"], (report) => {
    assertEquals(report.fdLimit, { soft: 128, hard: 128 });
    return Promise.resolve();
  }, ["prlimit", "--nofile=128"]);
});

Deno.test("readProcessSample() leaves out the /proc numbers without --allow-all", async () => {
  // The binaries' permissions: Deno 2.9 opens /proc only to --allow-all.
  await withFixture(["--allow-read", "--allow-sys"], (report) => {
    assertEquals(Object.keys(report.sample).sort(), [
      "cpuSeconds",
      "residentBytes",
      "startTimeSeconds",
    ]);
    assertEquals([report.fdLimit, report.softFdLimit], [null, null]);
    assert(!report.text.includes("process_open_fds"));
    return Promise.resolve();
  });
});

Deno.test("renderProcessMetrics() output passes promtool check metrics", async (t) => {
  if (!(await canRun("promtool", ["--version"]))) {
    t.step({
      name: "skipped: promtool is not installed (apt-get install prometheus)",
      ignore: true,
      fn() {},
    });
    return;
  }
  await withFixture(["--allow-all"], async (report) => {
    for (
      const name of [
        "process_open_fds",
        "process_max_fds",
        "process_virtual_memory_bytes",
      ]
    ) {
      assert(report.text.includes(`\n${name} `), name);
    }
    assertEquals(await promtoolCheck(report.text), [0, ""]);
  });
  // promtool is not a rubber stamp: a counter without _total fails.
  const [code] = await promtoolCheck(
    "# HELP x_seconds X.\n# TYPE x_seconds counter\nx_seconds 1\n",
  );
  assert(code !== 0);
});
