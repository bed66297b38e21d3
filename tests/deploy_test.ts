// The deployment files' greeter command lines, run for real with main.ts:
// no Docker engine or systemd is needed to check that the Dockerfile's
// command serves and its HEALTHCHECK passes against it, or that the unit's
// ExecStart starts greeter. Where systemd-analyze is installed, it checks
// the unit itself.
import { assert, assertEquals, assertMatch } from "@std/assert";
import dockerignore from "@balena/dockerignore";
import { canRun, closedPort, ROOT, runCli, startCli } from "./_helpers.ts";

// A CommonJS module whose export is the function its types call `default`.
const ignore = dockerignore as unknown as typeof dockerignore.default;

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

/** The value of `--port` in a greeter command line. */
function portIndex(args: string[]): number {
  const index = args.indexOf("--port") + 1;
  if (index === 0 || index === args.length) {
    throw new Error(`No --port PORT in ${args.join(" ")}`);
  }
  return index;
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

  // The files say 8080; the test serves on a free port (8080 may be busy
  // here) and points the health check at it, once it has checked that the
  // check targets the port the command serves.
  const port = portIndex(command);
  assertEquals(command[port], "8080");
  const target = health.indexOf(`127.0.0.1:${command[port]}`);
  assert(target > 0, `HEALTHCHECK targets the port CMD serves: ${health}`);
  const checkHealth = (live: number) =>
    runCli(health.slice(1).with(target - 1, `127.0.0.1:${live}`));
  {
    await using server = await startCli(command.with(port, "0"));
    const result = await checkHealth(server.port);
    assertEquals(result.code, 0, result.stderr);
    assertMatch(
      result.stdout,
      new RegExp(
        `^OK 127\\.0\\.0\\.1:${server.port} sent the expected greeting \\(24 bytes\\)`,
      ),
    );
    const { code } = await server.stop();
    if (!onWindows) assertEquals(code, 0);
  }
  // With no server the check fails, so "healthy" means something.
  const down = await checkHealth(closedPort());
  assertEquals(down.code, 1);
  assertMatch(down.stdout, /^FAIL .*127\.0\.0\.1:\d+.*connection refused/);
});

Deno.test("systemd unit's ExecStart starts greeter", async () => {
  const unit = await Deno.readTextFile(`${ROOT}/deploy/greeter.service`);
  const execStart = /^ExecStart=(.+)$/m.exec(unit)?.[1].trim().split(/\s+/);
  assertEquals(execStart?.[0], BINARY);
  const args = execStart!.slice(1);
  const port = portIndex(args);
  assertEquals(args[port], "8080");
  // On a free port rather than 8080, which may be busy here.
  await using server = await startCli(args.with(port, "0"));
  assert(server.port > 0);
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

Deno.test("systemd Accept=yes unit's ExecStart is greeter --inetd with the socket on stdin and stdout", async () => {
  const unit = await Deno.readTextFile(`${ROOT}/deploy/greeter-inetd@.service`);
  const execStart = /^ExecStart=(.+)$/m.exec(unit)?.[1].trim().split(/\s+/);
  assertEquals(execStart, [BINARY, "--inetd"]);
  assertMatch(unit, /^StandardInput=socket$/m);
  assertMatch(unit, /^StandardOutput=socket$/m);
  // The connection line must not reach the client.
  assertMatch(unit, /^StandardError=journal$/m);
  const socket = await Deno.readTextFile(`${ROOT}/deploy/greeter-inetd.socket`);
  assertMatch(socket, /^Accept=yes$/m);
  const activated = await Deno.readTextFile(`${ROOT}/deploy/greeter.socket`);
  assertMatch(activated, /^Accept=no$/m);
  assertMatch(activated, /^ListenStream=8080$/m);
});

Deno.test({
  name: "systemd socket units pass systemd-analyze verify with their services" +
    (analyze ? "" : " (skipped: systemd-analyze is not installed)"),
  ignore: !analyze,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "greeter-units-" });
    try {
      for (
        const name of [
          "greeter.service",
          "greeter.socket",
          "greeter-inetd.socket",
          "greeter-inetd@.service",
        ]
      ) {
        const unit = (await Deno.readTextFile(`${ROOT}/deploy/${name}`))
          .replaceAll(BINARY, `${dir}/greeter`);
        await Deno.writeTextFile(`${dir}/${name}`, unit);
      }
      await Deno.writeTextFile(`${dir}/greeter`, "#!/bin/sh\n", {
        mode: 0o755,
      });
      for (
        const units of [
          ["./greeter.socket", "./greeter.service"],
          ["./greeter-inetd.socket", "./greeter-inetd@.service"],
          // An instance, as systemd makes one per client.
          ["./greeter-inetd@1.service"],
        ]
      ) {
        const output = await new Deno.Command("systemd-analyze", {
          args: ["verify", "--man=no", ...units],
          cwd: dir,
          stdin: "null",
          env: { SYSTEMD_COLORS: "0" },
        }).output();
        assertEquals(
          {
            code: output.code,
            text: decoder.decode(output.stdout) +
              decoder.decode(output.stderr),
          },
          { code: 0, text: "" },
          units.join(" "),
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("Dockerfile's build stage copies every file the compile step reads", async () => {
  // The sources COPY'd into the build stage, as paths (files or folders).
  const copied = (await dockerInstructions())
    .filter((line) => /^COPY (?!--from)/.test(line))
    .flatMap((line) => line.split(/\s+/).slice(1, -1))
    .map((path) => path.replace(/^\.\//, "").replace(/\/$/, ""));
  const inBuild = (path: string) =>
    copied.some((source) => path === source || path.startsWith(`${source}/`));
  // Every local module of main.ts and of the worker module compile embeds,
  // the compile script's, and deno.json's import map targets.
  const roots = ["main.ts", "lib/cli/workers/entry.ts", "scripts/compile.ts"];
  const missing = new Set<string>();
  for (const root of roots) {
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", root],
      cwd: ROOT,
      stdout: "piped",
      stderr: "null",
    }).output();
    const info = JSON.parse(decoder.decode(stdout)) as {
      modules: { specifier: string }[];
    };
    for (const { specifier } of info.modules) {
      if (!specifier.startsWith("file:")) continue;
      const path = decodeURIComponent(new URL(specifier).pathname)
        .slice(new URL(`file://${ROOT}/`).pathname.length)
        .replace(/^\.\.\/[^/]+\//, "");
      if (!inBuild(path)) missing.add(path);
    }
  }
  assertEquals([...missing], []);
});

/** Every file under `path` (a file or a folder), relative to ROOT. */
async function filesUnder(path: string): Promise<string[]> {
  const info = await Deno.stat(`${ROOT}/${path}`);
  if (info.isFile) return [path];
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}/${path}`)) {
    files.push(...await filesUnder(`${path}/${entry.name}`));
  }
  return files;
}

/**
 * The files of the Dockerfile's COPY sources (not --from) that `rules`, a
 * .dockerignore, leaves out of the build context, by Docker's own matching
 * (@balena/dockerignore, a port of Moby's). A COPY of a missing file or of
 * an emptied folder fails the build.
 */
async function missingFromContext(rules: string): Promise<string[]> {
  const context = ignore().add(rules.split("\n"));
  const sources = (await dockerInstructions())
    .filter((line) => /^COPY (?!--from)/.test(line))
    .flatMap((line) => line.split(/\s+/).slice(1, -1))
    .map((path) => path.replace(/^\.\//, "").replace(/\/$/, ""));
  assert(sources.length > 0, "the Dockerfile copies nothing");
  const missing: string[] = [];
  for (const source of sources) {
    if (context.ignores(source)) {
      missing.push(source);
      continue;
    }
    for (const file of await filesUnder(source)) {
      if (context.ignores(file)) missing.push(file);
    }
  }
  return missing;
}

Deno.test(".dockerignore keeps every file the Dockerfile copies in the build context", async () => {
  const rules = await Deno.readTextFile(`${ROOT}/.dockerignore`);
  assertEquals(await missingFromContext(rules), []);
  // The check bites: without its types/ line, the shims would be left out
  // and `COPY types/ types/` would fail, as it once did.
  const withoutTypes = rules.replace(/^!types\/?\n/m, "");
  assert(withoutTypes !== rules, ".dockerignore re-includes types/");
  assert((await missingFromContext(withoutTypes)).includes("types"));
});
