// scripts/install.sh run with sh against a release served on 127.0.0.1.
import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { assetName, hostTarget, type Target } from "../scripts/targets.ts";
import {
  BROKEN_BINARY,
  FIXTURE_VERSION,
  type ServedRelease,
  serveRelease,
} from "./_release_fixture.ts";
import { canRun, ROOT } from "./_helpers.ts";

const INSTALLER = `${ROOT}/scripts/install.sh`;
const decoder = new TextDecoder();

const onWindows = Deno.build.os === "windows";
const host = hostTarget();
// install.sh names Linux and macOS targets from uname, as Deno does.
const unixHost = host && !host.endsWith("-windows-msvc") ? host : undefined;
const skip = onWindows
  ? "install.sh is for Linux and macOS; install.ps1 is tested on Windows"
  : unixHost === undefined
  ? `greeter has no binary for ${Deno.build.target}`
  : "";

/** A test of install.sh, skipped with the reason where it cannot run. */
function installTest(
  name: string,
  fn: () => Promise<void>,
  reason = skip,
) {
  Deno.test({
    name: reason ? `${name} (skipped: ${reason})` : name,
    ignore: reason !== "",
    fn,
  });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Where install.sh was told to install, or its default under HOME. */
  dir: string;
  /** The files in `dir` afterwards (none if it does not exist). */
  files: string[];
}

/**
 * Runs install.sh against `release` with a clean environment, in a scratch
 * HOME that is also the working directory; `args` are sh's (another script
 * with `-c`).
 */
async function install(
  release: ServedRelease,
  env: Record<string, string> = {},
  args: string[] = [INSTALLER],
): Promise<Run> {
  const home = await Deno.makeTempDir({ prefix: "greeter-install-home-" });
  try {
    const dir = env.GREETER_INSTALL_DIR ?? `${home}/.local/bin`;
    const output = await new Deno.Command("sh", {
      args,
      cwd: home,
      stdin: "null",
      // No proxy variables or the developer's own GREETER_* settings.
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: home,
        GREETER_BASE_URL: release.baseUrl,
        ...env,
      },
    }).output();
    const files: string[] = [];
    try {
      for await (const entry of Deno.readDir(dir)) files.push(entry.name);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
      dir,
      files: files.sort(),
    };
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/** Like {@linkcode install}, keeping the installed file's bytes. */
async function installAndRead(
  release: ServedRelease,
  env: Record<string, string> = {},
): Promise<Run & { binary?: Uint8Array; mode?: number | null }> {
  let binary: Uint8Array | undefined;
  let mode: number | null | undefined;
  const dir = await Deno.makeTempDir({ prefix: "greeter-install-dir-" });
  try {
    const run = await install(release, { GREETER_INSTALL_DIR: dir, ...env });
    if (run.files.includes("greeter")) {
      binary = await Deno.readFile(`${dir}/greeter`);
      mode = (await Deno.stat(`${dir}/greeter`)).mode;
    }
    return { ...run, binary, mode };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts a refusal: exit 1, one line on stderr, nothing on stdout. */
function assertRefused(run: Run, pattern: RegExp) {
  assertEquals(run.code, 1, run.stderr);
  assertEquals(run.stderr.trim().split("\n").length, 1, run.stderr);
  assertMatch(run.stderr, /^install\.sh: [A-Z]/);
  assertMatch(run.stderr, pattern);
  assertEquals(run.stdout, "");
}

installTest(
  "installer installs this machine's binary in ~/.local/bin and says how to run it",
  async () => {
    await using release = await serveRelease();
    const target = unixHost!;
    const name = assetName(FIXTURE_VERSION, target);
    const run = await install(release);
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.stderr, "");
    assertEquals(run.files, ["greeter"]);
    assertEquals(release.requests, [
      "/latest/download/SHA256SUMS",
      `/latest/download/${name}`,
    ]);
    const lines = run.stdout.split("\n");
    assertEquals(
      lines[0],
      `Installed greeter ${FIXTURE_VERSION} (${target}) to ${run.dir}/greeter`,
    );
    // The temporary HOME is not on PATH, so it says how to get there.
    assertStringIncludes(run.stdout, `Run it as ${run.dir}/greeter --help`);
    assertStringIncludes(run.stdout, `export PATH="${run.dir}:$PATH"`);
  },
);

for (const downloader of ["curl", "wget"]) {
  const available = onWindows || await canRun(downloader);
  installTest(
    `installer installs a named version with ${downloader}`,
    async () => {
      await using release = await serveRelease();
      const name = assetName(FIXTURE_VERSION, unixHost!);
      const dir = await Deno.makeTempDir({ prefix: "greeter-install-dir-" });
      try {
        const run = await install(release, {
          GREETER_DOWNLOADER: downloader,
          GREETER_VERSION: `v${FIXTURE_VERSION}`,
          GREETER_INSTALL_DIR: dir,
          PATH: `${dir}:${Deno.env.get("PATH")}`,
        });
        assertEquals(run.code, 0, run.stderr);
        assertEquals(release.requests, [
          `/download/v${FIXTURE_VERSION}/SHA256SUMS`,
          `/download/v${FIXTURE_VERSION}/${name}`,
        ]);
        assertEquals(
          await Deno.readFile(`${dir}/greeter`),
          release.binary(unixHost!),
        );
        assertEquals((await Deno.stat(`${dir}/greeter`)).mode! & 0o777, 0o755);
        assertStringIncludes(run.stdout, "Run it: greeter --help\n");
        // The installed file runs: it is the release's binary, complete.
        const version = await new Deno.Command(`${dir}/greeter`, {
          args: ["--version"],
        }).output();
        assertEquals(
          decoder.decode(version.stdout),
          `greeter ${FIXTURE_VERSION}\n`,
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
    skip || (available ? "" : `${downloader} is not installed`),
  );
}

installTest(
  "installer picks the binary for each supported OS and processor",
  async () => {
    await using release = await serveRelease();
    const cases: [string, string, Target][] = [
      ["Linux", "x86_64", "x86_64-unknown-linux-gnu"],
      ["Linux", "amd64", "x86_64-unknown-linux-gnu"],
      ["Linux", "aarch64", "aarch64-unknown-linux-gnu"],
      ["Linux", "arm64", "aarch64-unknown-linux-gnu"],
      ["Darwin", "x86_64", "x86_64-apple-darwin"],
      ["Darwin", "arm64", "aarch64-apple-darwin"],
    ];
    for (const [os, arch, target] of cases) {
      const run = await installAndRead(release, {
        GREETER_OS: os,
        GREETER_ARCH: arch,
      });
      assertEquals(run.code, 0, `${os} ${arch}: ${run.stderr}`);
      assertEquals(run.binary, release.binary(target), `${os} ${arch}`);
      assertStringIncludes(run.stdout, `(${target})`);
    }
  },
);

installTest(
  "installer refuses a wrong checksum and installs nothing",
  async () => {
    await using release = await serveRelease({ wrongChecksums: [unixHost!] });
    const name = assetName(FIXTURE_VERSION, unixHost!);
    const run = await installAndRead(release);
    assertRefused(
      run,
      new RegExp(
        `Checksum mismatch for ${name}: SHA256SUMS says [0-9a-f]{64}, the ` +
          "download is [0-9a-f]{64}; nothing was installed",
      ),
    );
    // The binary was downloaded, and only the checksum stopped it.
    assertEquals(release.requests.at(-1), `/latest/download/${name}`);
    assertEquals(run.files, []);
  },
);

installTest(
  "installer keeps the installed greeter when the checksum is wrong",
  async () => {
    await using release = await serveRelease({ wrongChecksums: [unixHost!] });
    const dir = await Deno.makeTempDir({ prefix: "greeter-install-dir-" });
    try {
      const previous = "#!/bin/sh\necho 'the greeter installed before'\n";
      await Deno.writeTextFile(`${dir}/greeter`, previous);
      const run = await install(release, { GREETER_INSTALL_DIR: dir });
      assertRefused(run, /Checksum mismatch/);
      assertEquals(await Deno.readTextFile(`${dir}/greeter`), previous);
      assertEquals(run.files, ["greeter"], "no temporary file left behind");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

installTest(
  "installer refuses an unsupported OS or processor clearly",
  async () => {
    await using release = await serveRelease();
    const cases: [Record<string, string>, RegExp][] = [
      [
        { GREETER_OS: "FreeBSD" },
        /Unsupported operating system "FreeBSD": greeter's binaries are for Linux, macOS and Windows; elsewhere run it with Deno/,
      ],
      [
        { GREETER_OS: "Linux", GREETER_ARCH: "riscv64" },
        /Unsupported processor "riscv64" on Linux: greeter's binaries are for x86_64 and aarch64/,
      ],
      [
        { GREETER_OS: "Darwin", GREETER_ARCH: "ppc" },
        /Unsupported processor "ppc" on Darwin/,
      ],
      [
        { GREETER_OS: "MINGW64_NT-10.0-19045" },
        new RegExp(
          "This is Windows: run install\\.ps1 in PowerShell instead: irm " +
            "http://127\\.0\\.0\\.1:\\d+/latest/download/install\\.ps1 " +
            "-OutFile install\\.ps1; powershell -ExecutionPolicy Bypass " +
            "-File install\\.ps1\n",
        ),
      ],
    ];
    for (const [env, pattern] of cases) {
      const run = await installAndRead(release, env);
      assertRefused(run, pattern);
      assertEquals(run.files, [], JSON.stringify(env));
    }
    assertEquals(release.requests, [], "nothing downloaded");
  },
);

installTest(
  "installer says clearly when the release has no binary for this machine",
  async () => {
    await using release = await serveRelease({
      targets: ["x86_64-pc-windows-msvc"],
    });
    const run = await installAndRead(release);
    assertRefused(
      run,
      new RegExp(
        `No greeter binary for ${unixHost} in the latest release ` +
          `\\(http://127\\.0\\.0\\.1:\\d+/latest/download/SHA256SUMS does not list one\\)`,
      ),
    );
    assertEquals(run.files, []);
  },
);

installTest(
  "installer says clearly when a listed binary is missing from the release",
  async () => {
    await using release = await serveRelease({ unserved: [unixHost!] });
    const name = assetName(FIXTURE_VERSION, unixHost!);
    const run = await installAndRead(release);
    assertRefused(
      run,
      new RegExp(
        `Cannot download http://127\\.0\\.0\\.1:\\d+/latest/download/${name} ` +
          "\\(.*404.*\\)",
      ),
    );
    assertEquals(run.files, []);
  },
);

installTest(
  "installer says clearly when the version does not exist",
  async () => {
    await using release = await serveRelease();
    const run = await installAndRead(release, { GREETER_VERSION: "9.9.9" });
    assertRefused(
      run,
      /Cannot download http:\/\/127\.0\.0\.1:\d+\/download\/v9\.9\.9\/SHA256SUMS \(.*404.*\); is there a release v9\.9\.9 at http:\/\/127\.0\.0\.1:\d+\?/,
    );
    assertEquals(run.files, []);
  },
);

installTest("installer refuses a binary that does not run here", async () => {
  await using release = await serveRelease({
    contents: { [unixHost!]: BROKEN_BINARY },
  });
  const name = assetName(FIXTURE_VERSION, unixHost!);
  const run = await installAndRead(release);
  assertRefused(
    run,
    new RegExp(
      `The downloaded ${name} does not run on this machine ` +
        "\\(cannot execute binary file: Exec format error\\); nothing was installed",
    ),
  );
  assertEquals(run.files, []);
});

const shellcheck = !onWindows && await canRun("shellcheck");
installTest(
  "install.sh passes shellcheck as POSIX sh",
  async () => {
    const output = await new Deno.Command("shellcheck", {
      args: ["--shell=sh", INSTALLER],
    }).output();
    assertEquals(decoder.decode(output.stdout), "");
    assertEquals(output.code, 0);
  },
  skip || (shellcheck ? "" : "shellcheck is not installed"),
);

/** The README's installer command, as a shell script. */
async function readmeInstallCommand(): Promise<string> {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  const block =
    /```sh\n((?:(?!```)[\s\S])*?releases\/latest\/download\/install\.sh[\s\S]*?)```/
      .exec(readme);
  if (!block) throw new Error("README.md shows no installer command");
  return block[1].replace(/^ +/gm, "");
}

/**
 * Runs `script` with sh as {@linkcode install} runs install.sh, its URLs of
 * the real releases pointed at `release`.
 */
function runInstallCommand(script: string, release: ServedRelease) {
  const local = script.replaceAll(
    "https://github.com/greeter-dev/greeter/releases",
    release.baseUrl,
  );
  return install(release, {}, ["-c", local]);
}

const curl = !onWindows && await canRun("curl");
installTest(
  "README's installer command installs, and fails when the download fails",
  async () => {
    const command = await readmeInstallCommand();
    assertMatch(command, /^curl -fsSLo install\.sh .*&& sh install\.sh$/ms);
    {
      await using release = await serveRelease({ installer: true });
      const run = await runInstallCommand(command, release);
      assertEquals([run.code, run.files], [0, ["greeter"]], run.stderr);
    }
    // No install.sh in the release: curl -f fails, sh never runs.
    await using release = await serveRelease();
    const run = await runInstallCommand(command, release);
    assertEquals([run.code, run.files], [22, []], run.stderr);
    assertEquals(release.requests, ["/latest/download/install.sh"]);
    // Piped into sh, the same failure would run an empty script and exit 0.
    const piped = await runInstallCommand(
      "curl -fsSL https://github.com/greeter-dev/greeter/releases/latest/" +
        "download/install.sh | sh",
      release,
    );
    assertEquals([piped.code, piped.files], [0, []], piped.stderr);
  },
  skip || (curl ? "" : "curl is not installed"),
);
