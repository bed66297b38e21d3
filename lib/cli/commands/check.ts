import { clientOptions } from "../setup.ts";
import { formatDuration } from "../duration.ts";
import { asUsageError, explainConnectError, lowerFirst } from "../explain.ts";
import { checkGreeting, DEFAULT_CHECK_TIMEOUT } from "../../client/check.ts";
import { clientFlags, type CommandOf, parseClient } from "../flags.ts";
import { DEFAULT_MESSAGE, encodeGreeting } from "../../greeting/template.ts";

/**
 * The `check` command's options, validated and typed; `expect` is the
 * exact bytes the server must send.
 */
export type CheckCommand = CommandOf<typeof parseCheck>;

/** The flags of the `check` command. */
export const CHECK_FLAGS = clientFlags({
  "-e --expect TEXT":
    `The greeting text the server must send (default "${DEFAULT_MESSAGE}")`,
  "--line-ending crlf|lf|none": "What ends each line of the expected " +
    "text, as the server's option (default crlf)",
  "--encoding ascii|utf-8|latin1": "Encoding of the expected text, as the " +
    "server's option (default ascii)",
  "-t --timeout DURATION": "Fail if the whole greeting and the close take " +
    "longer, such as 500ms or 5s; a number alone is milliseconds (default " +
    `${formatDuration(DEFAULT_CHECK_TIMEOUT)})`,
});

/** What `greeter check --help` says besides its usage and options. */
const HELP = {
  title:
    "greeter check: a health probe; checks that a greeter server sends the\n" +
    "expected greeting",
  exits:
    "Prints one line, OK, MISMATCH or FAIL, and exits 0 only when the server sent\n" +
    "exactly the expected bytes and closed; 1 on a mismatch or any failure; 2 for\n" +
    "a usage error.",
  examples: {
    "greeter check 127.0.0.1:8080": "Exit 0 if the default greeting comes",
    'greeter check --expect "Hello" --line-ending lf --timeout 1s :2323':
      'Expect "Hello\\n" from localhost:2323 within a second',
    'HEALTHCHECK CMD ["greeter", "check", "127.0.0.1:8080"]':
      "The same, as a Dockerfile health check",
  },
};

/**
 * Parses the arguments after `check` into a typed command (or a request
 * for help or the version).
 *
 * @throws {UsageError} For any mistake in them.
 */
export function parseCheck(args: string[]) {
  const timeout = DEFAULT_CHECK_TIMEOUT;
  return parseClient("check", args, CHECK_FLAGS, HELP, timeout, (read) => {
    const text = read.last("expect") ?? DEFAULT_MESSAGE;
    const make = () => encodeGreeting(text, read.greetingFormat());
    return { expect: asUsageError(make, undefined, read.flag("expect")) };
  });
}

/** Runs the health probe: one line on stdout, exit 0 only for a match. */
export async function runCheck(command: CheckCommand): Promise<number> {
  const result = await checkGreeting(await clientOptions(command));
  // A failure to connect is worded by the CLI, with the flags that fix it,
  // and so are the library's hints.
  const failure = result.error !== undefined &&
    explainConnectError(result.error, result.address, command).message;
  const header = "if it expects a PROXY protocol header";
  console.log(
    failure !== false
      ? `FAIL ${lowerFirst(failure)}`
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
