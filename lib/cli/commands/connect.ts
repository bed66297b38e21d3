import {
  clientAddress,
  DEFAULT_CLIENT_TIMEOUT,
  readGreeting,
} from "../../client/read_greeting.ts";
import { explainConnectError } from "../explain.ts";
import { clientFlags, type CommandOf, parseClient } from "../flags.ts";
import { clientOptions } from "../setup.ts";
import { formatDuration } from "../duration.ts";

/** The `connect` command's options, validated and typed. */
export type ConnectCommand = CommandOf<typeof parseConnect>;

/** The flags of the `connect` command. */
export const CONNECT_FLAGS = clientFlags({
  "-t --timeout DURATION": "Give up after this long, such as 500ms or 5s; " +
    "a number alone is milliseconds (default " +
    `${formatDuration(DEFAULT_CLIENT_TIMEOUT)})`,
});

/**
 * Parses the `connect` command's arguments (after the word `connect`).
 *
 * @throws {UsageError} For any mistake in them.
 */
export function parseConnect(args: string[]) {
  return parseClient("connect", args, CONNECT_FLAGS, {
    title:
      "greeter connect: print everything a greeter server sends, until it closes",
    exits:
      "Exits 0 once the server closes the connection; 1 if it cannot be reached or\n" +
      "does not finish in time; 2 for a usage error.",
    examples: {
      "greeter connect localhost:2323": "Print the greeting of port 2323",
      "greeter connect --tls --ca ca.pem example.com:2323":
        "Over TLS, trusting the CA in ca.pem",
      "greeter connect --unix /run/greeter.sock --timeout 2s":
        "From a Unix socket, giving up after 2 seconds",
    },
  }, DEFAULT_CLIENT_TIMEOUT);
}

/** Prints everything the server sends, byte for byte, until it closes. */
export async function runConnect(command: ConnectCommand): Promise<number> {
  try {
    for await (const chunk of readGreeting(await clientOptions(command))) {
      let written = 0;
      while (written < chunk.length) {
        written += await Deno.stdout.write(chunk.subarray(written));
      }
    }
  } catch (error) {
    const address = clientAddress({ ...command, path: command.unix });
    throw explainConnectError(error, address, command);
  }
  return 0;
}
