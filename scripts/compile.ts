/**
 * `deno task compile`: builds greeter's standalone binaries with
 * `deno compile`, one per target, plus SHA256SUMS, into `dist/`. Run
 * `deno task compile --help`.
 *
 * Binaries are built in a scratch directory next to `dist/` and moved in only
 * when every requested target has been built and checked, so a failure
 * leaves `dist/` as it was.
 *
 * @module
 */
import config from "../deno.json" with { type: "json" };
import {
  type FlagSpec,
  formatFlagHelp,
  parseFlags,
  UsageError,
} from "../lib/cli/flags.ts";
import {
  describeFormat,
  readExecutableFormatOf,
  targetFormat,
} from "./binary_format.ts";
import { CHECKSUMS_FILE, formatChecksums, sha256File } from "./checksums.ts";
import { explainCompileFailure } from "./compile_failure.ts";
import { BINARY_FLAGS } from "./permissions.ts";
import {
  assetName,
  hostTarget,
  isTarget,
  type Target,
  TARGETS,
} from "./targets.ts";

const ROOT = `${import.meta.dirname}/..`;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const EXIT_INTERRUPTED = 130;
/** A first download of denort is some 40 MB; allow for a slow line. */
const DEFAULT_TIMEOUT_SECONDS = 600;
const VERSION_TIMEOUT_MS = 30_000;

/** A failure already put into one line for people. */
class CompileError extends Error {
  constructor(message: string, readonly exitCode = EXIT_FAILURE) {
    super(message);
  }
}

const FLAGS: FlagSpec[] = [
  {
    name: "target",
    value: "TARGET",
    repeatable: true,
    help: "Build this target; a comma-separated list works too (default: all)",
  },
  {
    name: "out-dir",
    value: "DIR",
    help: "Where the binaries and SHA256SUMS go (default dist/)",
  },
  {
    name: "timeout",
    value: "SECONDS",
    help: "Give up on a target's deno compile after this long " +
      `(default ${DEFAULT_TIMEOUT_SECONDS})`,
  },
  { name: "help", short: "h", help: "Show this help and exit" },
];

function help(): string {
  return `deno task compile: build greeter ${config.version}'s standalone binaries

Usage:
  deno task compile [--target TARGET]... [--out-dir DIR] [--timeout SECONDS]

Options:
${formatFlagHelp(FLAGS)}

Targets:
  ${TARGETS.join("\n  ")}

deno compile downloads the Deno runtime (denort) for each target. Without
network access, set DENORT_BIN to a local denort ${Deno.version.deno} and build
the one target it is for. Exit codes: 0 built, 1 failed, 2 usage error.`;
}

interface Options {
  targets: Target[];
  outDir: string;
  /** outDir as people wrote it, for messages. */
  outDirLabel: string;
  timeoutMs: number;
  denortBin?: string;
}

async function parseOptions(args: string[]): Promise<Options | "help"> {
  const flags = parseFlags(args, FLAGS);
  if (flags.has("help")) return "help";
  if (flags.positionals.length > 0) {
    throw new UsageError(
      `Unexpected argument "${flags.positionals[0]}": see --help for usage`,
    );
  }
  const requested = flags.all("target")
    .flatMap((value) => value.split(","))
    .map((value) => value.trim());
  for (const target of requested) {
    if (!isTarget(target)) {
      throw new UsageError(
        `Unknown target "${target}": use one of ${TARGETS.join(", ")}`,
      );
    }
  }
  const denortBin = Deno.env.get("DENORT_BIN") || undefined;
  let targets = [...new Set(requested)] as Target[];
  if (denortBin !== undefined) {
    // deno compile takes DENORT_BIN as the base for whatever target it is
    // asked for, so building two targets would put one target's runtime in
    // the other's binary.
    if (targets.length > 1) {
      throw new UsageError(
        "DENORT_BIN is a runtime for one target: build one --target at a time",
      );
    }
    const stat = await Deno.stat(denortBin).catch(() => undefined);
    if (!stat?.isFile) {
      throw new UsageError(
        `DENORT_BIN points at "${denortBin}", which ${
          stat ? "is not a file" : "does not exist"
        }: set it to a denort ${Deno.version.deno} binary, or unset it to ` +
          "download one",
      );
    }
    if (targets.length === 0) {
      const host = hostTarget();
      if (!host) {
        throw new UsageError(
          `This machine (${Deno.build.target}) is not a greeter target: ` +
            "choose the --target DENORT_BIN is for",
        );
      }
      targets = [host];
    }
  }
  if (targets.length === 0) targets = [...TARGETS];
  const outDirLabel = flags.last("out-dir") ?? "dist/";
  const outDir = flags.last("out-dir") ?? `${ROOT}/dist`;
  if (outDir === "") {
    throw new UsageError("Invalid value for --out-dir: the path is empty");
  }
  const timeoutMs = 1000 *
    (flags.integer("timeout", 1) ?? DEFAULT_TIMEOUT_SECONDS);
  return { targets, outDir, outDirLabel, timeoutMs, denortBin };
}

/** The environment for deno compile, with DENORT_BIN only if it is used. */
function compileEnv(options: Options): Record<string, string> {
  const env = Deno.env.toObject();
  // deno compile takes even an empty DENORT_BIN as a path.
  delete env.DENORT_BIN;
  if (options.denortBin !== undefined) env.DENORT_BIN = options.denortBin;
  return { ...env, NO_COLOR: "1" };
}

async function compileTarget(
  target: Target,
  output: string,
  options: Options,
  interrupt: AbortSignal,
): Promise<void> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      ...BINARY_FLAGS,
      // --workers starts this module in Web Workers; deno compile does not
      // follow `new Worker(...)`, so it must be embedded by name.
      "--include",
      `${ROOT}/lib/cli/workers/entry.ts`,
      "--target",
      target,
      "--output",
      output,
      `${ROOT}/main.ts`,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: compileEnv(options),
    signal: AbortSignal.any([interrupt, timeout]),
  }).output();
  if (interrupt.aborted) throw interrupt.reason;
  if (timeout.aborted) {
    throw new CompileError(
      `deno compile for ${target} did not finish within ${
        options.timeoutMs / 1000
      } s; downloading the Deno runtime (denort) may be blocked: check ` +
        "network access, set DENORT_BIN, or raise --timeout",
    );
  }
  if (!result.success) {
    throw new CompileError(
      explainCompileFailure(
        new TextDecoder().decode(result.stderr),
        target,
        result.code,
      ),
    );
  }
}

/**
 * Checks that the binary is for `target` and, where it can run here, that it
 * is greeter of this version: a DENORT_BIN pointing at `deno` instead of
 * `denort` builds a binary that is just deno.
 */
async function verifyBinary(
  path: string,
  target: Target,
  options: Options,
): Promise<void> {
  const expected = targetFormat(target);
  const actual = await readExecutableFormatOf(path);
  if (actual?.os !== expected.os || actual.arch !== expected.arch) {
    throw new CompileError(
      `The binary built for ${target} is ${describeFormat(actual)}, not ${
        describeFormat(expected)
      }` +
        (options.denortBin
          ? `: DENORT_BIN ("${options.denortBin}") is a runtime for another target`
          : ""),
    );
  }
  if (target !== hostTarget()) return;
  const result = await new Deno.Command(path, {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(VERSION_TIMEOUT_MS),
  }).output().catch((error: Error) => error);
  const printed = result instanceof Error
    ? `an error (${result.message})`
    : `"${new TextDecoder().decode(result.stdout).split("\n")[0].trim()}"`;
  const wanted = `"greeter ${config.version}"`;
  if (printed !== wanted || (!(result instanceof Error) && !result.success)) {
    throw new CompileError(
      `The binary built for ${target} gives ${printed} for --version, not ${wanted}` +
        (options.denortBin
          ? `: DENORT_BIN must point at denort (the runtime), not at deno`
          : ""),
    );
  }
}

/** Names in `dir` that are binaries of this version, for SHA256SUMS. */
async function binariesIn(dir: string): Promise<string[]> {
  const names = new Set(TARGETS.map((t) => assetName(config.version, t)));
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && names.has(entry.name)) found.push(entry.name);
  }
  return found;
}

/** Moves the staged binaries into `outDir` and rewrites its SHA256SUMS. */
async function publish(
  stage: string,
  names: string[],
  outDir: string,
): Promise<Map<string, string>> {
  for (const name of names) {
    await Deno.rename(`${stage}/${name}`, `${outDir}/${name}`);
  }
  // SHA256SUMS covers every binary of this version in outDir, so that
  // building targets one at a time (one DENORT_BIN each) adds up.
  const sums = new Map<string, string>();
  for (const name of await binariesIn(outDir)) {
    sums.set(name, await sha256File(`${outDir}/${name}`));
  }
  await Deno.writeTextFile(`${stage}/${CHECKSUMS_FILE}`, formatChecksums(sums));
  await Deno.rename(
    `${stage}/${CHECKSUMS_FILE}`,
    `${outDir}/${CHECKSUMS_FILE}`,
  );
  return sums;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

async function build(options: Options, interrupt: AbortSignal) {
  await Deno.mkdir(options.outDir, { recursive: true });
  // Next to outDir, so that moving a binary in is a rename on one file system.
  const stage = await Deno.makeTempDir({
    dir: `${options.outDir}/..`,
    prefix: ".greeter-compile-",
  });
  try {
    const names: string[] = [];
    for (const target of options.targets) {
      const name = assetName(config.version, target);
      console.log(`Compiling greeter ${config.version} for ${target}`);
      await compileTarget(target, `${stage}/${name}`, options, interrupt);
      await verifyBinary(`${stage}/${name}`, target, options);
      names.push(name);
    }
    const sums = await publish(stage, names, options.outDir);
    console.log(`Wrote to ${options.outDirLabel}:`);
    for (const name of [...sums.keys()].sort()) {
      const { size } = await Deno.stat(`${options.outDir}/${name}`);
      console.log(`  ${name}  ${megabytes(size)}`);
    }
    console.log(`  ${CHECKSUMS_FILE}`);
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
}

/** Builds the binaries `args` ask for; resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  const interrupt = new AbortController();
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  const stop = () =>
    interrupt.abort(
      new CompileError(
        "Interrupted: no binaries were written",
        EXIT_INTERRUPTED,
      ),
    );
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  try {
    const options = await parseOptions(args);
    if (options === "help") {
      console.log(help());
      return 0;
    }
    await build(options, interrupt.signal);
    return 0;
  } catch (error) {
    const { message, exitCode } = error instanceof CompileError
      ? error
      : error instanceof UsageError
      ? { message: error.message, exitCode: EXIT_USAGE }
      : {
        message: String((error as Error)?.message ?? error).split("\n")[0],
        exitCode: EXIT_FAILURE,
      };
    console.error(`compile: ${message}`);
    return exitCode;
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
