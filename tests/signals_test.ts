import { assertEquals, assertMatch } from "@std/assert";
import { MAIN, withTempDir } from "./_helpers.ts";
import { onSignal } from "../lib/cli/signals.ts";

const POSIX = Deno.build.os !== "windows";

/**
 * Waits for `promise`, failing after `ms`. The timer also keeps the event
 * loop alive: signal listeners alone do not.
 */
async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error("No signal")), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "onSignal() calls back on a real SIGUSR2 until removed, then keeps " +
    "the next one for the next handler" +
    (POSIX ? "" : " (skipped: Windows has no SIGUSR2)"),
  ignore: !POSIX,
  // The one listener per signal lives as long as the process, by design.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let calls = 0;
    let signalled!: () => void;
    let received = new Promise<void>((resolve) => signalled = resolve);
    const remove = onSignal("SIGUSR2", () => {
      calls++;
      signalled();
    });
    Deno.kill(Deno.pid, "SIGUSR2");
    await within(received, 5_000);
    assertEquals(calls, 1);
    remove();
    remove(); // Safe to call twice.
    // Nobody handles it now: the signal is kept, and the process lives.
    Deno.kill(Deno.pid, "SIGUSR2");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assertEquals(calls, 1);
    received = new Promise<void>((resolve) => signalled = resolve);
    let later = 0;
    const removeLater = onSignal("SIGUSR2", () => {
      later++;
      signalled();
    });
    await within(received, 5_000);
    removeLater();
    assertEquals([calls, later], [1, 1]);
  },
});

/** Waits until something listens on 127.0.0.1:9229: greeter's guard. */
async function guardBound(ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const open = await Deno.connect({ hostname: "127.0.0.1", port: 9229 })
      .then((conn) => (conn.close(), true), () => false);
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error("The debugger guard never bound 127.0.0.1:9229");
}

Deno.test({
  name: "greeter survives SIGHUP, SIGUSR1 and SIGUSR2 while it starts, and " +
    "stops cleanly on a SIGTERM sent then" +
    (POSIX ? "" : " (skipped: Windows has none of these)"),
  ignore: !POSIX,
  async fn() {
    await withTempDir(async (dir) => {
      // A large quotes file keeps greeter reading for a while at start-up.
      const line = new TextEncoder().encode("A quote that is long enough.\n");
      const quotes = new Uint8Array(8 * 1024 * 1024);
      for (let at = 0; at + line.length <= quotes.length; at += line.length) {
        quotes.set(line, at);
      }
      await Deno.writeFile(`${dir}/quotes.txt`, quotes);
      for (const signals of [["SIGHUP", "SIGUSR1", "SIGUSR2"], ["SIGTERM"]]) {
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--no-prompt",
            "--unstable-net",
            "--allow-net",
            "--allow-read",
            MAIN,
            "-H",
            "127.0.0.1",
            "-p",
            "0",
            "--preset",
            "qotd",
            "--quotes-file",
            `${dir}/quotes.txt`,
          ],
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
          env: { NO_COLOR: "1" },
        }).spawn();
        await guardBound(10_000);
        for (const signal of signals) child.kill(signal as Deno.Signal);
        let stdout = "";
        const stderr = new Response(child.stderr).text();
        // Bounded: a lost signal fails the test instead of hanging it.
        const bound = setTimeout(() => child.kill("SIGKILL"), 20_000);
        for await (
          const text of child.stdout.pipeThrough(new TextDecoderStream())
        ) {
          stdout += text;
          // Started after all, and did the reload it was sent: now stop.
          if (/^Configuration reloaded/m.test(stdout)) child.kill("SIGTERM");
        }
        clearTimeout(bound);
        const { code } = await child.status;
        assertEquals(code, 0, await stderr);
        assertMatch(stdout, /^Server is listening/m);
        assertMatch(stdout, /^Server stopped: 0 connections/m);
        if (signals[0] !== "SIGTERM") {
          assertMatch(stdout, /^Stats: uptime/m);
          assertMatch(stdout, /^Configuration reloaded/m);
        }
      }
    });
  },
});
