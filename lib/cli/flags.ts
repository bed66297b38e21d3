import { parseArgs } from "@std/cli/parse-args";

import { UsageError } from "./usage_error.ts";

export { UsageError };

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
