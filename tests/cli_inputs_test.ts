// Issue 13, point 4: every file named on the command line is read with a
// limit. A device, a FIFO, a directory or a huge file is one line and exit
// 2, at once and in little memory, never a hang or gigabytes read.
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { loadPreset } from "./_load_preset.ts";
import { UsageError } from "../lib/cli/flags.ts";
import { prepare } from "../lib/cli/setup.ts";
import { parseServe, type ServeCommand } from "../lib/cli/commands/serve.ts";
import { runCli, startCli, withTempDir } from "./_helpers.ts";

/** GNU time, to read the child's peak RSS; absent on some systems. */
const TIME = "/usr/bin/time";
const hasTime = await Deno.stat(TIME).then(() => true, () => false);

/** Most the whole run may take, start-up of deno included. */
const WITHIN_MS = 1000;
/** Most memory the child may use at its peak. */
const MAX_RSS_KB = 100 * 1024;

/**
 * Runs greeter under GNU time and checks: exit 2, one line on stderr that
 * holds `includes`, within {@linkcode WITHIN_MS}, and peak RSS under
 * {@linkcode MAX_RSS_KB}.
 */
async function assertRefusedQuickly(
  dir: string,
  args: string[],
  includes: string[],
): Promise<{ ms: number; rssKb: number }> {
  const report = `${dir}/time.txt`;
  const started = performance.now();
  const result = await runCli(args, {
    prefix: [TIME, "-f", "%M", "-o", report],
  });
  const ms = performance.now() - started;
  const where = `${JSON.stringify(args)}: ${JSON.stringify(result.stderr)}`;
  assertEquals(result.code, 2, where);
  assertEquals(result.stdout, "", where);
  const lines = result.stderr.trimEnd().split("\n");
  assertEquals(lines.length, 1, where);
  assert(!result.stderr.includes("    at "), where);
  for (const text of includes) assertStringIncludes(lines[0], text, where);
  // GNU time writes "Command exited with non-zero status 2" before %M.
  const rssKb = Number(
    (await Deno.readTextFile(report)).trim().split("\n").at(-1),
  );
  assert(ms < WITHIN_MS, `${where} took ${Math.round(ms)} ms`);
  assert(rssKb > 0 && rssKb < MAX_RSS_KB, `${where} used ${rssKb} KB`);
  return { ms, rssKb };
}

/** Makes a FIFO at `path` (Deno has no mkfifo). */
async function mkfifo(path: string): Promise<void> {
  const { success } = await new Deno.Command("mkfifo", { args: [path] })
    .output();
  assert(success, "mkfifo failed");
}

Deno.test({
  name:
    "greeter --message-file refuses /dev/zero, a FIFO, a directory and a 2 GiB file in one line, fast and small",
  ignore: !hasTime || Deno.build.os !== "linux",
  async fn() {
    await withTempDir(async (dir) => {
      const fifo = `${dir}/fifo`;
      await mkfifo(fifo);
      const sparse = `${dir}/sparse`;
      await Deno.writeFile(sparse, new Uint8Array());
      await Deno.truncate(sparse, 2 * 1024 ** 3);
      // Warm deno's module cache, so the timing is greeter's, not a compile.
      await runCli(["--version"]);
      const cases: [string, string[]][] = [
        ["/dev/zero", ["it is a character device; give the path of a regular"]],
        [fifo, ["it is a FIFO (named pipe)"]],
        [dir, ["it is a directory"]],
        [sparse, [
          "it is larger than the limit of 1 MiB (2048 MiB)",
          "raise the limit with --max-file-size",
        ]],
      ];
      const figures: string[] = [];
      for (const [path, includes] of cases) {
        const { ms, rssKb } = await assertRefusedQuickly(
          dir,
          ["-H", "127.0.0.1", "-p", "0", "--message-file", path],
          [`Cannot read message file "${path}": `, ...includes],
        );
        figures.push(`${path}: ${Math.round(ms)} ms, ${rssKb} KB`);
      }
      console.log(figures.join("\n"));
    });
  },
});

Deno.test({
  name:
    "greeter refuses /dev/zero as --quotes-file, --tls-cert, --tls-key and --ca",
  ignore: !hasTime || Deno.build.os !== "linux",
  async fn() {
    await withTempDir(async (dir) => {
      const cert = `${dir}/cert.pem`;
      await Deno.writeTextFile(cert, "not read: the key fails first\n");
      const cases: [string[], string][] = [
        [
          ["--preset", "qotd", "--quotes-file", "/dev/zero"],
          'Cannot read quotes file "/dev/zero": it is a character device',
        ],
        [
          ["--tls-cert", "/dev/zero", "--tls-key", cert],
          'Cannot read TLS certificate "/dev/zero": it is a character device',
        ],
        [
          ["--tls-cert", cert, "--tls-key", "/dev/zero"],
          'Cannot read TLS key "/dev/zero": it is a character device',
        ],
      ];
      for (const [args, message] of cases) {
        await assertRefusedQuickly(
          dir,
          ["-H", "127.0.0.1", "-p", "0", ...args],
          [
            message,
          ],
        );
      }
      for (const command of ["connect", "check"]) {
        await assertRefusedQuickly(
          dir,
          [command, "127.0.0.1:1", "--tls", "--ca", "/dev/zero"],
          ['Cannot read CA file "/dev/zero": it is a character device'],
        );
      }
    });
  },
});

Deno.test("greeter --max-file-size lowers and raises the limit of a message file", async () => {
  await withTempDir(async (dir) => {
    const big = `${dir}/big.txt`;
    // One byte over the default limit of 1 MiB.
    await Deno.writeTextFile(big, "a".repeat(1024 * 1024 + 1));
    const small = `${dir}/small.txt`;
    await Deno.writeTextFile(small, "Hello");
    const local = ["-H", "127.0.0.1", "-p", "0", "--message-file"];
    const [over, lowered, bad] = await Promise.all([
      runCli([...local, big]),
      runCli([...local, small, "--max-file-size", "4"]),
      runCli([...local, small, "--max-file-size", "2GiB"]),
    ]);
    assertEquals(over.code, 2);
    assertStringIncludes(over.stderr, "larger than the limit of 1 MiB;");
    assertEquals(lowered.code, 2);
    assertStringIncludes(lowered.stderr, "larger than the limit of 4 bytes");
    assertEquals(bad.code, 2);
    assertStringIncludes(
      bad.stderr,
      'Invalid value "2GiB" for --max-file-size: use a size from 1 byte to 1GiB',
    );
    await using server = await startCli([
      ...local,
      big,
      "--max-file-size",
      "2MiB",
    ]);
    assertEquals((await server.stop()).code, 0);
  });
});

Deno.test("loadPreset() reads a quotes file up to 16 MiB by default, and no more", async () => {
  await withTempDir(async (dir) => {
    const quotes = `${dir}/quotes.txt`;
    const line =
      "A quote long enough to count, but short of RFC 865's limit.\n";
    // Just over 2 MiB: above the 1 MiB of other files.
    await Deno.writeTextFile(
      quotes,
      line.repeat(Math.ceil(2 * 1024 ** 2 / line.length)),
    );
    await loadPreset("qotd", { quotesFile: quotes });
    const error = await loadPreset("qotd", {
      quotesFile: quotes,
      maxFileSize: 1024 * 1024,
    }).then(() => undefined, (error) => error);
    assert(error instanceof UsageError, String(error));
    assertStringIncludes(error.message, "larger than the limit of 1 MiB");
    const huge = `${dir}/huge.txt`;
    await Deno.writeFile(huge, new Uint8Array());
    await Deno.truncate(huge, 16 * 1024 ** 2 + 1);
    const tooMany = await loadPreset("qotd", { quotesFile: huge }).then(
      () => undefined,
      (error) => error,
    );
    assert(tooMany instanceof UsageError, String(tooMany));
    assertStringIncludes(tooMany.message, "larger than the limit of 16 MiB");
  });
});

Deno.test({
  name:
    "greeter says the TLS certificate's error first when the key cannot be read either",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await withTempDir(async (dir) => {
      const big = `${dir}/big.pem`;
      await Deno.writeTextFile(big, "a".repeat(1024 * 1024 + 1));
      // /proc/self/maps is over the limit only once read (its size is 0),
      // so its error comes last were the two read together.
      const cases = [[big, big], ["/proc/self/maps", `${dir}/missing.pem`]];
      for (const [cert, key] of cases) {
        for (let i = 0; i < 10; i++) {
          const command = parseServe(
            ["--tls-cert", cert, "--tls-key", key, "--max-file-size", "100"],
          ) as ServeCommand;
          const error = await assertRejects(
            () => prepare(command, true),
            UsageError,
          );
          assertStringIncludes(
            error.message,
            `Cannot read TLS certificate ${JSON.stringify(cert)}: `,
          );
        }
      }
    });
  },
});
