// The SIGUSR1 debugger guard's cases (tests/_debugger_guard_cases.ts) need
// 127.0.0.1:9229 to themselves: they hold it, release it and attack it. On the
// host it may be held by anything (a deno --inspect, another greeter of a
// parallel test), so as root they run in a network namespace of their own
// (unshare --net, loopback up), where the address is always free, and each
// case is reported here as a step.
import { assert, assertEquals } from "@std/assert";
import { canRun, DENO_TEST } from "./_helpers.ts";

const CASES = new URL("./_debugger_guard_cases.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

const isolated = Deno.build.os === "linux" && Deno.uid() === 0 &&
  await canRun("unshare", ["--version"]) && await canRun("ip", ["-V"]);

/** One case's result line of `deno test`: `NAME ... ok (12ms)`. */
const RESULT = /^(.*) \.\.\. (ok|FAILED|ignored) \(/;

Deno.test({
  name: "the SIGUSR1 debugger guard's cases pass " +
    (isolated
      ? "in a network namespace of their own"
      : "on the host (not root: no network namespace; they skip when " +
        "127.0.0.1:9229 is taken)"),
  ignore: Deno.build.os === "windows",
  async fn(t) {
    const test = [...DENO_TEST, CASES];
    const command = isolated
      ? new Deno.Command("unshare", {
        args: [
          "--net",
          "--",
          "sh",
          "-c",
          'ip link set lo up && exec "$0" "$@"',
          Deno.execPath(),
          ...test,
        ],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
        stdin: "null",
        signal: AbortSignal.timeout(120_000),
      })
      : new Deno.Command(Deno.execPath(), {
        args: test,
        cwd: ROOT,
        env: { NO_COLOR: "1" },
        stdin: "null",
        signal: AbortSignal.timeout(120_000),
      });
    const output = await command.output();
    const text = new TextDecoder().decode(output.stdout) +
      new TextDecoder().decode(output.stderr);
    const results = text.split("\n").flatMap((line) => {
      const match = RESULT.exec(line);
      return match ? [{ name: match[1], result: match[2] }] : [];
    });
    assert(results.length >= 5, `expected the guard's cases:\n${text}`);
    for (const { name, result } of results) {
      await t.step({
        name,
        ignore: result === "ignored",
        fn: () => assertEquals(result, "ok", text),
      });
    }
    assertEquals(output.code, 0, text);
    if (isolated) {
      // In its own namespace, nothing holds 127.0.0.1:9229: every case runs.
      assertEquals(results.filter((r) => r.result === "ignored"), [], text);
    }
  },
});
