// Deno's SIGUSR1 debugger (denoland/deno#35738) against greeter's guard, with a
// real attacker running as another user. Run by tests/debugger_guard_test.ts
// inside a network namespace of its own, where 127.0.0.1:9229 is free whatever
// the host runs; run alone, its cases skip when the host holds the address.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  canRun,
  closedPort,
  MAIN,
  readAll,
  runCli,
  startCli,
} from "./_helpers.ts";

const LOCAL = ["-H", "127.0.0.1", "-p", "0", "-q"];
const ATTACKER = await Deno.readTextFile(
  new URL("./_debugger_attacker.py", import.meta.url),
);
const PYTHON = "/usr/bin/python3";

/** Whether 127.0.0.1:9229 is free now (the tests need it so). */
function inspectorPortFree(): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port: 9229 }).close();
    return true;
  } catch {
    return false;
  }
}

const root = Deno.build.os === "linux" && Deno.uid() === 0;
const tools = root && await canRun("setpriv", ["--version"]) &&
  await canRun(PYTHON, ["--version"]);
const free = inspectorPortFree();
const skip = !tools
  ? " (skipped: needs Linux, root, setpriv and /usr/bin/python3)"
  : !free
  ? " (skipped: 127.0.0.1:9229 is held by another program)"
  : "";

/** Runs the attacker as `nobody` for `seconds`; resolves to its counts. */
function attack(seconds: number) {
  const child = new Deno.Command("setpriv", {
    args: [
      "--reuid=nobody",
      "--regid=nogroup",
      "--clear-groups",
      PYTHON,
      "-c",
      ATTACKER,
      String(seconds),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    cwd: "/",
  }).output();
  return child.then((output) => {
    assert(output.success, new TextDecoder().decode(output.stderr));
    return JSON.parse(new TextDecoder().decode(output.stdout)) as {
      connected: number;
      answered: number;
      evaluated: number;
    };
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test({
  name:
    "greeter under deno run keeps Deno's debugger shut through 20 SIGUSR1s " +
    "while another user polls 127.0.0.1:9229" + skip,
  ignore: skip !== "",
  async fn() {
    await using server = await startCli(LOCAL, {
      // deno task start's permissions.
      permissions: [
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-sys",
      ],
    });
    // Past Deno's grace period of 500 ms, after which SIGUSR1 opens it.
    await sleep(600);
    const attacked = attack(2.5);
    await sleep(200);
    for (let i = 0; i < 20; i++) {
      server.process.kill("SIGUSR1");
      await sleep(50);
    }
    const counts = await attacked;
    assertEquals(counts.evaluated, 0, JSON.stringify(counts));
    assertEquals(counts.answered, 0, JSON.stringify(counts));
    // Still serving, and SIGUSR1 was said to do nothing, once.
    assertEquals(
      new TextDecoder().decode(await readAll(server.port)),
      "Connection Established\r\n",
    );
    const { code, stderr } = await server.stop();
    assertEquals(code, 0);
    assertEquals(
      stderr.match(/greeter: warning: SIGUSR1 does nothing/g)?.length,
      1,
      stderr,
    );
  },
});

Deno.test({
  name: "the debugger attacker does run code in a deno program that has no " +
    "guard (so the test above can fail)" + skip,
  ignore: skip !== "",
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "setTimeout(() => {}, 3_000); console.log('up')"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      const reader = child.stdout.getReader();
      await reader.read();
      reader.releaseLock();
      await sleep(600);
      const attacked = attack(1.5);
      await sleep(200);
      child.kill("SIGUSR1");
      const counts = await attacked;
      assert(counts.evaluated >= 1, JSON.stringify(counts));
    } finally {
      child.kill("SIGKILL");
      await child.status;
      await child.stdout.cancel().catch(() => {});
    }
  },
});

Deno.test({
  name: "greeter under deno run refuses to start when --allow-net does not " +
    "cover 127.0.0.1:9229, with exit 1 and the way out",
  ignore: Deno.build.os === "windows",
  async fn() {
    // --allow-net narrowed to the server's own port does not cover it.
    const port = closedPort();
    const narrow = await runCli(
      ["-H", "127.0.0.1", "-p", String(port)],
      { permissions: [`--allow-net=127.0.0.1:${port}`] },
    );
    assertEquals(narrow.code, 1);
    assertStringIncludes(
      narrow.stderr,
      "greeter: under deno run, greeter must hold 127.0.0.1:9229",
    );
    assertStringIncludes(narrow.stderr, "add 127.0.0.1:9229 to --allow-net");
    assertEquals(narrow.stderr.trim().split("\n").length, 1);
    assertEquals(narrow.stdout, "");
  },
});

/** Whether 127.0.0.1:9229 can be bound by a plain listener within `ms`. */
async function freeWithin(ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (inspectorPortFree()) return true;
    await sleep(10);
  }
  return false;
}

Deno.test({
  name: "greeter under deno run starts while another program holds " +
    "127.0.0.1:9229, says so once, takes it within 1 s of its release, and " +
    "then keeps Deno's debugger shut through SIGUSR1s" + skip,
  ignore: skip !== "",
  async fn() {
    // A plain listener, outside greeter's SO_REUSEPORT group: what any local
    // user can bind to keep greeter from holding the address.
    const holder = Deno.listen({ hostname: "127.0.0.1", port: 9229 });
    let held = true;
    try {
      await using server = await startCli(LOCAL, { environmentWarnings: true });
      assertEquals(
        new TextDecoder().decode(await readAll(server.port)),
        "Connection Established\r\n",
      );
      holder.close();
      held = false;
      // greeter binds it within its retry period: a plain bind then fails.
      const end = performance.now() + 1_000;
      while (performance.now() < end && inspectorPortFree()) await sleep(5);
      assert(!inspectorPortFree(), "greeter did not take 127.0.0.1:9229");
      await sleep(600);
      const attacked = attack(1.5);
      await sleep(200);
      for (let i = 0; i < 10; i++) {
        server.process.kill("SIGUSR1");
        await sleep(50);
      }
      const counts = await attacked;
      assertEquals(counts.answered, 0, JSON.stringify(counts));
      assertEquals(counts.evaluated, 0, JSON.stringify(counts));
      const { code, stderr } = await server.stop();
      assertEquals(code, 0);
      assertEquals(
        stderr.match(
          /greeter: warning: 127\.0\.0\.1:9229 is held by another program/g,
        )
          ?.length,
        1,
        stderr,
      );
      // Released at exit.
      assert(await freeWithin(1_000), "greeter kept 127.0.0.1:9229 after exit");
    } finally {
      if (held) holder.close();
    }
  },
});

Deno.test({
  name: "two greeters started with plain deno run --allow-net: the second " +
    "serves and warns; with --unstable-net both share the guard in silence",
  ignore: Deno.build.os === "windows" || !free,
  async fn() {
    await using first = await startCli(LOCAL, { permissions: ["--allow-net"] });
    // Plain deno run: no SO_REUSEPORT, so it cannot share with the first.
    await using second = await startCli(LOCAL, {
      permissions: ["--allow-net"],
      unstableNet: false,
      environmentWarnings: true,
    });
    assertEquals(
      new TextDecoder().decode(await readAll(second.port)),
      "Connection Established\r\n",
    );
    await using third = await startCli(LOCAL, { permissions: ["--allow-net"] });
    assertEquals(
      new TextDecoder().decode(await readAll(third.port)),
      "Connection Established\r\n",
    );
    assertEquals((await first.stop()).stderr, "");
    const secondStop = await second.stop();
    assertEquals(secondStop.code, 0);
    assertStringIncludes(
      secondStop.stderr,
      "greeter: warning: 127.0.0.1:9229 is held by another program",
    );
    assertStringIncludes(secondStop.stderr, "--unstable-net");
    assertEquals((await third.stop()).stderr, "");
  },
});

const activate = await canRun("systemd-socket-activate", ["--help"]);

Deno.test({
  name: "greeter on a socket passed by systemd-socket-activate holds " +
    "127.0.0.1:9229 though --allow-net names nothing else, and SIGUSR1s " +
    "open nothing" + skip +
    (activate ? "" : " (skipped: needs systemd-socket-activate)"),
  ignore: skip !== "" || !activate,
  async fn() {
    const port = closedPort();
    const host = new Deno.Command("systemd-socket-activate", {
      args: [
        `--listen=127.0.0.1:${port}`,
        Deno.execPath(),
        "run",
        "--no-prompt",
        "--unstable-net",
        // Passed sockets need no leave; only the guard's address is named.
        "--allow-net=127.0.0.1:9229",
        "--allow-env",
        MAIN,
        "-q",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).spawn();
    const stderr = new Response(host.stderr).text();
    const stdout = new Response(host.stdout).text();
    try {
      // systemd-socket-activate execs greeter at the first client.
      let conn: Deno.Conn | undefined;
      for (let i = 0; i < 100 && !conn; i++) {
        conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(
          () => undefined,
        );
        if (!conn) await sleep(20);
      }
      assert(conn, "systemd-socket-activate did not listen");
      const buffer = new Uint8Array(64);
      let text = "";
      for (let n; (n = await conn.read(buffer)) !== null;) {
        text += new TextDecoder().decode(buffer.subarray(0, n));
      }
      conn.close();
      assertEquals(text, "Connection Established\r\n");
      assert(!inspectorPortFree(), "greeter does not hold 127.0.0.1:9229");
      await sleep(600);
      const attacked = attack(1.5);
      await sleep(200);
      for (let i = 0; i < 10; i++) {
        host.kill("SIGUSR1");
        await sleep(50);
      }
      const counts = await attacked;
      assertEquals(counts.answered, 0, JSON.stringify(counts));
      assertEquals(counts.evaluated, 0, JSON.stringify(counts));
    } finally {
      host.kill("SIGTERM");
      await host.status;
      await stdout;
      await stderr;
    }
  },
});
