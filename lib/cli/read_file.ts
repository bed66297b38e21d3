import { formatSize, MIB, UsageError } from "./flags.ts";
import { quote } from "../observe/escape.ts";
import { readLimited, ReadLimitedError, TYPE_WORDS } from "./read_limited.ts";

/** The most bytes read from a greeting, certificate, key or CA file. */
export const DEFAULT_FILE_LIMIT = MIB;

/** The most bytes read from a quotes file: a fortune database is larger. */
export const DEFAULT_QUOTES_LIMIT = 16 * MIB;

/**
 * Says why reading a file failed, in words that point to the fix, the same
 * for every file greeter reads.
 */
function describeReadError(error: ReadLimitedError): string {
  switch (error.kind) {
    case "not-found":
      return "no such file";
    case "permission-denied":
      return "permission denied";
    case "not-permitted":
      return "greeter lacks read permission (run deno with --allow-read)";
    case "not-a-file":
      return `it is ${
        TYPE_WORDS[error.fileType ?? "unknown"]
      }; give the path of a regular file`;
    case "too-large":
      return `it is larger than the limit of ${formatSize(error.limit)}` +
        (error.size !== undefined && error.size > error.limit + 1
          ? ` (${formatSize(error.size)})`
          : "") +
        "; raise the limit with --max-file-size, such as --max-file-size " +
        "64MiB";
    case "unreadable":
      break;
  }
  const cause = error.cause;
  return cause instanceof Error ? cause.message : String(cause);
}

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
      `Cannot read ${what} ${quote(path)}: ${describeReadError(error)}`,
    );
  }
}
