// Smoke test of a compiled greeter binary for this machine, when
// `deno task compile` has put one in dist/ (or GREETER_BINARY names one).
// Without one the test reports itself skipped and says why, unless
// GREETER_REQUIRE_BINARY=1 (the release workflow), where that is a failure.
import { assert, assertEquals, assertMatch } from "@std/assert";
import config from "../deno.json" with { type: "json" };
import { assetName, hostTarget } from "../scripts/targets.ts";
import { DEFAULT_BYTES, readAll, ROOT, runCli, startCli } from "./_helpers.ts";

const target = hostTarget();
const expected = target
  ? `dist/${assetName(config.version, target)}`
  : undefined;
const binary = Deno.env.get("GREETER_BINARY") ||
  (expected ? `${ROOT}/${expected}` : undefined);
const found = binary !== undefined &&
  (await Deno.stat(binary).catch(() => undefined))?.isFile === true;
const required = Deno.env.get("GREETER_REQUIRE_BINARY") === "1";
const skipReason = found
  ? ""
  : target
  ? `no binary for ${target} in dist/; run deno task compile`
  : `greeter has no binary for ${Deno.build.target}`;

/** A test of the binary, or one that reports why there is none. */
function binaryTest(name: string, fn: (binary: string) => Promise<void>) {
  if (!found && required) {
    Deno.test(name, () => {
      throw new Error(`GREETER_REQUIRE_BINARY=1 but ${skipReason}`);
    });
    return;
  }
  Deno.test({
    name: found ? name : `${name} (skipped: ${skipReason})`,
    ignore: !found,
    fn: () => fn(binary!),
  });
}

binaryTest(
  `compiled binary prints "greeter ${config.version}" for --version`,
  async (binary) => {
    const result = await runCli(["--version"], { binary });
    assertEquals(result, {
      code: 0,
      stdout: `greeter ${config.version}\n`,
      stderr: "",
    });
  },
);

binaryTest(
  "compiled binary greets a client over loopback and stops on a signal",
  async (binary) => {
    // A message file proves the baked-in --allow-read; the default greeting
    // would not need it.
    const dir = await Deno.makeTempDir({ prefix: "greeter-binary-" });
    try {
      await Deno.writeTextFile(`${dir}/banner.txt`, "Connection Established\n");
      await using server = await startCli(
        ["-H", "127.0.0.1", "-p", "0", "--message-file", `${dir}/banner.txt`],
        { binary },
      );
      assertMatch(
        server.stdout(),
        /^Server is listening for incoming connections on 127\.0\.0\.1:\d+\n/,
      );
      assert(server.port > 0);
      assertEquals(await readAll(server.port), DEFAULT_BYTES);

      // The health check the Docker image runs: greeter's own client.
      const health = await runCli(
        ["connect", `127.0.0.1:${server.port}`, "--timeout", "2000"],
        { binary },
      );
      assertEquals(health.code, 0, health.stderr);
      assertEquals(health.stdout, new TextDecoder().decode(DEFAULT_BYTES));

      await server.waitFor(/(Connection received from 127\.0\.0\.1:\d+\n){2}/);
      const { code, stdout } = await server.stop(
        Deno.build.os === "windows" ? "SIGKILL" : "SIGTERM",
      );
      if (Deno.build.os !== "windows") {
        assertEquals(code, 0);
        assertMatch(stdout, /Server stopped: 2 connections, 2 greeted\n$/);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

binaryTest(
  "compiled binary refuses a bad option in one line",
  async (binary) => {
    const result = await runCli(["--port", "70000"], { binary });
    assertEquals(result.code, 2);
    assertEquals(result.stdout, "");
    assertMatch(
      result.stderr,
      /^greeter: Invalid value "70000" for --port[^\n]*\n$/,
    );
  },
);
