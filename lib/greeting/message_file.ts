import { type GreetingEncoding, LIMITS } from "./template.ts";
import { attempt } from "../net/value_error.ts";

/** Bytes of a message file that its encoding cannot decode. */
export class DecodeError extends RangeError {
  /** Where the first bad byte is, from 0 (-1 for invalid UTF-8). */
  readonly offset: number;
  /** The encoding the bytes were read in. */
  readonly encoding: GreetingEncoding;
  /** Says which byte is wrong, or that the text is not UTF-8. */
  constructor(message: string, offset: number, encoding: GreetingEncoding) {
    super(message);
    this.name = "DecodeError";
    this.offset = offset;
    this.encoding = encoding;
  }
}

/** `bytes` as UTF-8 text (a byte order mark left out), if they are UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  return attempt(() => new TextDecoder("utf-8", { fatal: true }).decode(bytes));
}

/**
 * Decodes the bytes of a message file in the given encoding.
 *
 * One trailing line break is dropped, as a shell's `$(cat file)` would, so a
 * file saved by an editor does not end the greeting with an extra empty line.
 *
 * @throws {DecodeError} If the bytes are not valid in that encoding.
 */
export function decodeMessageFile(
  bytes: Uint8Array,
  encoding: GreetingEncoding = "ascii",
): string {
  // UTF-8 has no limit: its bytes are checked by decoding them.
  const at = bytes.findIndex((byte) => byte > LIMITS[encoding]);
  if (at !== -1) {
    const byte = `0x${bytes[at].toString(16).toUpperCase()}`;
    const message = `Message file has byte ${byte} at offset ${at}`;
    throw new DecodeError(`${message}, which is not ${encoding}`, at, encoding);
  }
  let text = encoding === "utf-8" ? decodeUtf8(bytes) : "";
  if (text === undefined) {
    throw new DecodeError("Message file is not valid UTF-8", -1, encoding);
  }
  // ASCII and Latin-1: each byte is its character, in runs the stack takes.
  for (let i = 0; encoding !== "utf-8" && i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return text.replace(/\r?\n$/, "");
}
