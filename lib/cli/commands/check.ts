import { clientTls } from "../setup.ts";
import {
  explainConnectError,
  greetingErrorMessage,
  lowerFirst,
} from "../explain.ts";
import { checkGreeting, DEFAULT_CHECK_TIMEOUT } from "../../client/check.ts";
import {
  CLIENT_TRANSPORT_FLAGS,
  type ClientTransport,
  COMMON_FLAGS,
  flagName,
  type FlagSpec,
  formatDuration,
  formatExamples,
  formatFlagHelp,
  type InfoCommand,
  lastValue,
  parseChoiceFlag,
  parseClientTransport,
  parseDurationFlag,
  parseFlags,
  parseTarget,
  UsageError,
} from "../flags.ts";
import {
  DEFAULT_MESSAGE,
  encodeGreeting,
  GREETING_ENCODINGS,
  LINE_ENDINGS,
} from "../../greeting/template.ts";
import { DEFAULT_PORT } from "../../server/options.ts";

/** The `check` command's options, validated and typed. */
export interface CheckCommand extends ClientTransport {
  /** Always `check`. */
  command: "check";
  /** The server's host name or IP address. */
  hostname: string;
  /** The server's TCP port. */
  port: number;
  /** The exact bytes the server must send. */
  expect: Uint8Array;
  /** How long the whole check may take, in milliseconds. */
  timeout: number;
}

/** The flags of the `check` command. */
export const CHECK_FLAGS: FlagSpec[] = [
  {
    name: "expect",
    short: "e",
    value: "TEXT",
    help:
      `The greeting text the server must send (default "${DEFAULT_MESSAGE}")`,
  },
  {
    name: "line-ending",
    value: "crlf|lf|none",
    help: "What ends each line of the expected text, as the server's " +
      "option (default crlf)",
  },
  {
    name: "encoding",
    value: "ascii|utf-8|latin1",
    help: "Encoding of the expected text, as the server's option " +
      "(default ascii)",
  },
  {
    name: "timeout",
    short: "t",
    value: "DURATION",
    help: "Fail if the whole greeting and the close take longer, such as " +
      "500ms or 5s; a number alone is milliseconds (default " +
      `${formatDuration(DEFAULT_CHECK_TIMEOUT)})`,
  },
  ...CLIENT_TRANSPORT_FLAGS,
  ...COMMON_FLAGS,
];

/** The text of `greeter check --help`. */
export function checkHelp(): string {
  return `greeter check: a health probe; checks that a greeter server sends the
expected greeting

Usage:
  greeter check [HOST][:PORT] [OPTIONS]   (default localhost:${DEFAULT_PORT})

Options:
${formatFlagHelp(CHECK_FLAGS)}

Prints one line, OK, MISMATCH or FAIL, and exits 0 only when the server sent
exactly the expected bytes and closed; 1 on a mismatch or any failure; 2 for
a usage error.

${
    formatExamples([
      ["greeter check 127.0.0.1:8080", "Exit 0 if the default greeting comes"],
      [
        'greeter check --expect "Hello" --line-ending lf --timeout 1s :2323',
        'Expect "Hello\\n" from localhost:2323 within a second',
      ],
      [
        'HEALTHCHECK CMD ["greeter", "check", "127.0.0.1:8080"]',
        "The same, as a Dockerfile health check",
      ],
    ])
  }`;
}

/**
 * Parses the arguments after `check` into a typed command (or a request
 * for help or the version).
 *
 * @throws {UsageError} For any mistake in them.
 */
export function parseCheck(
  args: string[],
): CheckCommand | InfoCommand {
  const flags = parseFlags(args, CHECK_FLAGS);
  if (flags.switches.has("help")) return { command: "help", text: checkHelp() };
  if (flags.switches.has("version")) return { command: "version" };
  const target = parseTarget(flags.positionals, "check");
  const lineEnding = parseChoiceFlag(
    lastValue(flags, "line-ending") ?? "crlf",
    flagName(flags, "line-ending"),
    LINE_ENDINGS,
  );
  const encoding = parseChoiceFlag(
    lastValue(flags, "encoding") ?? "ascii",
    flagName(flags, "encoding"),
    GREETING_ENCODINGS,
  );
  let expect: Uint8Array;
  try {
    expect = encodeGreeting(lastValue(flags, "expect") ?? DEFAULT_MESSAGE, {
      lineEnding,
      encoding,
    });
  } catch (error) {
    throw new UsageError(
      `Invalid value for ${flagName(flags, "expect")}: ${
        lowerFirst(greetingErrorMessage(error as Error))
      }`,
    );
  }
  const timeoutText = lastValue(flags, "timeout");
  return {
    command: "check",
    ...target,
    expect,
    timeout: timeoutText === undefined
      ? DEFAULT_CHECK_TIMEOUT
      : parseDurationFlag(timeoutText, flagName(flags, "timeout"), 1),
    ...parseClientTransport(flags),
  };
}

/** Runs the health probe: one line on stdout, exit 0 only for a match. */
export async function runCheck(command: CheckCommand): Promise<number> {
  const result = await checkGreeting({
    ...command,
    path: command.unix,
    tls: await clientTls(command),
  });
  // A failure to connect is worded by the CLI, with the flags that fix it,
  // and so are the library's hints.
  const header = "if it expects a PROXY protocol header";
  console.log(
    result.error !== undefined
      ? `FAIL ${
        lowerFirst(
          explainConnectError(result.error, result.address, {
            tls: command.tls,
            ca: command.ca !== undefined,
          }).message,
        )
      }`
      : result.hint === "proxy-header"
      ? `${result.message}; ${header} (--proxy-protocol), add --proxy-header`
      : result.hint === "timeout"
      ? `${result.message} (try a longer --timeout${
        command.proxyHeader ? "" : `; ${header}, add --proxy-header`
      })`
      : result.message,
  );
  return result.ok ? 0 : 1;
}
