/**
 * greeter's command line: picks the command, runs it, and turns every
 * failure into one line on stderr and an exit code.
 *
 * @module
 */
import { parseCheck, runCheck } from "./commands/check.ts";
import { parseConnect, runConnect } from "./commands/connect.ts";
import { parseServe } from "./commands/serve.ts";
import { explainError } from "./explain.ts";
import { ExitError } from "./flags.ts";
import { escapeControl } from "../net/escape.ts";
import { VERSION } from "../version.ts";
import { formatJsonErrorLine } from "../observe/log_format.ts";

/**
 * Parses greeter's command line into a typed command: `connect` and `check`
 * by their first word, serving otherwise.
 *
 * @throws {UsageError} For any mistake in it.
 */
export function parseCommand(args: string[]) {
  if (args[0] === "connect") return parseConnect(args.slice(1));
  if (args[0] === "check") return parseCheck(args.slice(1));
  return parseServe(args);
}

/** Any command line greeter understands. */
export type Command = ReturnType<typeof parseCommand>;

/**
 * Runs greeter with the given arguments and resolves to the exit code.
 * Every failure is reported as one line on stderr, never a stack trace.
 */
export async function main(args: string[]): Promise<number> {
  // A server logging JSON reports why it could not start in JSON too, so a
  // log pipeline reads that line like the others. Before the command line
  // is parsed, the words are all there is to go by.
  let json = args[0] !== "connect" && args[0] !== "check" &&
    args.some((arg, i) =>
      arg === "--log-format=json" ||
      (arg === "--log-format" && args[i + 1] === "json")
    );
  try {
    const command = parseCommand(args);
    json = command.command === "serve" && command.log.format === "json";
    switch (command.command) {
      case "help":
      case "version":
        console.log("text" in command ? command.text : `greeter ${VERSION}`);
        return 0;
      case "connect":
        return await runConnect(command);
      case "check":
        return await runCheck(command);
      case "serve":
        // Each loads what it needs only: --inetd runs once per client.
        return command.inetd
          ? await (await import("./commands/inetd.ts")).runInetd(command)
          : await (await import("./commands/serve_run.ts")).runServe(command);
    }
  } catch (error) {
    if (error instanceof ExitError && error.silent) return error.exitCode;
    const { message, exitCode } = explainError(error);
    // The last guard of the one-line promise: whatever a message holds, no
    // line break or terminal control reaches stderr raw.
    const line = `greeter: ${escapeControl(message)}`;
    console.error(json ? formatJsonErrorLine(line) : line);
    return exitCode;
  }
}
