import {
  describeChar,
  encodeGreeting,
  type GreetingSource,
  oneOf,
  perSecond,
} from "./template.ts";
import { decodeUtf8 } from "./message_file.ts";

/**
 * A quote that breaks RFC 865, or a quotes text with none. The message says
 * which quote and line; `quote` is its number from 1 (0: no quotes at all).
 *
 * @example Usage
 * ```ts
 * import { presetGreeting, QuoteError } from "../../mod.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const error = assertThrows(
 *   () => presetGreeting("qotd", new Uint8Array()),
 *   QuoteError,
 * );
 * assertEquals(error.quote, 0);
 * ```
 */
export class QuoteError extends RangeError {
  /**
   * Says what is wrong with which quote: `quote` is its number, from 1 (0
   * when there are no quotes), and `line` its line in the text, when known.
   */
  constructor(message: string, readonly quote: number, readonly line?: number) {
    super(message);
    this.name = "QuoteError";
  }
}

/**
 * The classic one-shot TCP services greeter can stand in for.
 *
 * @example Usage
 * ```ts
 * import { presetGreeting, type PresetName } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const name: PresetName = "qotd";
 * const greeting = presetGreeting(name, new TextEncoder().encode("A quote.\n"));
 * assertEquals(greeting, new TextEncoder().encode("A quote.\r\n"));
 * ```
 */
export type PresetName = "daytime" | "qotd" | "time";

/** The presets accepted by {@linkcode presetGreeting}. */
export const PRESET_NAMES: readonly PresetName[] = ["daytime", "qotd", "time"];

/** The longest quote RFC 865 allows, in characters. */
export const QOTD_MAX_LENGTH = 512;

/** Seconds from 1900-01-01T00:00:00Z, RFC 868's epoch, to the Unix epoch. */
export const RFC868_EPOCH_OFFSET = 2_208_988_800;

/**
 * `Wednesday, November 25, 2026`: RFC 867's date, in English, in UTC. Made
 * on first use: a DateTimeFormat loads ICU's locale data, about 5 MB of
 * RSS that a server without `--preset daytime` would carry for nothing.
 */
let daytimeDate: Intl.DateTimeFormat | undefined;

/**
 * The RFC 867 Daytime service: one human-readable line, in UTC, such as
 * `Wednesday, November 25, 2026 03:15:39-UTC` and CRLF, in ASCII.
 *
 * @param now The clock; for tests.
 * @returns A function giving the line for the current second. The returned
 * bytes must not be modified.
 */
export function daytimeGreeting(now?: () => Date): GreetingSource {
  const style = { dateStyle: "full", timeZone: "UTC" } as const;
  const format = daytimeDate ??= new Intl.DateTimeFormat("en-US", style);
  return perSecond(now, (second) => {
    const date = new Date(second * 1000);
    const time = date.toISOString().slice(11, 19);
    return encodeGreeting(`${format.format(date)} ${time}-UTC`);
  });
}

/**
 * The RFC 868 value of a date: whole seconds since 1900-01-01T00:00:00Z,
 * modulo 2^32.
 *
 * The 32-bit counter rolls over at 2036-02-07T06:28:16Z, back to 0 (and
 * dates before 1900 wrap to the top of the range). RFC 868 has no era
 * field: clients must pick the era themselves, for example by assuming the
 * value is within 68 years of their own clock, or they will read times after
 * the rollover as 1900.
 */
export function rfc868Seconds(date: Date): number {
  const seconds = Math.floor(date.getTime() / 1000) + RFC868_EPOCH_OFFSET;
  return ((seconds % 2 ** 32) + 2 ** 32) % 2 ** 32;
}

/**
 * The RFC 868 Time service: four bytes, the big-endian 32-bit count of
 * seconds since 1900-01-01T00:00:00Z (see {@linkcode rfc868Seconds} for the
 * 2036 rollover).
 *
 * @param now The clock; for tests.
 * @returns A function giving the bytes for the current second. The returned
 * bytes must not be modified.
 */
export function timeGreeting(now?: () => Date): GreetingSource {
  return perSecond(now, (second) => {
    const s = rfc868Seconds(new Date(second * 1000));
    return Uint8Array.of(s >>> 24, s >>> 16, s >>> 8, s);
  });
}

/**
 * Reads a quotes file straight from its bytes into one buffer, every line of
 * every quote ending in CRLF, and where each quote ends: without a string
 * per line or quote, a 16 MiB file costs about its own size.
 *
 * If a line is exactly `%`, quotes are separated by such lines (the fortune
 * format) and may span several lines; otherwise each non-blank line is one
 * quote. Blank lines around a quote are dropped. A line ends at LF or CRLF;
 * a UTF-8 byte order mark at the start is left out. A quote's length counts
 * each line break inside it as one character.
 *
 * @throws {QuoteError} If there are no quotes, or a quote is longer than
 * 512 characters or has a character outside ASCII (RFC 865); the message
 * gives the quote's number and line, and the character as UTF-8 (Latin-1 if
 * the file is not UTF-8).
 */
export function packQuotes(file: Uint8Array) {
  const from = file[0] === 0xef && file[1] === 0xbb && file[2] === 0xbf ? 3 : 0;
  // Line starts and ends (CR of CRLF left out), and whether one is "%":
  // typed arrays, counted first, so the index costs 8 bytes a line.
  let count = 1;
  for (let i = from; i < file.length; i++) if (file[i] === 0x0a) count++;
  const starts = new Uint32Array(count);
  const stops = new Uint32Array(count);
  const isPercent = (line: number) =>
    stops[line] - starts[line] === 1 && file[starts[line]] === 0x25;
  for (let line = 0, start = from; line < count; line++) {
    const lf = file.indexOf(0x0a, start);
    starts[line] = start;
    const end = lf === -1 ? file.length : lf;
    stops[line] = lf > start && file[lf - 1] === 0x0d ? lf - 1 : end;
    start = lf + 1;
  }
  const percent = starts.some((_, line) => isPercent(line));
  // Bytes of the file as UTF-8, or Latin-1 if the file is not UTF-8.
  let label: string | undefined;
  const text = (from: number, to: number) => {
    label ??= decodeUtf8(file) === undefined ? "latin1" : "utf-8";
    return new TextDecoder(label, { ignoreBOM: true })
      .decode(file.subarray(from, to));
  };
  // Only a line with a byte outside ASCII is decoded: trim's white space
  // (in ASCII, space and tab to carriage return).
  const blank = (line: number) => {
    for (let i = starts[line]; i < stops[line]; i++) {
      if (file[i] > 0x7f) return text(starts[line], stops[line]).trim() === "";
      if (file[i] !== 0x20 && (file[i] < 0x09 || file[i] > 0x0d)) return false;
    }
    return true;
  };
  // Each quote copied, blank lines around it dropped, every line in CRLF:
  // at most each line's bytes and two more (the LF was counted already).
  const bytes = new Uint8Array(file.length - from + count + 1);
  const ends = new Uint32Array(count);
  let found = 0;
  let at = 0;
  const take = (first: number, end: number) => {
    while (first < end && blank(first)) first++;
    while (end > first && blank(end - 1)) end--;
    if (first === end) return;
    const number = found + 1;
    const refuse = (why: string) =>
      new QuoteError(`Quote ${number} ${why}`, number, first + 1);
    const begin = at;
    for (let line = first; line < end; line++) {
      for (let i = starts[line]; i < stops[line]; i++) {
        if ((bytes[at++] = file[i]) <= 0x7f) continue;
        // `i` begins a character: every byte before it in the quote is ASCII.
        const char = String.fromCodePoint(text(i, i + 4).codePointAt(0)!);
        throw refuse(
          `(line ${line + 1}) has ${describeChar(char)}, which is not ASCII ` +
            "as RFC 865 requires: replace it in the quotes file",
        );
      }
      bytes[at++] = 0x0d;
      bytes[at++] = 0x0a;
    }
    // Each line break counts as one character (written as two, CRLF).
    const length = at - begin - (end - first) - 1;
    if (length > QOTD_MAX_LENGTH) {
      throw refuse(
        `(line ${first + 1}) is ${length} characters long, and RFC 865 ` +
          `allows at most ${QOTD_MAX_LENGTH}: shorten or split it in the quotes file`,
      );
    }
    ends[found++] = at;
  };
  // Each line is a quote, or each run of lines between "%" lines is.
  for (let line = 0, first = 0; line <= count; line++) {
    if (percent ? line < count && !isPercent(line) : line === count) continue;
    take(first, percent ? line : line + 1);
    first = line + 1;
  }
  if (found === 0) {
    const how = "write one quote per line, or separate quotes with lines " +
      'holding only "%"';
    throw new QuoteError(`Quotes file has no quotes: ${how}`, 0);
  }
  return { bytes: bytes.subarray(0, at), ends: ends.slice(0, found) };
}

/**
 * The RFC 865 Quote of the Day service: a quote of the file picked at random
 * for each connection. Every quote is encoded once, here, in ASCII with each
 * of its lines ending in CRLF (see {@linkcode packQuotes}).
 *
 * @param random Returns a number in [0, 1); for tests.
 * @returns The bytes themselves if there is only one quote, otherwise a
 * function picking one per connection. The returned bytes must not be
 * modified.
 * @throws {QuoteError} If there are no quotes, or one breaks RFC 865.
 */
export function qotdGreeting(file: Uint8Array, random = Math.random) {
  const { bytes, ends } = packQuotes(file);
  if (ends.length === 1) return bytes;
  return () => {
    const index = Math.min(Math.floor(random() * ends.length), ends.length - 1);
    return bytes.subarray(index === 0 ? 0 : ends[index - 1], ends[index]);
  };
}

/**
 * The greeting of a preset. Presets fix their bytes: their protocols say
 * what is sent. `qotd` takes the bytes of its quotes file (UTF-8 or
 * Latin-1, checked against RFC 865).
 *
 * @throws {TypeError} If `qotd` has no quotes file or another preset has one.
 * @throws {QuoteError} If the quotes break RFC 865.
 *
 * @example Usage
 * ```ts
 * import { fetchGreeting, presetGreeting, serveGreeting } from "../../mod.ts";
 * import { assertMatch } from "@std/assert";
 *
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   greeting: presetGreeting("daytime"),
 * });
 * const bytes = await fetchGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * assertMatch(new TextDecoder().decode(bytes), /\r\n$/);
 * ```
 */
export function presetGreeting(
  name: PresetName,
  quotesFile?: Uint8Array,
): GreetingSource {
  oneOf("preset", name, PRESET_NAMES);
  if ((name === "qotd") !== (quotesFile !== undefined)) {
    throw new TypeError(
      name === "qotd"
        ? "The qotd preset needs the bytes of a quotes file"
        : `The ${name} preset takes no quotes file`,
    );
  }
  if (name === "daytime") return daytimeGreeting();
  if (name === "time") return timeGreeting();
  return qotdGreeting(quotesFile!);
}
