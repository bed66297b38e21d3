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
  // The common case, ASCII, costs no array of characters.
  // deno-lint-ignore no-control-regex -- the ASCII range starts at NUL
  const at = /[^\x00-\x7f]/.test(quote)
    ? [...quote].findIndex((char) => char.codePointAt(0)! > 0x7f)
    : -1;
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
  const quotes: string[] = [];
  // One quote from lines[start, end), blank lines around it dropped.
  const take = (start: number, end: number) => {
    while (start < end && isBlank(lines[start])) start++;
    while (end > start && isBlank(lines[end - 1])) end--;
    if (start === end) return;
    const quote = end - start === 1
      ? lines[start]
      : lines.slice(start, end).join("\n");
    checkQuote(quote, quotes.length + 1, start + 1);
    quotes.push(quote);
  };
  if (lines.includes("%")) {
    let first = 0;
    for (let i = 0; i <= lines.length; i++) {
      if (i === lines.length || lines[i] === "%") {
        take(first, i);
        first = i + 1;
      }
    }
  } else {
    for (let i = 0; i < lines.length; i++) take(i, i + 1);
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
  // Every quote in one buffer, each line ending in CRLF (what
  // encodeGreeting makes of ASCII), and where each ends: about the size of
  // the quotes, instead of one array (and its overhead) per quote.
  let total = 0;
  for (const quote of quotes) total += crlfLength(quote);
  const bytes = new Uint8Array(total);
  const ends = new Uint32Array(quotes.length);
  let at = 0;
  quotes.forEach((quote, i) => {
    for (let c = 0; c < quote.length; c++) {
      const code = quote.charCodeAt(c);
      if (code === 0x0a) {
        bytes[at++] = 0x0d;
        bytes[at++] = 0x0a;
      } else if (code !== 0x0d || quote.charCodeAt(c + 1) !== 0x0a) {
        bytes[at++] = code;
      }
    }
    bytes[at++] = 0x0d;
    bytes[at++] = 0x0a;
    ends[i] = at;
  });
  return fromPacked(bytes, ends, random);
}

/** The greeting of packed quotes: quote `i` ends at `ends[i]`. */
function fromPacked(
  bytes: Uint8Array,
  ends: Uint32Array,
  random: () => number,
): GreetingSource {
  if (ends.length === 1) return bytes;
  return () => {
    const index = Math.min(Math.floor(random() * ends.length), ends.length - 1);
    return bytes.subarray(index === 0 ? 0 : ends[index - 1], ends[index]);
  };
}

/** ASCII white space, as String.prototype.trim sees it. */
const isSpace = (byte: number) =>
  byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);

/**
 * Packs a quotes file straight from its bytes, as {@linkcode parseQuotes}
 * and {@linkcode qotdGreeting} would, without a string per line or quote:
 * a 16 MiB file then costs about its own size. Returns undefined for what
 * this fast path does not take (a byte outside ASCII, a CR not before an
 * LF, a quote too long, no quote at all): the string path then gives the
 * exact error, or the same bytes.
 */
export function packQuotes(
  file: Uint8Array,
): { bytes: Uint8Array; ends: Uint32Array } | undefined {
  // Line starts and ends (CR of CRLF left out), and whether one is "%":
  // typed arrays, counted first, so the index costs 8 bytes a line.
  let count = 1;
  for (let i = 0; i < file.length; i++) if (file[i] === 0x0a) count++;
  const starts = new Uint32Array(count);
  const stops = new Uint32Array(count);
  let lines = 0;
  let percent = false;
  let start = 0;
  for (let i = 0; i <= file.length; i++) {
    const byte = i < file.length ? file[i] : 0x0a;
    if (byte > 0x7f) return undefined;
    if (byte === 0x0d && file[i + 1] !== 0x0a) return undefined;
    if (byte !== 0x0a) continue;
    const stop = i > start && file[i - 1] === 0x0d ? i - 1 : i;
    if (stop - start === 1 && file[start] === 0x25) percent = true;
    starts[lines] = start;
    stops[lines++] = stop;
    start = i + 1;
  }
  const blank = (line: number) => {
    for (let i = starts[line]; i < stops[line]; i++) {
      if (!isSpace(file[i])) return false;
    }
    return true;
  };
  // Each quote as a range of lines, blank lines around it dropped.
  const quotes = new Uint32Array(lines * 2);
  let found = 0;
  let total = 0;
  const take = (first: number, end: number): boolean => {
    while (first < end && blank(first)) first++;
    while (end > first && blank(end - 1)) end--;
    if (first === end) return true;
    let length = end - first - 1;
    for (let line = first; line < end; line++) {
      length += stops[line] - starts[line];
    }
    if (length > QOTD_MAX_LENGTH) return false;
    total += length + (end - first) + 1;
    quotes[found++] = first;
    quotes[found++] = end;
    return true;
  };
  if (percent) {
    let first = 0;
    for (let line = 0; line <= lines; line++) {
      if (
        line === lines ||
        (stops[line] - starts[line] === 1 && file[starts[line]] === 0x25)
      ) {
        if (!take(first, line)) return undefined;
        first = line + 1;
      }
    }
  } else {
    for (let line = 0; line < lines; line++) {
      if (!take(line, line + 1)) return undefined;
    }
  }
  if (found === 0) return undefined;
  const bytes = new Uint8Array(total);
  const ends = new Uint32Array(found / 2);
  let at = 0;
  for (let q = 0; q < found; q += 2) {
    for (let line = quotes[q]; line < quotes[q + 1]; line++) {
      bytes.set(file.subarray(starts[line], stops[line]), at);
      at += stops[line] - starts[line];
      bytes[at++] = 0x0d;
      bytes[at++] = 0x0a;
    }
    ends[q / 2] = at;
  }
  return { bytes, ends };
}

/** The length of an ASCII quote with every line ending in CRLF. */
function crlfLength(quote: string): number {
  let length = quote.length + 2;
  for (let c = 0; c < quote.length; c++) {
    const code = quote.charCodeAt(c);
    if (code === 0x0a) length++;
    else if (code === 0x0d && quote.charCodeAt(c + 1) === 0x0a) length--;
  }
  return length;
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
  const packed = packQuotes(quotesFile!);
  if (packed) return fromPacked(packed.bytes, packed.ends, Math.random);
  return qotdGreeting(parseQuotes(decodeQuotesFile(quotesFile!)));
}
