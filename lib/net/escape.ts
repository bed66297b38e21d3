/**
 * Escaping for values echoed in one-line messages (error lines, warnings).
 *
 * A value from the command line or a file can hold anything: a newline
 * would split the message in two, an escape byte would reach the terminal
 * raw, and a bidi override would reorder what the reader sees. Everything
 * of that kind is written as a visible escape instead, so the content stays
 * readable and the message stays one line.
 *
 * @module
 */

/**
 * What {@linkcode escapeControl} escapes:
 * - C0 controls U+0000–U+001F, DEL U+007F and C1 controls U+0080–U+009F;
 * - U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR, which some
 *   terminals and viewers treat as line breaks;
 * - the bidi embeddings, overrides and isolates U+202A–U+202E and
 *   U+2066–U+2069, and the marks U+200E, U+200F and U+061C, which reorder or
 *   disguise the text around them ("Trojan Source");
 * - the invisible U+200B ZERO WIDTH SPACE and U+FEFF BYTE ORDER MARK, which
 *   would hide a difference between two values that look alike;
 * - lone surrogates, which a terminal would show as U+FFFD and so lose.
 *
 * U+200C and U+200D (zero width non-joiner and joiner) are kept: scripts
 * and emoji sequences need them, and they cannot move or hide text.
 *
 * Built from a string, not a literal: the lint rule against control
 * characters in regular expressions is right everywhere but here.
 */
const UNSAFE = new RegExp(
  "[\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200b\\u200e\\u200f\\u2028\\u2029" +
    "\\u202a-\\u202e\\u2066-\\u2069\\ufeff]" +
    // Lone surrogates: a high one not followed by a low one, and vice versa.
    "|[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]",
  "g",
);

/** {@linkcode UNSAFE} without the global flag, for a test that keeps no state. */
const HAS_UNSAFE = new RegExp(UNSAFE.source);

/** The same set, plus the backslash and the double quote, for {@linkcode quote}. */
const UNSAFE_QUOTED = new RegExp(`[\\\\"]|${UNSAFE.source}`, "g");

/**
 * One character escaped: `\n`, `\r`, `\t`, `\\` and `\"` short, as in
 * JavaScript and C; any other as `\xHH`, or `\uHHHH` above U+00FF.
 */
function escapeOne(char: string): string {
  const short = '\n\r\t\\"'.indexOf(char);
  if (short >= 0) return `\\${'nrt\\"'[short]}`;
  const code = char.charCodeAt(0);
  const hex = code.toString(16).padStart(code <= 0xff ? 2 : 4, "0");
  return `\\${code <= 0xff ? "x" : "u"}${hex}`;
}

/**
 * Escapes every control, line-breaking, bidi and invisible character in
 * `text` (see the list above) as `\n`, `\r`, `\t`, `\xHH` or `\uHHHH`, and
 * leaves everything else, backslashes included, as it is.
 *
 * Use it on a whole message as the last step before it is written: the
 * result never holds a line break or a terminal control, and escaping it
 * again changes nothing. To show a single value unambiguously, use
 * {@linkcode quote}.
 *
 * @example Newlines and escape bytes become visible
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { escapeControl } from "./escape.ts";
 *
 * assertEquals(escapeControl("a\nb\x1b[31m"), "a\\nb\\x1b[31m");
 * assertEquals(escapeControl("C:\\dir"), "C:\\dir");
 * ```
 */
export function escapeControl(text: string): string {
  return HAS_UNSAFE.test(text) ? text.replace(UNSAFE, escapeOne) : text;
}

/**
 * `text` in double quotes, for echoing a value in a message: the characters
 * {@linkcode escapeControl} escapes, and also `\` and `"`, so the quoted
 * value can be told apart from what surrounds it and read back exactly.
 *
 * @example A value with a newline and a quote
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { quote } from "./escape.ts";
 *
 * assertEquals(quote('say "hi"\n'), '"say \\"hi\\"\\n"');
 * ```
 */
export function quote(text: string): string {
  return `"${text.replace(UNSAFE_QUOTED, escapeOne)}"`;
}

/**
 * Bytes a client sent, as text safe on one line: printable ASCII as it is,
 * `\r`, `\n`, `\t`, `\\` and `\"` short, every other byte as `\xHH`. So it
 * can be put in double quotes and read back exactly, byte for byte.
 *
 * @example An HTTP request line and a TLS record's first bytes
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { escapeBytes } from "./escape.ts";
 *
 * assertEquals(
 *   escapeBytes(new TextEncoder().encode('GET /"x" HTTP/1.1\r\n')),
 *   'GET /\\"x\\" HTTP/1.1\\r\\n',
 * );
 * assertEquals(escapeBytes(Uint8Array.of(0x16, 0x03, 0xff)), "\\x16\\x03\\xff");
 * ```
 */
export function escapeBytes(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes).replace(/[^ -~]|[\\"]/g, escapeOne);
}

/**
 * An error's message for a one-line report: its first line, without the
 * ` (os error N)` Deno adds to system errors.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { errorLine } from "./escape.ts";
 *
 * assertEquals(
 *   errorLine(new Error("Connection refused (os error 111)")),
 *   "Connection refused",
 * );
 * ```
 */
export function errorLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error))
    .split("\n")[0].replace(/ \(os error \d+\)$/, "");
}
