import { parseHostPort } from "./address.ts";
import { UsageError } from "./flags.ts";
import { DEFAULT_PORT } from "./server.ts";

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
    throw new UsageError((error as Error).message);
  }
}
