import { assert, assertEquals, assertMatch } from "@std/assert";
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

/**
 * Waits until process `pid` catches SIGHUP (its SigCgt mask in /proc, read
 * through grep: Deno 2.9 reads /proc only under --allow-all): greeter's
 * first instruction has run.
 */
async function catchesSighup(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const { stdout } = await new Deno.Command("grep", {
      args: ["^SigCgt:", `/proc/${pid}/status`],
      stderr: "null",
    }).output();
    const mask = /SigCgt:\s*([0-9a-f]+)/.exec(new TextDecoder().decode(stdout));
    if (mask && (BigInt(`0x${mask[1]}`) & 1n) === 1n) return;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error("greeter never caught SIGHUP");
}

Deno.test({
  name: "greeter survives SIGHUP, SIGUSR1 and SIGUSR2 while it starts, and " +
    "stops cleanly on a SIGTERM sent then" +
    (Deno.build.os === "linux" ? "" : " (skipped: reads /proc)"),
  ignore: Deno.build.os !== "linux",
  async fn() {
    await withTempDir(async (dir) => {
      // A large quotes file keeps greeter reading for a while at start-up.
      const line = new TextEncoder().encode("A quote that is long enough.\n");
      const quotes = new Uint8Array(12 * 1024 * 1024);
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
        let stdout = "";
        let stopAfterReload = false;
        const pumped = (async () => {
          for await (
            const text of child.stdout.pipeThrough(new TextDecoderStream())
          ) {
            stdout += text;
            // Started after all, and did the reload it was sent: now stop.
            if (stopAfterReload && /^Configuration reloaded/m.test(stdout)) {
              child.kill("SIGTERM");
              stopAfterReload = false;
            }
          }
        })();
        const stderr = new Response(child.stderr).text();
        // Bounded: a lost signal fails the test instead of hanging it.
        const bound = setTimeout(() => child.kill("SIGKILL"), 20_000);
        await catchesSighup(child.pid, 10_000);
        // Caught while it still reads the quotes: long before it listens.
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert(!/Server is listening/.test(stdout), stdout);
        stopAfterReload = signals[0] !== "SIGTERM";
        for (const signal of signals) child.kill(signal as Deno.Signal);
        await pumped;
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
