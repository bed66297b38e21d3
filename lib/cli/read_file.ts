import { UsageError } from "./flags.ts";

/**
 * Says why reading a file failed, in words that point to the fix: the
 * reasons `readMessageFile` gives, shared so every file greeter reads is
 * reported the same way.
 */
export function describeReadError(error: unknown): string {
  return error instanceof Deno.errors.NotFound
    ? "no such file"
    : error instanceof Deno.errors.PermissionDenied
    ? "permission denied"
    : error instanceof Deno.errors.IsADirectory
    ? "it is a directory"
    : error instanceof Deno.errors.NotCapable
    ? "greeter lacks read permission (run deno with --allow-read)"
    : (error as Error).message;
}

/**
 * Reads a file named on the command line.
 *
 * @param what What the file is, for the error message ("quotes file").
 * @throws {UsageError} `Cannot read <what> "<path>": <reason>` if it cannot
 * be read.
 */
export async function readInputFile(
  path: string,
  what: string,
): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    throw new UsageError(
      `Cannot read ${what} "${path}": ${describeReadError(error)}`,
    );
  }
}
