import { assert, assertEquals, assertRejects } from "@std/assert";
import { readLimited, ReadLimitedError } from "../lib/cli/read_limited.ts";
import { readInputFile } from "../lib/cli/setup.ts";
import { UsageError } from "../lib/cli/flags.ts";
import { canRun, withTempDir } from "./_helpers.ts";

const FIXTURE = new URL("./_read_limited_fixture.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;
const encoder = new TextEncoder();

interface Report {
  ok: boolean;
  length?: number;
  kind?: string;
  fileType?: string;
  size?: number;
  limit?: number;
  message?: string;
  other?: string;
  ms: number;
  maxRssBytes: number | null;
}

/** Reads `path` in a fresh process (killed after 10 s, should it block). */
async function readInProcess(
  path: string,
  limit: number,
  permissions = ["--allow-read"],
): Promise<Report> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...permissions, FIXTURE, path, String(limit)],
    stdin: "null",
    signal: AbortSignal.timeout(10_000),
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
  return JSON.parse(text);
}

/**
 * Reads `path` as {@linkcode readInProcess} does, with --allow-all so the
 * fixture can read its peak RSS from /proc, and asserts the refusal was
 * quick and cheap, as the issue asks: under 1 s and 100 MB.
 */
async function readCheaply(path: string, limit: number): Promise<Report> {
  const report = await readInProcess(path, limit, ["--allow-all"]);
  assert(report.ms < 1000, `took ${report.ms} ms`);
  assert(report.maxRssBytes !== null, "peak RSS unknown");
  assert(
    report.maxRssBytes! < 100 * MiB,
    `peak RSS ${report.maxRssBytes} bytes`,
  );
  // And the same answer with the binaries' plain --allow-read.
  const plain = await readInProcess(path, limit);
  assertEquals(
    [plain.kind, plain.fileType, plain.size],
    [report.kind, report.fileType, report.size],
  );
  assert(plain.ms < 1000, `took ${plain.ms} ms`);
  return report;
}

Deno.test("readLimited() refuses /dev/zero without opening it, quickly and in little memory", async () => {
  const report = await readCheaply("/dev/zero", MiB);
  assertEquals(
    [report.ok, report.kind, report.fileType, report.limit],
    [false, "not-a-file", "character-device", MiB],
  );
  assertEquals(
    report.message,
    "it is a character device; give the path of a regular file",
  );
});

Deno.test("readLimited() refuses a FIFO without blocking on it", async (t) => {
  if (!(await canRun("mkfifo", ["--version"]))) {
    t.step({ name: "skipped: mkfifo is not installed", ignore: true, fn() {} });
    return;
  }
  await withTempDir(async (dir) => {
    const fifo = `${dir}/fifo`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assertEquals(made.code, 0);
    const report = await readCheaply(fifo, MiB);
    assertEquals([report.ok, report.kind, report.fileType], [
      false,
      "not-a-file",
      "fifo",
    ]);
    assertEquals(
      report.message,
      "it is a FIFO (named pipe); give the path of a regular file",
    );
  });
});

Deno.test("readLimited() refuses a directory", async () => {
  await withTempDir(async (dir) => {
    const report = await readCheaply(dir, MiB);
    assertEquals([report.ok, report.kind, report.fileType], [
      false,
      "not-a-file",
      "directory",
    ]);
  });
});

Deno.test("readLimited() refuses a 2 GiB sparse file by its size, reading none of it", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/sparse`;
    await Deno.writeFile(path, new Uint8Array());
    await Deno.truncate(path, 2 * 1024 * MiB); // sparse: no blocks written
    const report = await readCheaply(path, MiB);
    assertEquals(
      [report.ok, report.kind, report.size, report.limit],
      [false, "too-large", 2 * 1024 * MiB, MiB],
    );
    assertEquals(
      report.message,
      "it is larger than the limit of 1 MiB (2048 MiB); raise the limit " +
        "with --max-file-size, such as --max-file-size 64MiB",
    );
  });
});

Deno.test("readLimited() caps the read of a file whose stat says 0 bytes (/proc)", async () => {
  // Deno lets only --allow-all read /proc. /proc/self/status is over 1 KiB
  // but reports size 0: only the bounded read can catch it.
  const small = await readInProcess("/proc/self/status", 100, ["--allow-all"]);
  assertEquals(
    [small.ok, small.kind, small.size],
    [false, "too-large", 101],
  );
  assertEquals(
    small.message,
    "it is larger than the limit of 100 bytes; raise the limit with " +
      "--max-file-size, such as --max-file-size 64MiB",
  );
  const whole = await readInProcess("/proc/self/status", MiB, ["--allow-all"]);
  assertEquals(whole.ok, true);
  assert(whole.length! > 100, `read ${whole.length} bytes`);
  // Without --allow-all, Deno refuses before anything is opened.
  const denied = await readInProcess("/proc/self/status", MiB);
  assertEquals([denied.ok, denied.kind], [false, "not-permitted"]);
});

Deno.test("readLimited() reads a regular file up to exactly the limit", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/message.txt`;
    const bytes = encoder.encode("Connection Established\r\n");
    await Deno.writeFile(path, bytes);
    assertEquals(await readLimited(path, MiB), bytes);
    assertEquals(await readLimited(path, bytes.length), bytes);
    const error = await assertRejects(
      () => readLimited(path, bytes.length - 1),
      ReadLimitedError,
    );
    assertEquals([error.kind, error.size, error.limit], [
      "too-large",
      bytes.length,
      bytes.length - 1,
    ]);
    await Deno.writeFile(path, new Uint8Array());
    assertEquals(await readLimited(path, 0), new Uint8Array());
  });
});

Deno.test("readLimited() reads a file larger than one chunk exactly", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/quotes.txt`;
    const bytes = new Uint8Array(300_000).map((_, i) => (i * 7) % 251);
    await Deno.writeFile(path, bytes);
    assertEquals(await readLimited(path, bytes.length), bytes);
  });
});

Deno.test("readLimited() refuses a socket, and a symlink to a device", async () => {
  await withTempDir(async (dir) => {
    const socketPath = `${dir}/greeter.sock`;
    const listener = Deno.listen({ transport: "unix", path: socketPath });
    try {
      const error = await assertRejects(
        () => readLimited(socketPath, MiB),
        ReadLimitedError,
      );
      assertEquals([error.kind, error.fileType], ["not-a-file", "socket"]);
      assertEquals(
        error.message,
        "it is a socket; give the path of a regular file",
      );
    } finally {
      listener.close();
    }
    const link = `${dir}/banner.txt`;
    await Deno.symlink("/dev/zero", link);
    const error = await assertRejects(
      () => readLimited(link, MiB),
      ReadLimitedError,
    );
    assertEquals([error.kind, error.fileType], [
      "not-a-file",
      "character-device",
    ]);
  });
});

Deno.test("readLimited() says when a file is missing or Deno may not read it", async () => {
  await withTempDir(async (dir) => {
    const missing = `${dir}/missing\nfile`;
    const error = await assertRejects(
      () => readLimited(missing, MiB),
      ReadLimitedError,
    );
    assertEquals([error.kind, error.path, error.limit], [
      "not-found",
      missing,
      MiB,
    ]);
    // The reason alone: the command line names the file, escaped.
    assertEquals(error.message, "no such file");
    await assertRejects(
      () => readInputFile(missing, "message file"),
      UsageError,
      `Cannot read message file "${dir}/missing\\nfile": no such file`,
    );
    assert(error.cause instanceof Deno.errors.NotFound);

    const path = `${dir}/message.txt`;
    await Deno.writeTextFile(path, "hello");
    const report = await readInProcess(path, MiB, []);
    assertEquals([report.ok, report.kind], [false, "not-permitted"]);
    assertEquals(
      report.message,
      "greeter lacks read permission (run deno with --allow-read)",
    );
  });
});

Deno.test("readLimited() refuses a limit that is not a whole number of bytes", async () => {
  for (const limit of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
    await assertRejects(() => readLimited("/dev/null", limit), RangeError);
  }
});

Deno.test({
  name: "readLimited() never blocks on a FIFO swapped in between its stat " +
    "and its open" +
    (Deno.build.os === "windows" ? " (skipped: no FIFOs)" : ""),
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const target = `${dir}/message.txt`;
      await Deno.writeTextFile(`${dir}/regular`, "hello\n");
      const fifo = await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] })
        .output();
      assert(fifo.success, "mkfifo failed");
      await Deno.copyFile(`${dir}/regular`, target);
      // Swaps the path between the regular file and the FIFO by rename (so
      // it always exists), as fast as it can, for a bounded count.
      const swapper = new Deno.Command("python3", {
        args: [
          "-c",
          `import os
d = ${JSON.stringify(dir)}
for i in range(30000):
    src = d + ("/fifo" if i % 2 == 0 else "/regular")
    os.link(src, d + "/next")
    os.rename(d + "/next", d + "/message.txt")`,
        ],
        stdout: "null",
      }).spawn();
      let running = true;
      const swapped = swapper.status.then(() => running = false);
      let read = 0, refused = 0, hung = 0;
      // Until the swapper is done (bounded by its count), or both kinds of
      // answer came often enough.
      for (let i = 0; running && i < 20_000; i++) {
        if (read >= 200 && refused >= 200) break;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const outcome = await Promise.race([
          readLimited(target, 1024).then(
            (bytes) => new TextDecoder().decode(bytes),
            (error) => error,
          ),
          new Promise((resolve) => timer = setTimeout(resolve, 2_000, "hung")),
        ]);
        clearTimeout(timer);
        if (outcome === "hello\n") read++;
        else if (outcome === "hung") {
          hung++;
          break;
        } else {
          assert(outcome instanceof ReadLimitedError, String(outcome));
          assertEquals(outcome.fileType, "fifo");
          refused++;
        }
      }
      if (running) swapper.kill();
      await swapped;
      assertEquals(
        hung,
        0,
        `a read hung (after ${read} read, ${refused} refused)`,
      );
      assert(read > 0 && refused > 0, `read ${read}, refused ${refused}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
