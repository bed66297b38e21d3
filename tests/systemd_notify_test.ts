import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import {
  createSystemdNotifier,
  MAX_NOTIFICATION_BYTES,
  monotonicUsec,
  type NotifySocket,
} from "../lib/cli/systemd_notify.ts";
import {
  canRun,
  MAIN,
  ownProcessTest,
  withoutEnvironmentWarnings,
  withTempDir,
} from "./_helpers.ts";

const FIXTURE = new URL("./_notify_fixture.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** What the fixture sends, in order (the status line is escaped). */
const EXPECTED = [
  "READY=1\nSTATUS=Listening on 127.0.0.1:1",
  "RELOADING=1\nMONOTONIC_USEC=<usec>",
  "READY=1",
  "STATUS=line one\\nline two \\x1b[31m",
  "STOPPING=1",
];

/** The datagrams with the MONOTONIC_USEC value replaced by `<usec>`. */
function masked(datagrams: string[]): string[] {
  return datagrams.map((d) =>
    d.replace(/MONOTONIC_USEC=\d+$/, "MONOTONIC_USEC=<usec>")
  );
}

interface FixtureReport {
  pid: number;
  results: boolean[];
  sent: number;
  failed: number;
  error?: string;
  received: string[];
}

/** Runs the notifier fixture as its own process (it needs --unstable-net). */
async function runFixture(
  args: string[],
  env: Record<string, string>,
  permissions: string[],
): Promise<FixtureReport> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--unstable-net",
      ...permissions,
      FIXTURE,
      ...args,
    ],
    env,
    stdin: "null",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const stdout = decoder.decode(output.stdout);
  assertEquals(output.code, 0, decoder.decode(output.stderr));
  return JSON.parse(stdout);
}

/** A fake socket that records what was sent, for in-process tests. */
function recorder() {
  const log: { bound: string; to: string; data: string }[] = [];
  let open = 0;
  const openSocket = (options: { path: string }): NotifySocket => {
    open++;
    return {
      async send(data, addr) {
        // A random delay: a later send may finish first unless queued.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
        log.push({
          bound: options.path,
          to: addr.path,
          data: decoder.decode(data),
        });
        return data.length;
      },
      close() {
        open--;
      },
    };
  };
  return { log, openSocket, open: () => open };
}

Deno.test("createSystemdNotifier() without a socket sends nothing and says so", async () => {
  for (const socket of ["", undefined]) {
    const notifier = createSystemdNotifier({
      socket,
      open: () => {
        throw new Error("must not be called");
      },
    });
    if (socket === undefined && Deno.env.get("NOTIFY_SOCKET")) continue;
    assertEquals(notifier.enabled, false);
    assertEquals(notifier.socket, undefined);
    assertEquals(await notifier.ready(), false);
    assertEquals(await notifier.reloading(), false);
    assertEquals(await notifier.stopping("bye"), false);
    assertEquals(await notifier.status("x"), false);
    assertEquals([notifier.sent, notifier.failed], [0, 0]);
  }
});

// It sets this process's environment, which every greeter started meanwhile
// would inherit: in a process of its own.
ownProcessTest(import.meta.url, {
  name: "createSystemdNotifier() reads NOTIFY_SOCKET by default",
  fn: readsNotifySocket,
});

function readsNotifySocket() {
  const saved = Deno.env.get("NOTIFY_SOCKET");
  try {
    Deno.env.set("NOTIFY_SOCKET", "/run/systemd/notify");
    const notifier = createSystemdNotifier();
    assertEquals(notifier.enabled, true);
    assertEquals(notifier.socket, "/run/systemd/notify");
  } finally {
    if (saved === undefined) Deno.env.delete("NOTIFY_SOCKET");
    else Deno.env.set("NOTIFY_SOCKET", saved);
  }
}

Deno.test("createSystemdNotifier() sends each state exactly, in order, on an abstract socket of its own", async () => {
  const { log, openSocket, open } = recorder();
  const notifier = createSystemdNotifier({
    socket: "@test/notify",
    open: openSocket,
    monotonicUsec: () => 123_456_789n,
  });
  const results = await Promise.all([
    notifier.ready(),
    notifier.reloading(),
    notifier.ready("Reloaded"),
    notifier.status("Serving"),
    notifier.stopping(),
    notifier.notify("WATCHDOG=1"),
  ]);
  assertEquals(results, [true, true, true, true, true, true]);
  assertEquals(log.map((entry) => entry.data), [
    "READY=1",
    "RELOADING=1\nMONOTONIC_USEC=123456789",
    "READY=1\nSTATUS=Reloaded",
    "STATUS=Serving",
    "STOPPING=1",
    "WATCHDOG=1",
  ]);
  // "@name" is the abstract name "\0name"; so is the socket it binds.
  for (const entry of log) {
    assertEquals(entry.to, "\0test/notify");
    assertMatch(
      entry.bound,
      new RegExp(`^\\0greeter-notify-${Deno.pid}-[0-9a-f]{8}$`),
    );
  }
  assertEquals(open(), 0, "every socket is closed after its send");
  assertEquals([notifier.sent, notifier.failed], [6, 0]);
});

Deno.test("createSystemdNotifier() sends a path socket as it is", async () => {
  const { log, openSocket } = recorder();
  const notifier = createSystemdNotifier({
    socket: "/run/systemd/notify",
    open: openSocket,
  });
  assertEquals(await notifier.ready(), true);
  assertEquals(log[0].to, "/run/systemd/notify");
});

Deno.test("createSystemdNotifier() keeps a status to one printable line", async () => {
  const { log, openSocket } = recorder();
  const notifier = createSystemdNotifier({ socket: "@n", open: openSocket });
  // A newline would start a new assignment: "READY=1" must not be injected.
  await notifier.status("bad\nREADY=1\x1b[2J\u202e");
  await notifier.stopping("x".repeat(5000));
  assertEquals(log[0].data, "STATUS=bad\\nREADY=1\\x1b[2J\\u202e");
  assertEquals(log[1].data, `STOPPING=1\nSTATUS=${"x".repeat(1023)}…`);
});

Deno.test("createSystemdNotifier() leaves MONOTONIC_USEC out when no clock can be read", async () => {
  const { log, openSocket } = recorder();
  const notifier = createSystemdNotifier({
    socket: "@n",
    open: openSocket,
    monotonicUsec: () => undefined,
  });
  await notifier.reloading("Reloading");
  assertEquals(log[0].data, "RELOADING=1\nSTATUS=Reloading");
});

Deno.test("createSystemdNotifier() counts failures and never throws", async () => {
  let calls = 0;
  const notifier = createSystemdNotifier({
    socket: "@n",
    open: () => {
      calls++;
      if (calls === 1) throw new TypeError("no datagram sockets here");
      return {
        send: () =>
          Promise.reject(new Deno.errors.ConnectionRefused("refused")),
        close() {},
      };
    },
  });
  assertEquals(await notifier.ready(), false);
  assertEquals(notifier.lastError?.message, "no datagram sockets here");
  assertEquals(await notifier.stopping(), false);
  assertEquals(notifier.lastError?.name, "ConnectionRefused");
  // Too big for systemd: refused before any socket is opened.
  assertEquals(
    await notifier.notify("X=" + "y".repeat(MAX_NOTIFICATION_BYTES)),
    false,
  );
  assert(notifier.lastError instanceof RangeError);
  assertEquals(calls, 2);
  assertEquals([notifier.sent, notifier.failed], [0, 3]);
});

Deno.test("createSystemdNotifier() fails quietly where Deno has no datagram sockets", async () => {
  // The test runner has no --unstable-net, so Deno.listenDatagram is
  // missing; with it, the socket below does not exist. Either way: false.
  const notifier = createSystemdNotifier({
    socket: "/nonexistent/greeter/notify",
  });
  assertEquals(await notifier.ready(), false);
  assertEquals(notifier.failed, 1);
  assert(notifier.lastError instanceof Error);
});

Deno.test("createSystemdNotifier() delivers to a real datagram socket at a path and in the abstract namespace", async () => {
  await withTempDir(async (dir) => {
    for (
      const target of [
        `${dir}/notify.sock`,
        `@greeter-test-${crypto.randomUUID()}`,
      ]
    ) {
      const report = await runFixture(["loopback", target], {}, [
        "--allow-net",
        "--allow-sys",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
      ]);
      assertEquals(
        report.results,
        [true, true, true, true, true],
        report.error,
      );
      assertEquals([report.sent, report.failed], [5, 0]);
      assertEquals(masked(report.received), EXPECTED);
    }
  });
});

Deno.test("createSystemdNotifier() fails quietly in a real process when the socket is gone", async () => {
  await withTempDir(async (dir) => {
    const report = await runFixture(["send"], {
      NOTIFY_SOCKET: `${dir}/missing.sock`,
    }, [
      "--allow-net",
      "--allow-env=NOTIFY_SOCKET",
      `--allow-write=${dir}`,
    ]);
    assertEquals(report.results, [false, false, false, false, false]);
    assertEquals([report.sent, report.failed], [0, 5]);
    assertMatch(report.error ?? "", /No such file|not found/i);
  });
});

/**
 * A receiver independent of Deno: Python binds the socket with SO_PASSCRED,
 * so each datagram comes with the sender's PID as the kernel saw it, and
 * stamps each with CLOCK_MONOTONIC and CLOCK_BOOTTIME on arrival.
 */
const PYTHON_RECEIVER = `
import json, socket, struct, sys, time
target, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\\0" + target[1:] if target.startswith("@") else target)
s.settimeout(15)
print("bound", flush=True)
for _ in range(count):
    data, ancillary, _, _ = s.recvmsg(8192, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", value[:12])[0]
    print(json.dumps({
        "data": data.decode(), "pid": pid,
        "monotonic_us": time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000,
        "boottime_us": time.clock_gettime_ns(time.CLOCK_BOOTTIME) // 1000,
    }), flush=True)
`;

interface Received {
  data: string;
  pid: number;
  monotonic_us: number;
  boottime_us: number;
}

Deno.test("createSystemdNotifier() sends from greeter's own PID with a MONOTONIC_USEC systemd accepts (Python receiver)", async (t) => {
  if (!(await canRun("python3"))) {
    t.step({
      name: "skipped: python3 is not installed",
      ignore: true,
      fn() {},
    });
    return;
  }
  await withTempDir(async (dir) => {
    for (
      const target of [
        `${dir}/notify.sock`,
        `@greeter-test-${crypto.randomUUID()}`,
      ]
    ) {
      const python = new Deno.Command("python3", {
        args: ["-c", PYTHON_RECEIVER, target, String(EXPECTED.length)],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(20_000),
      }).spawn();
      const lines = python.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      let text = "";
      while (!text.includes("bound\n")) {
        const { value, done } = await lines.read();
        if (done) break;
        text += value;
      }
      assertEquals(text.startsWith("bound\n"), true, "the receiver is bound");
      // With the binaries' permissions: no /proc/uptime (Deno wants
      // --allow-all for it), so MONOTONIC_USEC comes from Deno.osUptime().
      const report = await runFixture(["send"], { NOTIFY_SOCKET: target }, [
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-sys",
        "--allow-env=NOTIFY_SOCKET",
      ]);
      while (true) {
        const { value, done } = await lines.read();
        if (done) break;
        text += value;
      }
      const status = await python.status;
      assertEquals(
        status.code,
        0,
        decoder.decode((await python.stderr.getReader().read()).value),
      );
      const received: Received[] = text.split("\n").slice(1, -1).map((line) =>
        JSON.parse(line)
      );
      assertEquals(
        report.results,
        [true, true, true, true, true],
        report.error,
      );
      assertEquals(masked(received.map((r) => r.data)), EXPECTED);
      // The kernel's word for who sent it: the notifier's process itself.
      for (const r of received) assertEquals(r.pid, report.pid);
      // Not before the previous datagram arrived (systemd's test: not older
      // than the reload request), and no later than boot time on arrival
      // plus the 1 s rounding of Deno.osUptime().
      const usec = Number(/MONOTONIC_USEC=(\d+)/.exec(received[1].data)![1]);
      assert(
        usec >= received[0].monotonic_us,
        `${usec} < ${received[0].monotonic_us}`,
      );
      assert(usec <= received[1].boottime_us + 1_000_000, `${usec} too late`);
    }
  });
});

Deno.test("monotonicUsec() is never below CLOCK_MONOTONIC and close above it", async (t) => {
  if (!(await canRun("python3"))) {
    t.step({
      name: "skipped: python3 is not installed",
      ignore: true,
      fn() {},
    });
    return;
  }
  const clock = async (name: string) => {
    const output = await new Deno.Command("python3", {
      args: [
        "-c",
        `import time; print(time.clock_gettime_ns(time.${name}) // 1000)`,
      ],
      stdin: "null",
    }).output();
    return Number(decoder.decode(output.stdout));
  };
  // The test runner has --allow-sys but not --allow-all: Deno.osUptime(),
  // whole seconds rounded up.
  let before = await clock("CLOCK_MONOTONIC");
  const usec = monotonicUsec();
  let after = await clock("CLOCK_BOOTTIME");
  assert(usec !== undefined);
  assert(Number(usec) >= before, `${usec} < ${before}`);
  assert(Number(usec) <= after + 1_000_000, `${usec} > ${after} + 1 s`);

  // With --allow-all, /proc/uptime: hundredths of a second.
  before = await clock("CLOCK_MONOTONIC");
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", FIXTURE, "usec"],
    stdin: "null",
  }).output();
  after = await clock("CLOCK_BOOTTIME");
  const fine = Number(decoder.decode(output.stdout));
  assert(fine >= before, `${fine} < ${before}`);
  assert(fine <= after + 10_000, `${fine} > ${after} + 10 ms`);
});

Deno.test("monotonicUsec() without --allow-sys or /proc gives nothing", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-read", FIXTURE, "usec"],
    stdin: "null",
  }).output();
  assertEquals(decoder.decode(output.stdout), "undefined\n");
});

Deno.test({
  name: "greeter says once at start-up when it cannot tell systemd it is " +
    "ready (no write permission for $NOTIFY_SOCKET), and serves on",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--unstable-net",
        "--allow-net",
        "--allow-env=NOTIFY_SOCKET",
        MAIN,
        "-H",
        "127.0.0.1",
        "-p",
        "0",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NOTIFY_SOCKET: "/run/greeter-test-nowhere.sock", NO_COLOR: "1" },
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let stdout = "";
    while (!/listening/.test(stdout)) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += value;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill("SIGTERM");
    while (!(await reader.read()).done) { /* drained */ }
    assertEquals((await child.status).code, 0);
    // greeter's line about a host that holds 127.0.0.1:9229 aside.
    const lines = withoutEnvironmentWarnings(await stderr).trim().split("\n");
    assertEquals(lines.length, 1, await stderr);
    assertStringIncludes(
      lines[0],
      "greeter: warning: cannot tell systemd that greeter is ready (",
    );
    assertStringIncludes(lines[0], "--allow-write");
  },
});
