/** The greeting the classic basic server sends. */
export const DEFAULT_MESSAGE = "Connection Established";

/** What ends each line of a greeting. */
export type LineEnding = "crlf" | "lf" | "none";

/** The character encodings a greeting can be sent in. */
export type GreetingEncoding = "ascii" | "utf-8" | "latin1";

/** The line endings accepted by {@linkcode encodeGreeting}. */
export const LINE_ENDINGS: readonly LineEnding[] = ["crlf", "lf", "none"];

/** The encodings accepted by {@linkcode encodeGreeting}. */
export const GREETING_ENCODINGS: readonly GreetingEncoding[] = [
  "ascii",
  "utf-8",
  "latin1",
];

/** Options for {@linkcode encodeGreeting}. */
export interface EncodeGreetingOptions {
  /**
   * What ends each line; line breaks inside the message are rewritten to it
   * ("none" keeps them as LF and adds nothing after the last line).
   *
   * @default {"crlf"}
   */
  lineEnding?: LineEnding;
  /**
   * The character encoding of the bytes on the wire.
   *
   * @default {"ascii"}
   */
  encoding?: GreetingEncoding;
}

const TERMINATORS: Record<LineEnding, string> = {
  crlf: "\r\n",
  lf: "\n",
  none: "",
};

/** The highest character code each single-byte encoding can carry. */
export const LIMITS: Record<Exclude<GreetingEncoding, "utf-8">, number> = {
  ascii: 0x7f,
  latin1: 0xff,
};

/**
 * Encodes a greeting message into the exact bytes sent to every client.
 *
 * Call it once and reuse the bytes: the server never re-encodes a static
 * greeting.
 *
 * @throws {RangeError} If the message has a character the encoding cannot
 * represent, rather than sending corrupted bytes.
 */
export function encodeGreeting(
  message: string,
  options: EncodeGreetingOptions = {},
): Uint8Array<ArrayBuffer> {
  const { lineEnding = "crlf", encoding = "ascii" } = options;
  const terminator = TERMINATORS[lineEnding];
  if (terminator === undefined) {
    throw new RangeError(
      `Unknown line ending "${lineEnding}": use one of ${
        LINE_ENDINGS.join(", ")
      }`,
    );
  }
  const lines = message.split(/\r?\n/);
  const text = lines.join(lineEnding === "none" ? "\n" : terminator) +
    terminator;
  if (encoding === "utf-8") {
    if (!text.isWellFormed()) {
      throw new RangeError(
        "Message has an unpaired surrogate, which UTF-8 cannot encode",
      );
    }
    return new TextEncoder().encode(text);
  }
  const limit = LIMITS[encoding];
  if (limit === undefined) {
    throw new RangeError(
      `Unknown encoding "${encoding}": use one of ${
        GREETING_ENCODINGS.join(", ")
      }`,
    );
  }
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > limit) {
      const char = String.fromCodePoint(text.codePointAt(i)!);
      throw new RangeError(
        `Message has "${char}" (U+${
          code.toString(16).toUpperCase().padStart(4, "0")
        }) at position ${
          i + 1
        }, which ${encoding} cannot encode: use --encoding utf-8`,
      );
    }
    bytes[i] = code;
  }
  return bytes;
}
