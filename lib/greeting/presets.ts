import { encodeGreeting } from "./encode.ts";
import type { GreetingSource } from "./template.ts";

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
  /** The quote's number, from 1; 0 when there are no quotes. */
  readonly quote: number;
  /** Its line in the text, when known. */
  readonly line: number | undefined;
  /** Says what is wrong with which quote. */
  constructor(message: string, quote: number, line?: number) {
    super(message);
    this.name = "QuoteError";
    this.quote = quote;
    this.line = line;
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

/** The well-known port of each preset's service (RFC 867, 865 and 868). */
export const PRESET_PORTS: Readonly<Record<PresetName, number>> = {
  daytime: 13,
  qotd: 17,
  time: 37,
};

/** The longest quote RFC 865 allows, in characters. */
export const QOTD_MAX_LENGTH = 512;

/** Seconds from 1900-01-01T00:00:00Z, RFC 868's epoch, to the Unix epoch. */
export const RFC868_EPOCH_OFFSET = 2_208_988_800;

const WEEKDAYS = [
  "Sunday",
  "Monday",
  "Tuesday",
  "Wednesday",
  "Thursday",
  "Friday",
  "Saturday",
];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/**
 * A greeting that depends only on the current second: built once per
 * second, shared by the connections within it.
 */
function perSecond(
  now: () => Date,
  build: (second: number) => Uint8Array,
): () => Uint8Array {
  let second = NaN;
  let bytes: Uint8Array = new Uint8Array();
  return () => {
    const current = Math.floor(now().getTime() / 1000);
    if (current !== second) {
      bytes = build(current);
      second = current;
    }
    return bytes;
  };
}

const pad2 = (n: number) => String(n).padStart(2, "0");

/**
 * The RFC 867 Daytime service: one human-readable line, in UTC, such as
 * `Wednesday, November 25, 2026 03:15:39-UTC` and CRLF, in ASCII.
 *
 * @param now The clock; for tests.
 * @returns A function giving the line for the current second. The returned
 * bytes must not be modified.
 */
export function daytimeGreeting(
  now: () => Date = () => new Date(),
): GreetingSource {
  return perSecond(now, (second) => {
    const d = new Date(second * 1000);
    const line = `${WEEKDAYS[d.getUTCDay()]}, ${MONTHS[d.getUTCMonth()]} ` +
      `${d.getUTCDate()}, ${d.getUTCFullYear()} ${pad2(d.getUTCHours())}:` +
      `${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}-UTC`;
    return encodeGreeting(line, { lineEnding: "crlf", encoding: "ascii" });
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
  const wrapped = seconds % 2 ** 32;
  return wrapped < 0 ? wrapped + 2 ** 32 : wrapped;
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
export function timeGreeting(
  now: () => Date = () => new Date(),
): GreetingSource {
  return perSecond(now, (second) => {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(
      0,
      rfc868Seconds(new Date(second * 1000)),
    );
    return bytes;
  });
}

/**
 * Checks one quote against RFC 865: ASCII, at most 512 characters.
 *
 * @param line The quote's first line in the file, if it came from one.
 */
function checkQuote(quote: string, number: number, line?: number): void {
  const at = [...quote].findIndex((char) => char.codePointAt(0)! > 0x7f);
  const where = (offset: number) =>
    line === undefined
      ? ""
      : ` (line ${
        line + [...quote].slice(0, offset).filter((c) => c === "\n").length
      })`;
  if (at !== -1) {
    const char = [...quote][at];
    throw new QuoteError(
      `Quote ${number}${where(at)} has "${char}" (U+${
        char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")
      }), which is not ASCII as RFC 865 requires: replace it in the quotes ` +
        "file",
      number,
      line,
    );
  }
  if (quote.length > QOTD_MAX_LENGTH) {
    throw new QuoteError(
      `Quote ${number}${where(0)} is ${quote.length} characters long, and ` +
        `RFC 865 allows at most ${QOTD_MAX_LENGTH}: shorten or split it in ` +
        "the quotes file",
      number,
      line,
    );
  }
}

const isBlank = (line: string) => line.trim() === "";

/**
 * Parses a quotes file. If a line is exactly `%`, quotes are separated by
 * such lines (the fortune format) and may span several lines; otherwise each
 * non-blank line is one quote. Blank lines around a quote are dropped; line
 * breaks inside it are kept as `\n`. A quote's length counts each of those
 * line breaks as one character.
 *
 * @throws {QuoteError} If there are no quotes, or a quote is longer than
 * 512 characters or has a character outside ASCII (RFC 865); the message
 * gives the quote's number and line.
 */
export function parseQuotes(text: string): string[] {
  const lines = text.split(/\r?\n/);
  const groups: { first: number; lines: string[] }[] = [];
  if (lines.includes("%")) {
    let group: { first: number; lines: string[] } = { first: 1, lines: [] };
    groups.push(group);
    lines.forEach((line, i) => {
      if (line === "%") {
        group = { first: i + 2, lines: [] };
        groups.push(group);
      } else {
        group.lines.push(line);
      }
    });
  } else {
    lines.forEach((line, i) => {
      if (!isBlank(line)) groups.push({ first: i + 1, lines: [line] });
    });
  }
  const quotes: string[] = [];
  for (const group of groups) {
    let start = 0;
    let end = group.lines.length;
    while (start < end && isBlank(group.lines[start])) start++;
    while (end > start && isBlank(group.lines[end - 1])) end--;
    if (start === end) continue;
    const quote = group.lines.slice(start, end).join("\n");
    checkQuote(quote, quotes.length + 1, group.first + start);
    quotes.push(quote);
  }
  if (quotes.length === 0) {
    throw new QuoteError(
      "Quotes file has no quotes: write one quote per line, or separate " +
        'quotes with lines holding only "%"',
      0,
    );
  }
  return quotes;
}

/**
 * The RFC 865 Quote of the Day service: a quote picked at random for each
 * connection. Every quote is encoded once, here, in ASCII with each of its
 * lines ending in CRLF.
 *
 * @param quotes The quotes, as from {@linkcode parseQuotes}.
 * @param random Returns a number in [0, 1); for tests.
 * @returns The bytes themselves if there is only one quote, otherwise a
 * function picking one per connection. The returned bytes must not be
 * modified.
 * @throws {QuoteError} If there are no quotes, or one breaks RFC 865.
 */
export function qotdGreeting(
  quotes: readonly string[],
  random: () => number = Math.random,
): GreetingSource {
  if (quotes.length === 0) {
    throw new QuoteError("No quotes to choose from: give at least one", 0);
  }
  quotes.forEach((quote, i) => checkQuote(quote, i + 1));
  const encoded = quotes.map((quote) =>
    encodeGreeting(quote, { lineEnding: "crlf", encoding: "ascii" })
  );
  if (encoded.length === 1) return encoded[0];
  return () => {
    const index = Math.floor(random() * encoded.length);
    return encoded[Math.min(index, encoded.length - 1)] ?? encoded[0];
  };
}

/** Decodes a quotes file as UTF-8, or as Latin-1 if it is not UTF-8. */
export function decodeQuotesFile(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // Only for the error message: parseQuotes refuses anything not ASCII.
    return new TextDecoder("latin1").decode(bytes);
  }
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
  if (!PRESET_NAMES.includes(name)) {
    throw new RangeError(
      `Unknown preset "${name}": use one of ${PRESET_NAMES.join(", ")}`,
    );
  }
  if ((name === "qotd") !== (quotesFile !== undefined)) {
    throw new TypeError(
      name === "qotd"
        ? "The qotd preset needs the bytes of a quotes file"
        : `The ${name} preset takes no quotes file`,
    );
  }
  if (name === "daytime") return daytimeGreeting();
  if (name === "time") return timeGreeting();
  return qotdGreeting(parseQuotes(decodeQuotesFile(quotesFile!)));
}
