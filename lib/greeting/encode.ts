/** The greeting the classic basic server sends. */
export const DEFAULT_MESSAGE = "Connection Established";

/**
 * What ends each line of a greeting.
 *
 * @example Usage
 * ```ts
 * import { encodeGreeting, type LineEnding } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const lineEnding: LineEnding = "none";
 * assertEquals(encodeGreeting("Hi", { lineEnding }), new Uint8Array([72, 105]));
 * ```
 */
export type LineEnding = "crlf" | "lf" | "none";

/**
 * The character encodings a greeting can be sent in.
 *
 * @example Usage
 * ```ts
 * import { encodeGreeting, type GreetingEncoding } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const encoding: GreetingEncoding = "utf-8";
 * assertEquals(
 *   encodeGreeting("é", { encoding }),
 *   new Uint8Array([0xc3, 0xa9, 0x0d, 0x0a]),
 * );
 * ```
 */
export type GreetingEncoding = "ascii" | "utf-8" | "latin1";

/** The line endings accepted by {@linkcode encodeGreeting}. */
export const LINE_ENDINGS: readonly LineEnding[] = ["crlf", "lf", "none"];

/** The encodings accepted by {@linkcode encodeGreeting}. */
export const GREETING_ENCODINGS: readonly GreetingEncoding[] = [
  "ascii",
  "utf-8",
  "latin1",
];

/**
 * Options for {@linkcode encodeGreeting}.
 *
 * @example Usage
 * ```ts
 * import { encodeGreeting, type EncodeGreetingOptions } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const options: EncodeGreetingOptions = { lineEnding: "lf", encoding: "latin1" };
 * assertEquals(
 *   encodeGreeting("café", options),
 *   new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a]),
 * );
 * ```
 */
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

/**
 * A character the greeting's encoding cannot carry. The message says which
 * and where; the fields let a caller add its own advice.
 *
 * @example Usage
 * ```ts
 * import { encodeGreeting, EncodingError } from "../../mod.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const error = assertThrows(() => encodeGreeting("café"), EncodingError);
 * assertEquals(error.char, "é");
 * assertEquals(error.position, 4);
 * assertEquals(error.encoding, "ascii");
 * ```
 */
export class EncodingError extends RangeError {
  /** The character, as a string of one code point. */
  readonly char: string;
  /** Its position in the text, from 1. */
  readonly position: number;
  /** The encoding that cannot carry it. */
  readonly encoding: GreetingEncoding;
  /**
   * Describes the character and where it is; `subject` names the text
   * (default "Message").
   */
  constructor(
    char: string,
    position: number,
    encoding: GreetingEncoding,
    options: { subject?: string } = {},
  ) {
    super(
      `${options.subject ?? "Message"} has "${char}" (U+${
        char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")
      }) at position ${position}, which ${encoding} cannot encode`,
    );
    this.name = "EncodingError";
    this.char = char;
    this.position = position;
    this.encoding = encoding;
  }
}

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
 * @throws {EncodingError} If the message has a character the encoding
 * cannot represent, rather than sending corrupted bytes.
 * @throws {RangeError} For an unknown line ending or encoding.
 *
 * @example Usage
 * ```ts
 * import { encodeGreeting } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   encodeGreeting("Hello\nWorld"),
 *   new TextEncoder().encode("Hello\r\nWorld\r\n"),
 * );
 * ```
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
      throw new EncodingError(
        String.fromCodePoint(text.codePointAt(i)!),
        i + 1,
        encoding,
      );
    }
    bytes[i] = code;
  }
  return bytes;
}
