import { UsageError } from "../cli/usage_error.ts";
import { readInputFile } from "../cli/read_file.ts";
import { type GreetingEncoding, LIMITS } from "./encode.ts";

/**
 * Decodes the bytes of a message file in the given encoding.
 *
 * One trailing line break is dropped, as a shell's `$(cat file)` would, so a
 * file saved by an editor does not end the greeting with an extra empty line.
 *
 * @throws {RangeError} If the bytes are not valid in that encoding.
 */
export function decodeMessageFile(
  bytes: Uint8Array,
  encoding: GreetingEncoding = "ascii",
): string {
  let text: string;
  if (encoding === "utf-8") {
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false })
        .decode(bytes);
    } catch {
      throw new RangeError("Message file is not valid UTF-8");
    }
  } else {
    const limit = LIMITS[encoding];
    const at = bytes.findIndex((byte) => byte > limit);
    if (at !== -1) {
      throw new RangeError(
        `Message file has byte 0x${
          bytes[at].toString(16).toUpperCase()
        } at offset ${at}, which is not ${encoding}: use --encoding utf-8 or latin1`,
      );
    }
    text = "";
    for (let i = 0; i < bytes.length; i += 8192) {
      text += String.fromCharCode(...bytes.subarray(i, i + 8192));
    }
  }
  return text.replace(/\r?\n$/, "");
}

/**
 * Reads a message file and decodes it in the greeting's encoding.
 *
 * @throws {UsageError} If the file cannot be read or decoded; the message
 * names the file and the fix.
 */
export async function readMessageFile(
  path: string,
  encoding: GreetingEncoding,
): Promise<string> {
  const bytes = await readInputFile(path, "message file");
  try {
    return decodeMessageFile(bytes, encoding);
  } catch (error) {
    throw new UsageError(`${(error as Error).message} ("${path}")`);
  }
}
