import { parseArgs } from "@std/cli/parse-args";

import { parseHostPort } from "../net/address.ts";
import { ValueError } from "../net/value_error.ts";
import { escapeControl, quote } from "../net/escape.ts";
import { DEFAULT_PORT, MAX_COUNT } from "../server/options.ts";
import { MAX_TIMER_MS } from "../server/wait.ts";
import {
  DurationRangeError,
  DurationSyntaxError,
  parseDuration,
} from "./duration.ts";

import { suggest } from "./suggest.ts";
import { formatSize, MIB } from "./read_limited.ts";
import { GREETING_ENCODINGS, LINE_ENDINGS } from "../greeting/template.ts";

/** Thrown to end a command with a message already explained. */
export class ExitError extends Error {
  /**
   * @param message The one line for stderr.
   * @param exitCode 2 for usage errors, 1 for runtime errors.
   * @param silent Nothing may be written: stderr is a client's socket
   * (xinetd).
   */
  constructor(
    message: string,
    readonly exitCode: number,
    readonly silent = false,
  ) {
    super(message);
    this.name = "ExitError";
  }
}

/**
 * A mistake in what greeter was asked to do (a flag, a value, a file named
 * on the command line): reported as one line, with exit code 2.
 */
export class UsageError extends ExitError {
  /** Says what is wrong and how to fix it. */
  constructor(message: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}

/** @throws {UsageError} With `message`, if `wrong`. */
export function usageIf(wrong: boolean, message: string): void {
  if (wrong) throw new UsageError(message);
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
  /** The topic `greeter --help` lists it under (see {@linkcode GroupedFlagSpec}). */
  group?: FlagGroup;
}

/**
 * A flag of a command whose `--help` is grouped by topic: the server's.
 * Its table is typed with this, so a flag without a group fails to compile.
 */
export type GroupedFlagSpec = FlagSpec & { group: FlagGroup };

/**
 * Flags written one per entry, each head as help shows it, to its help:
 * `"[GROUP ][-S ]--NAME[ VALUE][...]"`, `...` for a repeatable flag. A
 * table keyed by `GROUP ...` heads gives {@linkcode GroupedFlagSpec}s.
 */
export function flagTable(
  table: Record<`${FlagGroup} ${string}`, string>,
): GroupedFlagSpec[];
export function flagTable(table: Record<`-${string}`, string>): FlagSpec[];
export function flagTable(table: Record<string, string>): FlagSpec[] {
  return Object.entries(table).map(([head, help]) => {
    const [, group, short, name, value, more] =
      /^(?:(\w+) )?(?:-(\w) )?--([\w-]+)(?: (\S+?))?(\.\.\.)?$/.exec(head)!;
    const spec = { name, short, value, repeatable: more !== undefined, help };
    return { ...spec, group: group as FlagGroup | undefined };
  });
}

/**
 * The topics of the server's `--help`, in the order it prints them, with
 * their headings. A new flag names its group in its {@linkcode FlagSpec}.
 */
export const FLAG_GROUPS = {
  listening: "Listening",
  greeting: "Greeting",
  limits: "Limits and access",
  logs: "Logs and metrics",
  sensor: "Sensor",
  fleet: "Fleet",
  process: "Process",
} as const;

/** One topic of the server's `--help`: a key of {@linkcode FLAG_GROUPS}. */
export type FlagGroup = keyof typeof FLAG_GROUPS;

/**
 * The "Unknown option" line for `arg` (the flag as given; any `=value` is
 * left out), with a suggestion from `specs` when one is close.
 */
function unknownOption(arg: string, specs: FlagSpec[]): UsageError {
  const typed = arg.replace(/=.*$/s, "");
  const candidates = specs.flatMap(({ name, short }) =>
    short ? [`--${name}`, `-${short}`] : [`--${name}`]
  );
  // "--no-quiet": greeter has no negated flags, but the flag itself exists.
  const negated = /^--no-(.*)$/s.exec(typed)?.[1];
  const guess = suggest(typed, candidates);
  const hint = negated !== undefined && candidates.includes(`--${negated}`)
    ? `options cannot be negated; leave out --${negated} instead`
    : guess !== undefined
    ? `did you mean ${guess}? See --help for the options`
    : "see --help for the options";
  return new UsageError(`Unknown option ${escapeControl(typed)}: ${hint}`);
}

/** The error for a switch given a value (`got`). */
function noValue(flag: string, got: string): UsageError {
  return new UsageError(
    `${flag} takes no value; got ${quote(got)}: give ${flag} alone, or ` +
      "leave it out",
  );
}

/**
 * Parses `args` against `specs` with `@std/cli`'s parseArgs, and validates
 * what it returns: unknown flags and flags missing their value are usage
 * errors rather than silently ignored. Gives the command line's
 * reader (see {@linkcode FlagReader}).
 *
 * @throws {UsageError} For an unknown flag or a missing value.
 */
export function parseFlags(args: string[], specs: FlagSpec[]) {
  // Apart, so that "--p" is no --port.
  const byName = new Map(specs.map((spec) => [spec.name, spec]));
  const byLetter = new Map(specs.map((spec) => [spec.short, spec]));

  // One pass: each flag's spelling and value are recorded as they are met
  // ("--port=80", "-qp80" as "--quiet" "--port=80"). parseArgs would turn
  // "--port" with nothing after it into "", and so "--port --quiet"; both
  // are missing values, not empty ones. Taking the value here also keeps an
  // empty one ("--host ''") from being read as a positional argument.
  // Spellings and values are kept in the order given: the last value is the
  // one that counts, unless the flag repeats.
  const [spelled, values] = [0, 0].map(() => new Map<string, string[]>());
  const switches = new Set<string>();
  const add = (to: Map<string, string[]>, spec: FlagSpec, text: string) =>
    to.set(spec.name, [...to.get(spec.name) ?? [], text]);
  // Unknown flags, positionals and the rest, for parseArgs to read.
  const rest: string[] = [];
  let i = 0;
  /**
   * Takes the argument after `flag` (as typed) as its value.
   *
   * @throws {UsageError} If there is none, or the next is a flag.
   */
  const takeValue = (spec: FlagSpec, flag: string) => {
    const next = args[++i];
    const missing = `Missing value for ${flag}: write ${flag} ${spec.value}`;
    usageIf(next === undefined, missing);
    // A negative number is a value (and a wrong one, said by its flag).
    const or = ` (or --${spec.name}=${escapeControl(next)})`;
    usageIf(/^-./s.test(next) && !/^-\d/.test(next), missing + or);
    add(values, spec, next);
  };
  // A switch; as parseArgs did, one followed by "true" or "false" (`last`
  // in its argument) takes it.
  const takeSwitch = (spec: FlagSpec, last: boolean) => {
    const next = last ? args[i + 1] : undefined;
    if (next === "true" || next === "false") i++;
    if (next === "false") switches.delete(spec.name);
    else switches.add(spec.name);
  };
  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      rest.push(...args.slice(i));
      break;
    }
    // parseArgs would read "--no-quiet=1" as "--quiet=1"; greeter has no
    // negated flags, so every --no-* is unknown.
    if (arg.startsWith("--no-")) throw unknownOption(arg, specs);
    const long = /^--([^=]+)(=?)(.*)/s.exec(arg);
    const spec = long && byName.get(long[1]);
    if (spec) {
      add(spelled, spec, `--${spec.name}`);
      // parseArgs reads "--quiet=false" as false and "--quiet=yes" as true:
      // a switch given a value is a mistake to say, not to guess at.
      if (spec.value && long![2]) add(values, spec, long![3]);
      else if (spec.value) takeValue(spec, arg);
      else if (long![2]) throw noValue(`--${spec.name}`, long![3]);
      else takeSwitch(spec, true);
      continue;
    }
    // Unknown flags, positionals and the rest are parseArgs' to read.
    if (long || !/^-[^-]/.test(arg) || !byLetter.has([...arg][1])) {
      rest.push(arg);
      continue;
    }
    // Short flags, alone or bundled: "-q", "-qV", "-Hlocalhost", "-qp80".
    const letters = [...arg.slice(1)];
    for (const [k, letter] of letters.entries()) {
      const spec = byLetter.get(letter);
      // A switch with more after it: parseArgs would take "-q5", "-q=1",
      // "-q-" or even "-qx5" for -q's value and drop the switch, silently.
      if (!spec && /\p{L}/u.test(letter)) throw unknownOption(arg, specs);
      // Every letter before this one is a flag's, one code unit each.
      const after = arg.slice(k + (spec ? 2 : 1)).replace(/^=/, "");
      if (!spec) throw noValue(`-${letters[k - 1]}`, after);
      add(spelled, spec, `-${spec.short}`);
      const end = k + 1 === letters.length;
      if (!spec.value) takeSwitch(spec, end);
      // A short flag with its value attached, "-Hlocalhost" as "-H
      // localhost" (parseArgs would read it as bundled switches -H -l ...).
      else if (!end) add(values, spec, after);
      else takeValue(spec, `-${spec.short}`);
      if (spec.value) break;
    }
  }

  // Positionals as given (parseArgs would read "0x10" as the number 16).
  const given: string[] = [];
  const parsed = parseArgs(rest, {
    "--": true,
    unknown(arg: string) {
      if (/^-./s.test(arg)) throw unknownOption(arg, specs);
      given.push(arg);
      return false;
    },
  }) as Record<string, unknown>;
  const positionals = [given, parsed["--"] ?? []].flat().map(String);
  // The reader: each value parsed as it is asked for, and each message
  // naming the flag as the user spelt it.
  /**
   * The flag `name` (a long name without dashes) as the user wrote it: `-p`
   * or `--port`. `index` picks one occurrence of a repeatable flag; without
   * it, the last (the one whose value counts). `--name` if it was not given.
   */
  const flag = (name: string, index?: number) =>
    spelled.get(name)?.at(index ?? -1) ?? `--${name}`;
  /** The last value given for a flag, if any. */
  const last = (name: string) => values.get(name)?.at(-1);
  /** The last value of `name` through `parse`; `undefined` if not given. */
  const value = <T>(name: string, parse: (text: string, flag: string) => T) => {
    const text = last(name);
    return text === undefined ? undefined : parse(text, flag(name));
  };
  /**
   * The value of `name`, one of `choices`, or `fallback` if not given.
   *
   * @throws {UsageError} If it is not one of them.
   */
  const choice = <T extends string, F extends T | undefined>(
    name: string,
    fallback: F,
    choices: readonly T[],
  ): T | F =>
    value(name, (text, flag) => {
      if ((choices as readonly string[]).includes(text)) return text as T;
      const guess = suggest(text, choices);
      const hint = `use one of ${choices.join(", ")}` +
        (guess === undefined ? "" : ` (did you mean ${guess}?)`);
      throw invalidValue(text, flag, hint);
    }) ?? fallback;
  return {
    positionals,
    flag,
    last,
    value,
    has: (name: string) => switches.has(name),
    /** The long names of the flags given, in the order first given. */
    given: () => [...spelled.keys()],
    /** Every value of `name`, in the order given. */
    all: (name: string) => values.get(name) ?? [],
    /** The error for `name` given empty: `what` is said to be empty. */
    empty: (name: string, what = "path is empty", index?: number) =>
      new UsageError(`Invalid value for ${flag(name, index)}: the ${what}`),
    /**
     * @throws {UsageError} If `name` is given without `what` (`ok`), or,
     * with `needs` (its message), if it is missing though `ok`.
     */
    goesWith: (name: string, ok: boolean, what: string, needs?: string) => {
      const given = last(name) !== undefined;
      usageIf(ok && needs !== undefined && !given, needs ?? "");
      usageIf(!ok && given, `${flag(name)} goes with ${what}`);
    },
    /**
     * The value of `name` as a whole number within bounds.
     *
     * @throws {UsageError} If it is not one.
     */
    integer: (name: string, min: number, max = MAX_TIMER_MS) =>
      value(name, (text, flag) => {
        const number = Number(text);
        if (/^\d+$/.test(text) && number >= min && number <= max) return number;
        const hint = `use a whole number from ${min} to ${max}`;
        throw invalidValue(text, flag, hint);
      }),
    /**
     * The value of `name` as a duration (see {@linkcode parseDuration}):
     * `250ms`, `5s`, `2m`, `1m30s`, or a bare whole number of milliseconds,
     * as milliseconds, at least `min`.
     *
     * @throws {UsageError} If it is not a duration of at least `min`.
     */
    duration: (name: string, min = 0) => {
      const parse = (text: string) => parseDuration(text, min);
      return value(name, (text, flag) => parseFlagValue(text, flag, parse));
    },
    choice,
    /** --line-ending and --encoding, as a greeting's options. */
    greetingFormat: () => ({
      lineEnding: choice("line-ending", "crlf", LINE_ENDINGS),
      encoding: choice("encoding", "ascii", GREETING_ENCODINGS),
    }),
  };
}

/** What {@linkcode parseFlags} gives. */
export type FlagReader = ReturnType<typeof parseFlags>;

/**
 * The "Invalid value" line of a flag: `text` as given, then `hint`, what
 * to write instead. `flag` is as the user spelt it (see `flag` of
 * {@linkcode FlagReader}).
 */
export function invalidValue(
  text: string,
  flag: string,
  hint: string,
  what = "value",
): UsageError {
  return new UsageError(`Invalid ${what} ${quote(text)} for ${flag}: ${hint}`);
}

/**
 * Parses a flag's value with a parser of the library, whose
 * {@linkcode ValueError} (or duration error) says what to write: that
 * becomes the flag's {@linkcode invalidValue} line, `what` its noun.
 */
export function parseFlagValue<T>(
  text: string,
  flag: string,
  parse: (text: string) => T,
  what?: string,
): T {
  try {
    return parse(text);
  } catch (error) {
    // The duration's own words say what to write; the flag is said here.
    const hint = error instanceof ValueError
      ? error.reason
      : error instanceof DurationSyntaxError ||
          error instanceof DurationRangeError
      ? error.message
      : undefined;
    throw hint === undefined ? error : invalidValue(text, flag, hint, what);
  }
}

/** The largest --max-file-size: files are read into memory whole. */
const MAX_FILE_SIZE = 1024 * MIB;

/**
 * Parses a size: bytes, or a whole number with a binary unit (`KiB`,
 * `MiB`, `GiB`, or `K`, `M`, `G`), from 1 byte to 1 GiB.
 *
 * @param flag The flag as the user spelt it.
 * @throws {UsageError} If it is not one.
 */
export function parseSizeFlag(text: string, flag: string): number {
  const match = /^(\d+)\s*(?:([kmg])(?:ib)?|b)?$/i.exec(text);
  // The unit's power of 1024: none or B 0, K 1, M 2, G 3.
  const power = " kmg".indexOf(match?.[2]?.toLowerCase() ?? " ");
  const value = match ? Number(match[1]) * 1024 ** power : NaN;
  const hint = "use a size from 1 byte to 1GiB, in bytes or with a unit, " +
    "such as 4MiB or 512KiB";
  if (value >= 1 && value <= MAX_FILE_SIZE) return value;
  throw invalidValue(text, flag, hint);
}

/**
 * Parses a flag's value as a number above zero (decimals allowed).
 *
 * @throws {UsageError} If it is not one.
 */
export function parsePositiveNumberFlag(text: string, flag: string): number {
  const value = Number(text);
  if (/^\d+(\.\d+)?$/.test(text) && value > 0 && value <= MAX_COUNT) {
    return value;
  }
  const hint = `use a number above 0, at most ${MAX_COUNT}, such as 5 or 0.5`;
  throw invalidValue(text, flag, hint);
}

/** The widest line `--help` prints: a classic terminal. */
export const HELP_WIDTH = 80;

/** The widest the names column of the options may be, indent included. */
const NAMES_COLUMN = 32;

/**
 * Breaks `text` into lines of at most `width` characters at spaces (a
 * single word longer than that keeps its own line).
 */
export function wrapText(text: string, width: number): string[] {
  return text.split(" ").reduce((lines, word) => {
    const line = lines.at(-1)!;
    if (line !== "" && line.length + 1 + word.length > width) lines.push(word);
    else lines[lines.length - 1] = line === "" ? word : `${line} ${word}`;
    return lines;
  }, [""]);
}

/**
 * Lays out two columns within {@linkcode HELP_WIDTH}: each left entry, then
 * its text wrapped with a hanging indent from `column` on. A left entry too
 * wide for the column gets a line of its own, and its text starts under the
 * column. By default the column fits `rows`' own left entries.
 */
export function formatColumns(
  rows: [string, string][],
  column = columnFor(rows.map(([left]) => left)),
): string {
  return rows.flatMap(([left, text]) => {
    const lines = wrapText(text, HELP_WIDTH - column);
    const first = `  ${left}`;
    const head = first.length + 2 > column
      ? first
      : first.padEnd(column) + lines.shift();
    return [head, ...lines.map((line) => " ".repeat(column) + line)];
  }).join("\n");
}

/** The names column for `lefts`: the widest and a gap, within 32. */
function columnFor(lefts: string[]): number {
  const longest = Math.max(...lefts.map((left) => left.length));
  return Math.min(longest + 4, NAMES_COLUMN);
}

/** A flag's two columns in `--help`: its names, and what it does. */
function flagRow(spec: FlagSpec): [string, string] {
  const names = (spec.short ? `-${spec.short}, ` : "    ") + `--${spec.name}` +
    (spec.value ? ` ${spec.value}` : "");
  return [names, spec.help + (spec.repeatable ? " (repeatable)" : "")];
}

/** Formats flag specs as the options part of `--help`, within 80 columns. */
export function formatFlagHelp(specs: FlagSpec[]): string {
  return formatColumns(specs.map(flagRow));
}

/**
 * The flags of each {@linkcode FLAG_GROUPS} topic, in its order and each in
 * the order of `specs`; topics without flags are left out.
 */
export function groupFlags(specs: readonly GroupedFlagSpec[]) {
  return Object.entries(FLAG_GROUPS).map(([group, title]) => ({
    group: group as FlagGroup,
    title,
    specs: specs.filter((spec) => spec.group === group),
  })).filter((topic) => topic.specs.length > 0);
}

/**
 * Formats flag specs under the headings of their groups (see
 * {@linkcode groupFlags}), in one column layout, within 80 columns.
 */
export function formatGroupedFlagHelp(
  specs: readonly GroupedFlagSpec[],
): string {
  const column = columnFor(specs.map((spec) => flagRow(spec)[0]));
  return groupFlags(specs).map(({ title, specs }) =>
    `${title}:\n${formatColumns(specs.map(flagRow), column)}`
  ).join("\n\n");
}

/**
 * Formats the examples that end `--help`: each command line, and under it
 * what it does.
 */
export function formatExamples(examples: Record<string, string>): string {
  return `Examples:\n${formatColumns(Object.entries(examples), 6)}`;
}

/**
 * The request for help (its text made by `help`) or the version that
 * `flags` hold, if any: --help wins. Either exits 0.
 */
export function infoCommand({ has }: FlagReader, help: () => string) {
  if (has("help")) return { command: "help" as const, text: help() };
  if (has("version")) return { command: "version" as const };
}

/** The command a `parse` function gives, when not help or the version. */
export type CommandOf<Parse extends (...args: never[]) => unknown> = Exclude<
  ReturnType<Parse>,
  ReturnType<typeof infoCommand>
>;

/** The flags every command has: --help and --version. */
export const COMMON_FLAGS: GroupedFlagSpec[] = flagTable({
  "process -h --help": "Show this help and exit",
  "process -V --version": "Show the version and exit",
});

/**
 * Parses a client command's arguments (after its word): its flags, its
 * `[HOST][:PORT]` (default `localhost:8080`), what `own` reads, --timeout
 * (`timeout` if not given) and how it reaches the server (TLS, a CA, or a
 * Unix socket), in that order. `help` is what its `--help` says besides the
 * usage and the options: what the command does, what its exit codes say,
 * and command lines, each to what it does.
 *
 * @throws {UsageError} For any mistake in them.
 */
export function parseClient<C extends string, T extends object = object>(
  command: C,
  args: string[],
  specs: FlagSpec[],
  help: { title: string; exits: string; examples: Record<string, string> },
  timeout: number,
  own?: (read: FlagReader) => T,
) {
  const read = parseFlags(args, specs);
  const info = infoCommand(read, () =>
    `${help.title}

Usage:
  greeter ${command} [HOST][:PORT] [OPTIONS]   (default localhost:${DEFAULT_PORT})

Options:
${formatFlagHelp(specs)}

${help.exits}

${formatExamples(help.examples)}`);
  if (info) return info;
  const { has, last } = read;
  const [address, extra] = read.positionals;
  usageIf(
    extra !== undefined,
    `Unexpected argument ${quote(extra ?? "")}: ${command} takes ` +
      "one [HOST][:PORT]",
  );
  let target = { hostname: "localhost", port: DEFAULT_PORT };
  try {
    if (address !== undefined) target = parseHostPort(address, target);
  } catch (error) {
    throw error instanceof ValueError ? new UsageError(error.message) : error;
  }
  usageIf(
    target.port === 0,
    `Port 0 in ${quote(address ?? "")} is no server's port: give ` +
      "the port the server listens on (1-65535)",
  );
  const mine = own?.(read) as T;
  const timeoutMs = read.duration("timeout", 1) ?? timeout;
  const [tls, ca, insecure] = [has("tls"), last("ca"), has("insecure")];
  const withCa = ca !== undefined;
  usageIf(!tls && (withCa || insecure), "--ca and --insecure go with --tls");
  usageIf(withCa && insecure, "--ca and --insecure cannot be used together");

  const unix = last("unix");
  usageIf(
    unix === "",
    "--unix needs the path of the socket file, as in --unix /run/greeter.sock",
  );
  usageIf(
    unix !== undefined && (tls || address !== undefined),
    "--unix connects to a socket file: drop HOST:PORT and --tls",
  );
  const maxFileSize = read.value("max-file-size", parseSizeFlag);
  return {
    command,
    ...target,
    ...mine,
    timeout: timeoutMs,
    unix,
    tls,
    ca,
    insecure,
    ...(has("proxy-header") && { proxyHeader: true }),
    // Only when given, so a command reads as it always has.
    ...(maxFileSize !== undefined && { maxFileSize }),
  };
}

/** How a client command reaches the server: TLS, a CA, or a Unix socket. */
export type ClientTransport = Omit<
  CommandOf<typeof parseClient<string>>,
  "command" | "hostname" | "port" | "timeout"
>;

/**
 * A client command's own flags, then the ones `connect` and `check` share
 * for reaching the server, then the common ones.
 */
export function clientFlags(table: Record<`-${string}`, string>): FlagSpec[] {
  return [
    ...flagTable({
      ...table,
      "--tls": "Connect over TLS, verifying the certificate",
      "--ca FILE": "Trust this PEM CA certificate (with --tls)",
      "--insecure": "With --tls, do not verify the certificate",
      "--unix PATH": "Connect to a Unix socket instead of HOST:PORT",
      "--proxy-header": "Start with a PROXY protocol v2 LOCAL header, as a " +
        "load balancer's health check does (for a greeter run with " +
        "--proxy-protocol; with --tls, the header is sent before TLS starts)",
      "--max-file-size SIZE": "The most bytes read from the --ca file, in " +
        `bytes or with a unit such as 4MiB (default ${formatSize(MIB)})`,
    }),
    ...COMMON_FLAGS,
  ];
}
