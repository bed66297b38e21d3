/**
 * Reading a file named on the command line without trusting it: not a
 * device, a FIFO, a directory or a socket, and never more than a limit.
 *
 * @module
 */

import type { FileHandle } from "node:fs/promises";

/** One MiB, the default limit of a file named on the command line. */
export const MIB = 1024 * 1024;

/** The most bytes read from a greeting, certificate, key or CA file. */
export const DEFAULT_FILE_LIMIT = MIB;

/** The most bytes read from a quotes file: a fortune database is larger. */
export const DEFAULT_QUOTES_LIMIT = 16 * MIB;

/** A size in bytes for messages: `1 MiB`, `512 KiB`, or `1000 bytes`. */
export function formatSize(bytes: number): string {
  return bytes !== 0 && bytes % MIB === 0
    ? `${bytes / MIB} MiB`
    : bytes !== 0 && bytes % 1024 === 0
    ? `${bytes / 1024} KiB`
    : `${bytes} bytes`;
}

/** The words of each file type but a regular file, by its `st_mode` type bits. */
const TYPES = {
  "directory": [0o040000, "a directory"],
  "fifo": [0o010000, "a FIFO (named pipe)"],
  "socket": [0o140000, "a socket"],
  "character-device": [0o020000, "a character device"],
  "block-device": [0o060000, "a block device"],
  "unknown": [-1, "not a regular file"],
} as const;

/** What a path that is not a regular file is. */
export type FileType = keyof typeof TYPES;

/** The words after the file's name, for each kind the system says. */
const REASONS = {
  "not-found": "no such file",
  "permission-denied": "permission denied",
  "not-permitted": "greeter lacks read permission (run deno with --allow-read)",
} as const;

/**
 * Why a file was not read: `not-a-file` (a device, FIFO, directory or
 * socket), `too-large` (by its size or by what it held when read),
 * `not-found`, `permission-denied` (the operating system refused),
 * `not-permitted` (Deno's permissions: `--allow-read`, or `--allow-all` for
 * /proc and devices), or `unreadable` (any other failure, in `cause`).
 */
export type ReadLimitedKind =
  | keyof typeof REASONS
  | "not-a-file"
  | "too-large"
  | "unreadable";

/** The errors of each kind the system says, by class or node:fs code. */
const CAUSES: [ReadLimitedKind, typeof Deno.errors.NotFound, ...string[]][] = [
  ["not-found", Deno.errors.NotFound, "ENOENT"],
  ["permission-denied", Deno.errors.PermissionDenied, "EACCES", "EPERM"],
  ["not-permitted", Deno.errors.NotCapable],
  ["not-a-file", Deno.errors.IsADirectory, "EISDIR"],
];

/**
 * A file that {@linkcode readLimited} would not or could not read. The
 * fields say why; the message is a plain sentence without flag names, for
 * the CLI to prefix with the flag the file came from.
 */
export class ReadLimitedError extends Error {
  /** For `not-a-file`: what the path is. */
  readonly fileType?: FileType;
  /**
   * For `too-large`: the size in bytes stat reported, or, for a file that
   * held more than stat said (it grew, or is a /proc file), at least this
   * many (the limit plus one).
   */
  readonly size?: number;

  /**
   * Makes the error and its message from the fields.
   *
   * @param path The path as given.
   * @param kind Why it was not read.
   * @param limit The limit it was read with, in bytes.
   * @param details What it is, how large, and the underlying error.
   */
  constructor(
    readonly path: string,
    readonly kind: ReadLimitedKind,
    readonly limit: number,
    details: { fileType?: FileType; size?: number; cause?: unknown } = {},
  ) {
    const { fileType, size, cause } = details;
    // Why, in the words the command line puts after the file's name.
    super(
      kind === "not-a-file"
        ? `it is ${TYPES[fileType ?? "unknown"][1]}; give the path of a ` +
          "regular file"
        : kind === "too-large"
        ? `it is larger than the limit of ${formatSize(limit)}` +
          (size !== undefined && size > limit + 1
            ? ` (${formatSize(size)})`
            : "") +
          "; raise the limit with --max-file-size, such as --max-file-size " +
          "64MiB"
        : REASONS[kind as keyof typeof REASONS] ??
          (cause instanceof Error ? cause.message : String(cause)),
      cause === undefined ? undefined : { cause },
    );
    this.name = "ReadLimitedError";
    Object.assign(this, { fileType, size });
  }
}

/** Bytes asked of each read: enough for a certificate in one go. */
const CHUNK = 64 * 1024;

/**
 * node:fs, loaded at the first read: some 50 ms that `--help`, a usage
 * error or a greeter without files (each `--inetd` client) need not pay.
 */
let nodeFs: Promise<typeof import("node:fs")> | undefined;

/**
 * Reads the regular file at `path`, of at most `limit` bytes.
 *
 * What it is is checked with `Deno.stat` before it is opened: a device
 * (`/dev/zero` never ends), a directory, a FIFO or a socket is never
 * opened. A file whose size is over the limit is refused without a byte
 * read. The open itself never blocks (`O_NONBLOCK`), and what was opened is
 * checked again through its handle, so a path swapped for a FIFO or a
 * device between the stat and the open is refused too, at once. The read
 * stops at `limit + 1` bytes, for files that grow after the stat or report
 * a size of 0 (those in /proc), so memory use is bounded by the limit.
 *
 * @param limit The most bytes to accept, a safe integer ≥ 0.
 * @throws {RangeError} If `limit` is not one.
 * @throws {ReadLimitedError} If the file is not read; `kind` says why.
 *
 * @example
 * ```ts ignore
 * const bytes = await readLimited("/etc/greeter/banner.txt", 1024 * 1024);
 * ```
 */
export async function readLimited(
  path: string,
  limit: number,
): Promise<Uint8Array> {
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new RangeError(
      `Read limit must be a whole number of bytes, 0 or more; got ${limit}`,
    );
  }
  /** Refuses anything but a regular file within the limit. */
  const check = (isFile: boolean, mode: number | null, size: number) => {
    if (!isFile) {
      const fileType = (Object.keys(TYPES) as FileType[]).find((name) =>
        TYPES[name][0] === ((mode ?? 0) & 0o170000)
      ) ?? "unknown";
      throw new ReadLimitedError(path, "not-a-file", limit, { fileType });
    }
    if (size > limit) {
      throw new ReadLimitedError(path, "too-large", limit, { size });
    }
  };
  let file: FileHandle | undefined;
  try {
    const { isFile, isDirectory, mode, size } = await Deno.stat(path);
    // Windows gives no mode: there, only a directory is told apart.
    check(isFile, mode ?? (isDirectory ? 0o040000 : 0), size);
    const { constants, promises } = await (nodeFs ??= import("node:fs"));
    // Opening never blocks (a FIFO swapped in after the stat would wait for
    // a writer forever) nor takes a terminal as the controlling one.
    file = await promises.open(
      path,
      constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY,
    );
    const opened = await file.stat();
    check(opened.isFile(), opened.mode, opened.size);
    // Room for the size stat gave plus one byte to notice growth; grown in
    // steps only if the file holds more than it said.
    let buffer = new Uint8Array(Math.min(limit, opened.size) + 1);
    let length = 0;
    while (length <= limit) {
      if (length === buffer.length) {
        const size = Math.min(limit + 1, length + CHUNK);
        buffer = new Uint8Array(buffer.buffer.transfer(size));
      }
      const { bytesRead } = await file.read(buffer.subarray(length));
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    check(true, null, length);
    return buffer.subarray(0, length);
  } catch (error) {
    if (error instanceof ReadLimitedError) throw error;
    // Deno's own errors, or node:fs's with their errno code.
    const code = (error as { code?: unknown })?.code;
    const [kind] = CAUSES.find(([, type, ...codes]) =>
      error instanceof type || codes.includes(code as string)
    ) ?? ["unreadable"];
    const fileType = kind === "not-a-file" ? "directory" : undefined;
    throw new ReadLimitedError(path, kind, limit, { cause: error, fileType });
  } finally {
    await file?.close().catch(() => {});
  }
}
