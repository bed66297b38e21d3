// The deployment files' greeter command lines, run for real with main.ts:
// no Docker engine or systemd is needed to check that the Dockerfile's
// command serves and its HEALTHCHECK passes against it, or that the unit's
// ExecStart starts greeter. Where systemd-analyze is installed, it checks
// the unit itself.
import { assertEquals, assertMatch } from "@std/assert";
import { canRun, ROOT, runCli, startCli } from "./_helpers.ts";

const BINARY = "/usr/local/bin/greeter";
// Windows has no SIGTERM to stop cleanly with: there the exit is not checked.
const onWindows = Deno.build.os === "windows";
const decoder = new TextDecoder();

/** The Dockerfile's instructions, continuation lines joined. */
async function dockerInstructions(): Promise<string[]> {
  const text = await Deno.readTextFile(`${ROOT}/Dockerfile`);
  return text.replace(/\\\n\s*/g, " ").split("\n")
    .filter((line) => line.trim() !== "" && !line.startsWith("#"));
}

/** The JSON (exec form) argument list of the last `NAME [...]` line. */
function execForm(lines: string[], pattern: RegExp): string[] {
  const line = lines.findLast((line) => pattern.test(line));
  const json = line && /(\[.*\])\s*$/.exec(line)?.[1];
  if (!json) throw new Error(`No exec-form ${pattern} in the Dockerfile`);
  return JSON.parse(json);
}

Deno.test("Dockerfile's command serves greeter and its HEALTHCHECK passes against it", async () => {
  const lines = await dockerInstructions();
  const entrypoint = execForm(lines, /^ENTRYPOINT /);
  const command = execForm(lines, /^CMD /);
  const health = execForm(lines, /^HEALTHCHECK .*CMD /);
  assertEquals(entrypoint, [BINARY]);
  assertEquals(health[0], BINARY, "greeter's own client");
  assertMatch(lines.find((l) => l.startsWith("USER "))!, /^USER [1-9]\d*:/);
  assertEquals(lines.find((l) => l.startsWith("EXPOSE ")), "EXPOSE 8080");

  const checkHealth = () => runCli(health.slice(1));
  {
    await using server = await startCli(command);
    assertEquals(server.port, 8080);
    const result = await checkHealth();
    assertEquals(result.code, 0, result.stderr);
    assertMatch(
      result.stdout,
      /^OK 127\.0\.0\.1:8080 sent the expected greeting \(24 bytes\)/,
    );
    const { code } = await server.stop();
    if (!onWindows) assertEquals(code, 0);
  }
  // With no server the check fails, so "healthy" means something.
  const down = await checkHealth();
  assertEquals(down.code, 1);
  assertMatch(down.stdout, /^FAIL .*127\.0\.0\.1:8080.*connection refused/);
});

Deno.test("systemd unit's ExecStart starts greeter", async () => {
  const unit = await Deno.readTextFile(`${ROOT}/deploy/greeter.service`);
  const execStart = /^ExecStart=(.+)$/m.exec(unit)?.[1].trim().split(/\s+/);
  assertEquals(execStart?.[0], BINARY);
  await using server = await startCli(execStart!.slice(1));
  assertEquals(server.port, 8080);
  const { code } = await server.stop("SIGTERM");
  if (!onWindows) assertEquals(code, 0, "a clean stop");
});

const analyze = await canRun("systemd-analyze");
Deno.test({
  name: "systemd unit passes systemd-analyze verify and security" +
    (analyze ? "" : " (skipped: systemd-analyze is not installed)"),
  ignore: !analyze,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "greeter-unit-" });
    try {
      // verify wants ExecStart's program to exist: any executable will do.
      const unit = (await Deno.readTextFile(`${ROOT}/deploy/greeter.service`))
        .replaceAll(BINARY, `${dir}/greeter`);
      await Deno.writeTextFile(`${dir}/greeter.service`, unit);
      await Deno.writeTextFile(`${dir}/greeter`, "#!/bin/sh\n", {
        mode: 0o755,
      });
      const run = async (args: string[]) => {
        const output = await new Deno.Command("systemd-analyze", {
          args,
          cwd: dir,
          stdin: "null",
          env: { SYSTEMD_COLORS: "0" },
        }).output();
        return {
          code: output.code,
          text: decoder.decode(output.stdout) + decoder.decode(output.stderr),
        };
      };
      const verify = await run(["verify", "--man=no", "./greeter.service"]);
      assertEquals(verify, { code: 0, text: "" });
      // Exposure is scored 0 (locked down) to 10; the unit scores 1.7.
      const security = await run([
        "security",
        "--offline=yes",
        "--threshold=20",
        "./greeter.service",
      ]);
      assertEquals(security.code, 0, security.text);
      assertMatch(
        security.text,
        /Overall exposure level for greeter\.service: 1\.\d/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
