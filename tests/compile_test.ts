// `deno task compile` run for real. Where the Deno runtime base (denort)
// cannot be downloaded it must fail in one line and write nothing; where it
// can (CI with network access), it must produce a working binary and a
// SHA256SUMS that matches it.
import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import config from "../deno.json" with { type: "json" };
import { sha256File } from "../scripts/checksums.ts";
import { assetName, hostTarget, TARGETS } from "../scripts/targets.ts";
import { ROOT } from "./_helpers.ts";

const decoder = new TextDecoder();

/** Runs `deno task -q compile ARGS` (the task as people run it). */
async function runCompile(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile", ...args],
    cwd: ROOT,
    stdin: "null",
    env: { NO_COLOR: "1", DENORT_BIN: "", ...env },
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Asserts one line on stderr, starting "compile: ", with no stack trace. */
function assertOneLine(stderr: string, pattern: RegExp) {
  assertEquals(stderr.trim().split("\n").length, 1, stderr);
  assertMatch(stderr, /^compile: /);
  assertMatch(stderr, pattern);
  assert(!/\n\s+at |Stack backtrace|Caused by/.test(stderr), stderr);
}

/** Every entry in `dir`, with each file's bytes, to compare before/after. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const entries = new Map<string, string>();
  for await (const entry of Deno.readDir(dir)) {
    entries.set(
      entry.name,
      entry.isFile ? await sha256File(`${dir}/${entry.name}`) : "(dir)",
    );
  }
  return entries;
}

/** A scratch directory holding `dist/`; the compile stage goes beside it. */
async function scratch(): Promise<{ root: string; dist: string }> {
  const root = await Deno.makeTempDir({ prefix: "greeter-compile-test-" });
  return { root, dist: `${root}/dist` };
}

Deno.test("compile refuses an unknown target as a usage error", async () => {
  const { root, dist } = await scratch();
  try {
    const result = await runCompile([
      "--target",
      "x86_64-unknown-linux-gnu,windows-95",
      "--out-dir",
      dist,
    ]);
    assertEquals(result.code, 2, result.stderr);
    assertOneLine(result.stderr, /Unknown target "windows-95": use one of /);
    for (const target of TARGETS) assertStringIncludes(result.stderr, target);
    assertEquals(result.stdout, "");
    assertEquals([...await snapshot(root)], [], "nothing created");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("compile refuses an unknown option as a usage error", async () => {
  const result = await runCompile(["--targets", "all"]);
  assertEquals(result.code, 2, result.stderr);
  assertOneLine(result.stderr, /Unknown option --targets/);
});

Deno.test("compile --help lists every target", async () => {
  const result = await runCompile(["--help"]);
  assertEquals(result.code, 0, result.stderr);
  for (const target of TARGETS) assertStringIncludes(result.stdout, target);
  assertStringIncludes(result.stdout, "DENORT_BIN");
});

Deno.test("compile reports a DENORT_BIN that does not exist in one line", async () => {
  const { root, dist } = await scratch();
  try {
    const missing = `${root}/no-such-denort`;
    const result = await runCompile(["--out-dir", dist], {
      DENORT_BIN: missing,
    });
    assertEquals(result.code, 2, result.stderr);
    assertOneLine(
      result.stderr,
      /DENORT_BIN points at ".*no-such-denort", which does not exist: set it to a denort/,
    );
    assertEquals([...await snapshot(root)], [], "nothing created");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("compile refuses a DENORT_BIN serving more than one target", async () => {
  const result = await runCompile(
    [
      "--target",
      "x86_64-unknown-linux-gnu",
      "--target",
      "aarch64-apple-darwin",
    ],
    { DENORT_BIN: Deno.execPath() },
  );
  assertEquals(result.code, 2, result.stderr);
  assertOneLine(result.stderr, /DENORT_BIN is a runtime for one target/);
});

Deno.test({
  name: "compile refuses a binary built on deno instead of denort and keeps " +
    "dist/ as it was",
  ignore: hostTarget() === undefined,
  async fn() {
    const { root, dist } = await scratch();
    try {
      // An earlier build's files, which a failed build must not touch.
      await Deno.mkdir(dist);
      await Deno.writeTextFile(`${dist}/SHA256SUMS`, "earlier\n");
      await Deno.writeTextFile(`${dist}/greeter-0.0.1-earlier`, "earlier\n");
      const before = await snapshot(dist);

      // deno itself makes a base that deno compile accepts, but the result
      // is deno, not greeter: exactly the mistake the check is there for.
      const result = await runCompile(
        ["--out-dir", dist, "--timeout", "120"],
        { DENORT_BIN: Deno.execPath() },
      );
      assertEquals(result.code, 1, result.stderr);
      assertOneLine(
        result.stderr,
        new RegExp(
          `The binary built for ${hostTarget()} gives (".*"|an error .*) for --version, ` +
            `not "greeter ${config.version}": DENORT_BIN must point at denort`,
        ),
      );
      assertEquals(await snapshot(dist), before);
      assertEquals([...(await snapshot(root)).keys()], ["dist"], "no stage");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "compile builds the host binary and SHA256SUMS, or says in one line " +
    "that the Deno runtime cannot be downloaded and writes nothing",
  ignore: hostTarget() === undefined,
  async fn() {
    const target = hostTarget()!;
    const name = assetName(config.version, target);
    const { root, dist } = await scratch();
    try {
      const result = await runCompile([
        "--target",
        target,
        "--out-dir",
        dist,
        "--timeout",
        "300",
      ]);
      if (result.code === 0) {
        // Network access: check what was built.
        assertEquals(
          [...(await snapshot(dist)).keys()].sort(),
          ["SHA256SUMS", name],
        );
        assertEquals(
          await Deno.readTextFile(`${dist}/SHA256SUMS`),
          `${await sha256File(`${dist}/${name}`)}  ${name}\n`,
        );
        const version = await new Deno.Command(`${dist}/${name}`, {
          args: ["--version"],
          stdin: "null",
        }).output();
        assertEquals(
          decoder.decode(version.stdout),
          `greeter ${config.version}\n`,
        );
        assertStringIncludes(result.stdout, name);
      } else {
        assertEquals(result.code, 1, result.stderr);
        assertOneLine(
          result.stderr,
          /(Cannot download the Deno runtime \(denort\) for \S+ from https:\/\/\S+: .*|did not finish within 300 s.*); .*set DENORT_BIN/,
        );
        assertEquals([...await snapshot(dist)], [], "dist/ left empty");
        assertEquals([...(await snapshot(root)).keys()], ["dist"], "no stage");
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
