/**
 * Reading a file named on the command line without trusting it: not a
 * device, a FIFO, a directory or a socket, and never more than a limit.
 *
 * @module
 */

import type { Stats } from "node:fs";
import type { FileHandle } from "node:fs/promises";

/** One MiB, the default limit of a file named on the command line. */
export const MIB = 1024 * 1024;

/** A size in bytes for messages: `1 MiB`, `512 KiB`, or `1000 bytes`. */
export function formatSize(bytes: number): string {
  return bytes !== 0 && bytes % MIB === 0
    ? `${bytes / MIB} MiB`
    : bytes !== 0 && bytes % 1024 === 0
    ? `${bytes / 1024} KiB`
    : `${bytes} bytes`;
}

/** Why a file was not read; see {@linkcode ReadLimitedError}. */
export type ReadLimitedKind =
  /** A device, FIFO, directory or socket: {@linkcode ReadLimitedError.fileType} says which. */
  | "not-a-file"
  /** Larger than the limit, by its size or by what it held when read. */
  | "too-large"
  /** Nothing at that path. */
  | "not-found"
  /** The operating system refused (file mode, ownership, a security module). */
  | "permission-denied"
  /** Deno's permissions do not allow it (`--allow-read`, or `--allow-all` for /proc and devices). */
  | "not-permitted"
  /** Any other failure; {@linkcode ReadLimitedError.cause} has it. */
  | "unreadable";

/** What a path that is not a regular file is. */
export type FileType =
  | "directory"
  | "fifo"
  | "socket"
  | "character-device"
  | "block-device"
  | "unknown";

/** Words for each file type, for the message. */
export const TYPE_WORDS: Readonly<Record<FileType, string>> = {
  "directory": "a directory",
  "fifo": "a FIFO (named pipe)",
  "socket": "a socket",
  "character-device": "a character device",
  "block-device": "a block device",
  "unknown": "not a regular file",
};

/** Details for {@linkcode ReadLimitedError}. */
export interface ReadLimitedDetails {
  /** For `not-a-file`: what the path is. */
  fileType?: FileType;
  /** For `too-large`: the size stat reported, or the bytes read past the limit. */
  size?: number;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * A file that {@linkcode readLimited} would not or could not read. The
 * fields say why; the message is a plain sentence without flag names, for
 * the CLI to prefix with the flag the file came from.
 */
export class ReadLimitedError extends Error {
  /** The path as given. */
  readonly path: string;
  /** Why it was not read. */
  readonly kind: ReadLimitedKind;
  /** The limit it was read with, in bytes. */
  readonly limit: number;
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
    path: string,
    kind: ReadLimitedKind,
    limit: number,
    details: ReadLimitedDetails = {},
  ) {
    const { fileType, size, cause } = details;
    // Why, in the words the command line puts after the file's name.
    super(
      kind === "not-a-file"
        ? `it is ${
          TYPE_WORDS[fileType ?? "unknown"]
        }; give the path of a regular file`
        : kind === "too-large"
        ? `it is larger than the limit of ${formatSize(limit)}` +
          (size !== undefined && size > limit + 1
            ? ` (${formatSize(size)})`
            : "") +
          "; raise the limit with --max-file-size, such as --max-file-size " +
          "64MiB"
        : kind === "not-found"
        ? "no such file"
        : kind === "permission-denied"
        ? "permission denied"
        : kind === "not-permitted"
        ? "greeter lacks read permission (run deno with --allow-read)"
        : cause instanceof Error
        ? cause.message
        : String(cause),
      cause === undefined ? undefined : { cause },
    );
    this.name = "ReadLimitedError";
    this.path = path;
    this.kind = kind;
    this.limit = limit;
    if (fileType !== undefined) this.fileType = fileType;
    if (size !== undefined) this.size = size;
  }
}

/** What `info` is, when it is not a regular file. */
function fileTypeOf(info: Deno.FileInfo): FileType {
  return info.isDirectory
    ? "directory"
    : info.isFifo
    ? "fifo"
    : info.isSocket
    ? "socket"
    : info.isCharDevice
    ? "character-device"
    : info.isBlockDevice
    ? "block-device"
    : "unknown";
}

/** Turns an error from stat, open or read into a {@linkcode ReadLimitedError}. */
function wrap(path: string, limit: number, error: unknown): ReadLimitedError {
  if (error instanceof ReadLimitedError) return error;
  // Deno's own errors, or node:fs's with their errno code.
  const code = (error as { code?: unknown })?.code;
  const kind: ReadLimitedKind =
    error instanceof Deno.errors.NotFound || code === "ENOENT"
      ? "not-found"
      : error instanceof Deno.errors.PermissionDenied || code === "EACCES" ||
          code === "EPERM"
      ? "permission-denied"
      : error instanceof Deno.errors.NotCapable
      ? "not-permitted"
      : error instanceof Deno.errors.IsADirectory || code === "EISDIR"
      ? "not-a-file"
      : "unreadable";
  return new ReadLimitedError(path, kind, limit, {
    cause: error,
    fileType: kind === "not-a-file" ? "directory" : undefined,
  });
}

/** Bytes asked of each read: enough for a certificate in one go. */
const CHUNK = 64 * 1024;

/**
 * node:fs, loaded at the first read: some 50 ms that `--help`, a usage
 * error or a greeter without files (each `--inetd` client) need not pay.
 */
let nodeFs: Promise<typeof import("node:fs")> | undefined;

/** What was opened, as {@linkcode fileTypeOf} wants it. */
function infoOf(stats: Stats): Deno.FileInfo {
  return {
    isFile: stats.isFile(),
    isDirectory: stats.isDirectory(),
    isFifo: stats.isFIFO(),
    isSocket: stats.isSocket(),
    isCharDevice: stats.isCharacterDevice(),
    isBlockDevice: stats.isBlockDevice(),
    size: stats.size,
  } as Deno.FileInfo;
}

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
  let file: FileHandle | undefined;
  try {
    check(path, limit, await Deno.stat(path));
    const { constants, promises } = await (nodeFs ??= import("node:fs"));
    // Opening never blocks (a FIFO swapped in after the stat would wait for
    // a writer forever) nor takes a terminal as the controlling one.
    file = await promises.open(
      path,
      constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY,
    );
    const opened = infoOf(await file.stat());
    check(path, limit, opened);
    return await readUpTo(file, path, limit, opened.size);
  } catch (error) {
    throw wrap(path, limit, error);
  } finally {
    await file?.close().catch(() => {});
  }
}

/** Refuses anything but a regular file within the limit. */
function check(path: string, limit: number, info: Deno.FileInfo): void {
  if (!info.isFile) {
    throw new ReadLimitedError(path, "not-a-file", limit, {
      fileType: fileTypeOf(info),
    });
  }
  if (info.size > limit) {
    throw new ReadLimitedError(path, "too-large", limit, { size: info.size });
  }
}

/** Reads to the end, but never more than `limit + 1` bytes in all. */
async function readUpTo(
  file: FileHandle,
  path: string,
  limit: number,
  expected: number,
): Promise<Uint8Array> {
  // Room for the size stat gave plus one byte to notice growth; grown in
  // steps only if the file holds more than it said.
  let buffer = new Uint8Array(Math.min(limit, expected) + 1);
  let length = 0;
  while (true) {
    if (length === buffer.length) {
      if (length > limit) {
        throw new ReadLimitedError(path, "too-large", limit, { size: length });
      }
      const grown = new Uint8Array(Math.min(limit + 1, length + CHUNK));
      grown.set(buffer);
      buffer = grown;
    }
    const { bytesRead } = await file.read(
      buffer,
      length,
      buffer.length - length,
      null,
    );
    if (bytesRead === 0) break;
    length += bytesRead;
  }
  if (length > limit) {
    throw new ReadLimitedError(path, "too-large", limit, { size: length });
  }
  return buffer.subarray(0, length);
}
