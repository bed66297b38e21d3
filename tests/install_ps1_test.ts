// scripts/install.ps1 run with PowerShell against a release served on
// 127.0.0.1: on Windows with both Windows PowerShell 5.1 and PowerShell 7
// where present, elsewhere with pwsh (GREETER_OS and GREETER_ARCH stand in
// for Windows). Skipped, with the reason, where there is no PowerShell.
import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { assetName, hostTarget } from "../scripts/targets.ts";
import { FIXTURE_VERSION, serveRelease } from "./_release_fixture.ts";
import { canRun, ROOT } from "./_helpers.ts";

const INSTALLER = `${ROOT}/scripts/install.ps1`;
const TARGET = "x86_64-pc-windows-msvc";
const NAME = assetName(FIXTURE_VERSION, TARGET);
const decoder = new TextDecoder();
const onWindows = Deno.build.os === "windows";
const psArgs = ["-Command", "$PSVersionTable.PSVersion.ToString()"];

const shells: string[] = [];
if (await canRun("pwsh", ["-NoProfile", ...psArgs])) shells.push("pwsh");
if (onWindows && await canRun("powershell", ["-NoProfile", ...psArgs])) {
  shells.push("powershell");
}

/** Runs install.ps1 with `shell`; GREETER_* settings come from `env`. */
async function install(shell: string, env: Record<string, string>) {
  const output = await new Deno.Command(shell, {
    args: [
      "-NoProfile",
      "-NonInteractive",
      "-ExecutionPolicy",
      "Bypass",
      "-File",
      INSTALLER,
    ],
    stdin: "null",
    env: {
      // Nothing of the developer's own settings or proxies.
      GREETER_VERSION: "",
      NO_PROXY: "127.0.0.1,localhost",
      no_proxy: "127.0.0.1,localhost",
      // x86_64 Windows, wherever this runs, unless a test says otherwise.
      GREETER_OS: "Windows",
      GREETER_ARCH: "AMD64",
      ...env,
    },
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Asserts exit 1 and one line on stderr matching `pattern`. */
function assertRefused(
  run: { code: number; stdout: string; stderr: string },
  pattern: RegExp,
) {
  assertEquals(run.code, 1, run.stderr + run.stdout);
  assertEquals(run.stderr.trim().split(/\r?\n/).length, 1, run.stderr);
  assertMatch(run.stderr, /^install\.ps1: [A-Z]/);
  assertMatch(run.stderr, pattern);
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** One test per PowerShell found, or one that says none was. */
function ps1Test(
  name: string,
  fn: (shell: string, dir: string) => Promise<void>,
  skipReason = "",
) {
  if (shells.length === 0) {
    Deno.test({
      name: `${name} (skipped: PowerShell (pwsh) is not installed)`,
      ignore: true,
      fn() {},
    });
  }
  for (const shell of shells) {
    Deno.test({
      name: `${name} (${shell})` +
        (skipReason ? ` (skipped: ${skipReason})` : ""),
      ignore: skipReason !== "",
      async fn() {
        const dir = await Deno.makeTempDir({ prefix: "greeter-ps1-" });
        try {
          await fn(shell, dir);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    });
  }
}

ps1Test(
  "install.ps1 installs greeter.exe and says how to run it",
  async (shell, dir) => {
    await using release = await serveRelease();
    const run = await install(shell, {
      GREETER_BASE_URL: release.baseUrl,
      GREETER_INSTALL_DIR: dir,
    });
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.stderr, "");
    assertEquals(await listDir(dir), ["greeter.exe"]);
    assertEquals(
      await Deno.readFile(`${dir}/greeter.exe`),
      release.binary(TARGET),
    );
    assertEquals(release.requests, [
      "/latest/download/SHA256SUMS",
      `/latest/download/${NAME}`,
    ]);
    assertStringIncludes(
      run.stdout,
      `Installed greeter ${FIXTURE_VERSION} (${TARGET}) to `,
    );
    assertStringIncludes(run.stdout, "is not on your PATH");
  },
);

ps1Test(
  "install.ps1 installs a named version for ARM64",
  async (shell, dir) => {
    await using release = await serveRelease();
    const target = "aarch64-pc-windows-msvc";
    const run = await install(shell, {
      GREETER_BASE_URL: release.baseUrl,
      GREETER_INSTALL_DIR: dir,
      GREETER_VERSION: `v${FIXTURE_VERSION}`,
      GREETER_ARCH: "ARM64",
    });
    assertEquals(run.code, 0, run.stderr);
    assertEquals(
      await Deno.readFile(`${dir}/greeter.exe`),
      release.binary(target),
    );
    assertEquals(release.requests, [
      `/download/v${FIXTURE_VERSION}/SHA256SUMS`,
      `/download/v${FIXTURE_VERSION}/${assetName(FIXTURE_VERSION, target)}`,
    ]);
  },
);

ps1Test(
  "install.ps1 detects this Windows machine's processor",
  async (shell, dir) => {
    await using release = await serveRelease();
    const run = await install(shell, {
      GREETER_BASE_URL: release.baseUrl,
      GREETER_INSTALL_DIR: dir,
      GREETER_OS: "",
      GREETER_ARCH: "",
    });
    assertEquals(run.code, 0, run.stderr);
    assertStringIncludes(run.stdout, `(${hostTarget()})`);
  },
  onWindows ? "" : "this is not Windows",
);

ps1Test(
  "install.ps1 refuses a wrong checksum and keeps the installed greeter",
  async (shell, dir) => {
    await using release = await serveRelease({ wrongChecksums: [TARGET] });
    await Deno.writeTextFile(
      `${dir}/greeter.exe`,
      "the greeter installed before",
    );
    const run = await install(shell, {
      GREETER_BASE_URL: release.baseUrl,
      GREETER_INSTALL_DIR: dir,
    });
    assertRefused(
      run,
      new RegExp(
        `Checksum mismatch for ${NAME}: SHA256SUMS says [0-9a-f]{64}, the download is [0-9a-f]{64}; nothing was installed`,
      ),
    );
    assertEquals(
      await Deno.readTextFile(`${dir}/greeter.exe`),
      "the greeter installed before",
    );
    assertEquals(await listDir(dir), ["greeter.exe"]);
  },
);

ps1Test(
  "install.ps1 refuses an unsupported processor or OS clearly",
  async (shell, dir) => {
    await using release = await serveRelease();
    const env = {
      GREETER_BASE_URL: release.baseUrl,
      GREETER_INSTALL_DIR: `${dir}/bin`,
    };
    assertRefused(
      await install(shell, { ...env, GREETER_ARCH: "x86" }),
      /Unsupported processor "x86": greeter's Windows binaries are for 64-bit x86_64 \(AMD64\) and ARM64/,
    );
    assertRefused(
      await install(shell, { ...env, GREETER_OS: "Linux" }),
      /This is not Windows \(Linux\): run install\.sh instead: curl -fsSLo install\.sh http:\/\/127\.0\.0\.1:\d+\/latest\/download\/install\.sh && sh install\.sh/,
    );
    assertEquals(release.requests, []);
    assertEquals(await listDir(dir), []);
  },
);

ps1Test(
  "install.ps1 says clearly when a binary or version is missing",
  async (shell, dir) => {
    {
      await using release = await serveRelease({
        targets: ["x86_64-unknown-linux-gnu"],
      });
      assertRefused(
        await install(shell, {
          GREETER_BASE_URL: release.baseUrl,
          GREETER_INSTALL_DIR: dir,
        }),
        new RegExp(
          `No greeter binary for ${TARGET} in the latest release \\(http://127\\.0\\.0\\.1:\\d+/latest/download/SHA256SUMS does not list one\\)`,
        ),
      );
    }
    {
      await using release = await serveRelease({ unserved: [TARGET] });
      assertRefused(
        await install(shell, {
          GREETER_BASE_URL: release.baseUrl,
          GREETER_INSTALL_DIR: dir,
        }),
        new RegExp(
          `Cannot download http://127\\.0\\.0\\.1:\\d+/latest/download/${NAME} \\(.*404.*\\)`,
        ),
      );
    }
    {
      await using release = await serveRelease();
      assertRefused(
        await install(shell, {
          GREETER_BASE_URL: release.baseUrl,
          GREETER_INSTALL_DIR: dir,
          GREETER_VERSION: "9.9.9",
        }),
        /Cannot download http:\/\/127\.0\.0\.1:\d+\/download\/v9\.9\.9\/SHA256SUMS \(.*404.*\); is there a release v9\.9\.9 at http:\/\/127\.0\.0\.1:\d+\?/,
      );
    }
    assertEquals(await listDir(dir), []);
  },
);
