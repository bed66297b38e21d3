import { parseArgs } from "@std/cli/parse-args";

import { parseHostPort } from "../net/address.ts";
import { ValueError } from "../net/value_error.ts";
import { DEFAULT_PORT } from "../server/options.ts";

/**
 * A mistake in what greeter was asked to do (a flag, a value, a file named
 * on the command line): reported as one line, with exit code 2.
 */
export class UsageError extends Error {
  /** Says what is wrong and how to fix it. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One command-line flag: how it is spelt, what it takes, what it does. */
export interface FlagSpec {
  /** The long name, without dashes. */
  name: string;
  /** A one-letter alias. */
  short?: string;
  /** The value's placeholder in help (`PORT`); absent for a switch. */
  value?: string;
  /** May be given more than once. */
  repeatable?: boolean;
  /** One line for `--help`. */
  help: string;
}

/** The flags and positionals of one command line, typed as given. */
export interface ParsedFlags {
  /** Values of flags that take one (every value, for repeatable flags). */
  values: Map<string, string[]>;
  /** Switches that were given. */
  switches: Set<string>;
  /** Arguments that are not flags. */
  positionals: string[];
}

/** Text as it may appear inside an error line: control characters escaped. */
function printable(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

function dashed(spec: FlagSpec): string {
  return `--${spec.name}`;
}

/**
 * Parses `args` against `specs` with `@std/cli`'s parseArgs, and validates
 * what it returns: unknown flags and flags missing their value are usage
 * errors rather than silently ignored.
 *
 * @throws {UsageError} For an unknown flag or a missing value.
 */
export function parseFlags(args: string[], specs: FlagSpec[]): ParsedFlags {
  const byName = new Map<string, FlagSpec>();
  for (const spec of specs) {
    byName.set(spec.name, spec);
    if (spec.short) byName.set(spec.short, spec);
  }

  // parseArgs turns "--port" with nothing after it into "", and so does
  // "--port --quiet"; both are missing values, not empty ones. Joining each
  // flag to its value ("--port=80") also keeps an empty value ("--host ''")
  // from being read as a positional argument.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      joined.push(...args.slice(i));
      break;
    }
    // parseArgs would read "--no-quiet=1" as "--quiet=1"; greeter has no
    // negated flags, so every --no-* is unknown.
    if (arg.startsWith("--no-")) {
      throw new UsageError(
        `Unknown option ${
          printable(arg.replace(/=.*$/s, ""))
        }: see --help for the options`,
      );
    }
    const match = /^--?([^=]+)$/.exec(arg);
    const spec = match && byName.get(match[1]);
    if (!spec?.value) {
      joined.push(arg);
      continue;
    }
    const next = args[i + 1];
    if (next === undefined || (next.startsWith("-") && next.length > 1)) {
      throw new UsageError(
        `Missing value for ${dashed(spec)}: write ${
          dashed(spec)
        } ${spec.value}` +
          (next === undefined ? "" : ` (or ${dashed(spec)}=${next})`),
      );
    }
    joined.push(`--${spec.name}=${next}`);
    i++;
  }

  const withValue = specs.filter((spec) => spec.value).map((spec) => spec.name);
  const parsed = parseArgs(joined, {
    string: withValue,
    boolean: specs.filter((spec) => !spec.value).map((spec) => spec.name),
    collect: specs.filter((spec) => spec.repeatable).map((spec) => spec.name),
    alias: Object.fromEntries(
      specs.filter((spec) => spec.short).map((spec) => [spec.short, spec.name]),
    ),
    "--": true,
    unknown(arg: string) {
      if (arg.startsWith("-") && arg.length > 1) {
        const name = arg.replace(/^--?/, "").replace(/=.*$/, "");
        throw new UsageError(
          `Unknown option ${arg.startsWith("--") ? "--" : "-"}${
            printable(name)
          }: ` +
            "see --help for the options",
        );
      }
      return true;
    },
  }) as Record<string, unknown>;

  const values = new Map<string, string[]>();
  const switches = new Set<string>();
  for (const spec of specs) {
    const raw = parsed[spec.name];
    if (spec.value) {
      const list = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw])
        .map(String);
      if (list.length > 0) values.set(spec.name, list);
    } else if (raw === true) {
      switches.add(spec.name);
    }
  }
  const positionals = [
    ...(parsed._ as unknown[]),
    ...((parsed["--"] as unknown[] | undefined) ?? []),
  ].map(String);
  return { values, switches, positionals };
}

/** The last value given for a flag, if any. */
export function lastValue(
  flags: ParsedFlags,
  name: string,
): string | undefined {
  return flags.values.get(name)?.at(-1);
}

/**
 * The largest whole number any flag takes: the longest timer delay there is
 * (about 24.8 days in milliseconds); a longer one would fire at once.
 */
export const MAX_INTEGER = 2_147_483_647;

/**
 * Parses a flag's value as a whole number within bounds.
 *
 * @throws {UsageError} If it is not one.
 */
export function parseIntegerFlag(
  text: string,
  name: string,
  min: number,
  max = MAX_INTEGER,
): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    const range = `a whole number from ${min} to ${max}`;
    throw new UsageError(
      `Invalid value ${JSON.stringify(text)} for --${name}: use ${range}`,
    );
  }
  return value;
}

/**
 * Parses a flag's value as a number above zero (decimals allowed).
 *
 * @throws {UsageError} If it is not one.
 */
export function parsePositiveNumberFlag(text: string, name: string): number {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(value > 0) || !Number.isFinite(value)) {
    throw new UsageError(
      `Invalid value ${
        JSON.stringify(text)
      } for --${name}: use a number above 0, such as 5 or 0.5`,
    );
  }
  return value;
}

/**
 * Parses a flag's value as one of a fixed set of choices.
 *
 * @throws {UsageError} If it is not one of them.
 */
export function parseChoiceFlag<T extends string>(
  text: string,
  name: string,
  choices: readonly T[],
): T {
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(
      `Invalid value ${JSON.stringify(text)} for --${name}: use one of ${
        choices.join(", ")
      }`,
    );
  }
  return text as T;
}

/** Formats flag specs as the options part of `--help`. */
export function formatFlagHelp(specs: FlagSpec[]): string {
  const rows = specs.map((spec) => {
    const names = (spec.short ? `-${spec.short}, ` : "    ") + dashed(spec) +
      (spec.value ? ` ${spec.value}` : "");
    return [names, spec.help + (spec.repeatable ? " (repeatable)" : "")];
  });
  const width = Math.max(...rows.map(([names]) => names.length)) + 2;
  return rows.map(([names, help]) => `  ${names.padEnd(width)}${help}`)
    .join("\n");
}

/** A request for help or the version, which prints and exits 0. */
export type InfoCommand =
  | {
    command: "help";
    /** What to print. */
    text: string;
  }
  | { command: "version" };

/** Thrown to end a command with a message already explained. */
export class ExitError extends Error {
  /** The exit code: 2 for usage errors, 1 for runtime errors. */
  readonly exitCode: number;
  /** `message` is the one line for stderr. */
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = "ExitError";
    this.exitCode = exitCode;
  }
}

/** The flags every command has: --help and --version. */
export const COMMON_FLAGS: FlagSpec[] = [
  { name: "help", short: "h", help: "Show this help and exit" },
  { name: "version", short: "V", help: "Show the version and exit" },
];

/**
 * Parses a client command's `[HOST][:PORT]` argument (default
 * `localhost:8080`).
 *
 * @throws {UsageError} For a bad address or more than one argument.
 */
export function parseTarget(
  positionals: string[],
  command: string,
): { hostname: string; port: number } {
  if (positionals.length > 1) {
    throw new UsageError(
      `Unexpected argument ${
        JSON.stringify(positionals[1])
      }: ${command} takes one ` +
        "[HOST][:PORT]",
    );
  }
  const defaults = { hostname: "localhost", port: DEFAULT_PORT };
  try {
    return positionals.length === 0
      ? defaults
      : parseHostPort(positionals[0], defaults);
  } catch (error) {
    if (!(error instanceof ValueError)) throw error;
    throw new UsageError(error.message);
  }
}

/** How a client command reaches the server: TLS, a CA, or a Unix socket. */
export interface ClientTransport {
  /** Connect to a Unix socket instead. */
  unix?: string;
  /** Speak TLS. */
  tls: boolean;
  /** A CA certificate file to verify the server with. */
  ca?: string;
  /** Skip certificate verification. */
  insecure: boolean;
}

/** The flags `connect` and `check` share for reaching the server. */
export const CLIENT_TRANSPORT_FLAGS: FlagSpec[] = [
  { name: "tls", help: "Connect over TLS, verifying the certificate" },
  {
    name: "ca",
    value: "FILE",
    help: "Trust this PEM CA certificate (with --tls)",
  },
  {
    name: "insecure",
    help: "With --tls, do not verify the certificate",
  },
  {
    name: "unix",
    value: "PATH",
    help: "Connect to a Unix socket instead of HOST:PORT",
  },
];

/**
 * Reads {@linkcode CLIENT_TRANSPORT_FLAGS} from parsed flags.
 *
 * @throws {UsageError} For flags that do not go together.
 */
export function parseClientTransport(flags: ParsedFlags): ClientTransport {
  const tls = flags.switches.has("tls");
  const ca = lastValue(flags, "ca");
  const insecure = flags.switches.has("insecure");
  if (!tls && (ca !== undefined || insecure)) {
    throw new UsageError("--ca and --insecure go with --tls");
  }
  if (ca !== undefined && insecure) {
    throw new UsageError("--ca and --insecure cannot be used together");
  }
  const unix = lastValue(flags, "unix");
  if (unix !== undefined && (tls || flags.positionals.length > 0)) {
    throw new UsageError(
      "--unix connects to a socket file: drop HOST:PORT and --tls",
    );
  }
  return { unix, tls, ca, insecure };
}
