import { UsageError } from "./flags.ts";
import { quote } from "../observe/escape.ts";
import { MIB, readLimited, ReadLimitedError } from "./read_limited.ts";

/** The most bytes read from a greeting, certificate, key or CA file. */
export const DEFAULT_FILE_LIMIT = MIB;

/** The most bytes read from a quotes file: a fortune database is larger. */
export const DEFAULT_QUOTES_LIMIT = 16 * MIB;

/**
 * Reads a file named on the command line, never more than `limit` bytes,
 * and never a device, FIFO, directory or socket (see
 * {@linkcode readLimited}).
 *
 * @param what What the file is, for the error message ("quotes file").
 * @param limit The most bytes to read.
 * @throws {UsageError} `Cannot read <what> "<path>": <reason>` if it cannot
 * be read.
 */
export async function readInputFile(
  path: string,
  what: string,
  limit: number = DEFAULT_FILE_LIMIT,
): Promise<Uint8Array> {
  try {
    return await readLimited(path, limit);
  } catch (error) {
    // readLimited wraps every failure of its own; anything else is a bug.
    if (!(error instanceof ReadLimitedError)) throw error;
    throw new UsageError(
      `Cannot read ${what} ${quote(path)}: ${error.message}`,
    );
  }
}
