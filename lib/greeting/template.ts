import { unmapIpv4 } from "../net/ip.ts";

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

/** What each line ending writes. */
const TERMINATORS = { crlf: "\r\n", lf: "\n", none: "" };

/** The highest character code each single-byte encoding can carry. */
export const LIMITS = { ascii: 0x7f, "utf-8": Infinity, latin1: 0xff };

/** The line endings accepted by {@linkcode encodeGreeting}. */
export const LINE_ENDINGS = Object.keys(TERMINATORS) as readonly LineEnding[];

/** The encodings accepted by {@linkcode encodeGreeting}. */
export const GREETING_ENCODINGS = Object.keys(
  LIMITS,
) as readonly GreetingEncoding[];

/** Throws `Unknown WHAT "NAME": use one of …` unless `names` has `name`. */
export function oneOf(what: string, name: string, names: readonly string[]) {
  if (names.includes(name)) return;
  const list = names.join(", ");
  throw new RangeError(`Unknown ${what} "${name}": use one of ${list}`);
}

/** A character as messages show it: `"é" (U+00E9)`. */
export function describeChar(char: string): string {
  const code = char.codePointAt(0)!.toString(16).toUpperCase();
  return `"${char}" (U+${code.padStart(4, "0")})`;
}

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
  /**
   * Describes the character and where it is; `subject` names the text
   * (default "Message").
   */
  constructor(
    /** The character, as a string of one code point. */
    readonly char: string,
    /** Its position in the text, from 1. */
    readonly position: number,
    /** The encoding that cannot carry it. */
    readonly encoding: GreetingEncoding,
    options: { subject?: string } = {},
  ) {
    const what = `${options.subject ?? "Message"} has ${describeChar(char)}`;
    super(`${what} at position ${position}, which ${encoding} cannot encode`);
    this.name = "EncodingError";
  }
}

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
  oneOf("line ending", lineEnding, LINE_ENDINGS);
  oneOf("encoding", encoding, GREETING_ENCODINGS);
  const terminator = TERMINATORS[lineEnding];
  return encodeText(lines(message, terminator) + terminator, encoding);
}

/** `text` with each line break as `terminator` ("none": LF), none added. */
const lines = (text: string, terminator: string) =>
  text.split(/\r?\n/).join(terminator || "\n");

/** The greeting when none is given, and what a check expects by default. */
export const DEFAULT_GREETING = encodeGreeting(DEFAULT_MESSAGE);

/** `text` as it is, in `encoding`; `subject` names it in an EncodingError. */
function encodeText(
  text: string,
  encoding: GreetingEncoding,
  subject?: string,
): Uint8Array<ArrayBuffer> {
  if (encoding === "utf-8") {
    if (text.isWellFormed()) return new TextEncoder().encode(text);
    throw new RangeError(
      "Message has an unpaired surrogate, which UTF-8 cannot encode",
    );
  }
  const bytes = new Uint8Array(text.length);
  const bad = writeBytes(bytes, 0, text, LIMITS[encoding]);
  if (bad === -1) return bytes;
  const char = String.fromCodePoint(text.codePointAt(bad)!);
  throw new EncodingError(char, bad + 1, encoding, { subject });
}

/**
 * Writes `text` into `out` at `at`, a byte per character, up to the first
 * character above `limit` (never a lossy byte); returns where that is, or -1.
 */
function writeBytes(out: Uint8Array, at: number, text: string, limit: number) {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > limit) return i;
    out[at + i] = code;
  }
  return -1;
}

/**
 * What a dynamic greeting may depend on; built per connection by the server.
 *
 * @example Usage
 * ```ts
 * import { compileTemplate, type GreetingContext } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const greeting = compileTemplate("{remote_addr}:{remote_port} #{count}");
 * // Per-connection values make it a function of the connection.
 * if (typeof greeting !== "function") throw new TypeError("Not dynamic");
 * const context: GreetingContext = {
 *   remoteAddr: { transport: "tcp", hostname: "192.0.2.7", port: 40000 },
 *   localAddr: { transport: "tcp", hostname: "192.0.2.1", port: 8080 },
 *   count: 3,
 * };
 * assertEquals(
 *   new TextDecoder().decode(greeting(context)),
 *   "192.0.2.7:40000 #3\r\n",
 * );
 * ```
 */
export interface GreetingContext {
  /** The client's address. */
  remoteAddr: Deno.NetAddr;
  /** The server's own address for this connection. */
  localAddr: Deno.NetAddr;
  /** 1 for the first connection since start, and so on. */
  count: number;
}

/**
 * Static bytes (the fast path) or a function called once per connection.
 *
 * @example Usage
 * ```ts
 * import {
 *   fetchGreeting,
 *   type GreetingSource,
 *   serveGreeting,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const greeting: GreetingSource = ({ count }) =>
 *   new TextEncoder().encode(`You are number ${count}\r\n`);
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0, greeting });
 * const bytes = await fetchGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * assertEquals(new TextDecoder().decode(bytes), "You are number 1\r\n");
 * ```
 */
export type GreetingSource =
  | Uint8Array
  | ((context: GreetingContext) => Uint8Array);

type Getter = (context: GreetingContext) => string;

/**
 * Every placeholder, in the order messages list them, with its value per
 * connection; `time` and `hostname` are made once, by compileTemplate.
 */
const VALUES = {
  remote_addr: (context) => unmapIpv4(context.remoteAddr.hostname),
  remote_port: (context) => String(context.remoteAddr.port),
  local_addr: (context) => unmapIpv4(context.localAddr.hostname),
  local_port: (context) => String(context.localAddr.port),
  time: undefined,
  hostname: undefined,
  count: (context) => String(context.count),
} satisfies Record<string, Getter | undefined>;

/** The name of a placeholder a greeting template may use, without braces. */
export type TemplatePlaceholder = keyof typeof VALUES;

/** Every placeholder {@linkcode compileTemplate} knows, without braces. */
export const TEMPLATE_PLACEHOLDERS: readonly TemplatePlaceholder[] = Object
  .keys(VALUES) as TemplatePlaceholder[];

/**
 * Options for {@linkcode compileTemplate}.
 *
 * @example Usage
 * ```ts
 * import {
 *   compileTemplate,
 *   type CompileTemplateOptions,
 *   type GreetingContext,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const options: CompileTemplateOptions = {
 *   hostname: "example",
 *   now: () => new Date(0),
 *   lineEnding: "lf",
 * };
 * const greeting = compileTemplate("{hostname} at {time}", options);
 * // Per-connection values make it a function of the connection.
 * if (typeof greeting !== "function") throw new TypeError("Not dynamic");
 * const context: GreetingContext = {
 *   remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
 *   localAddr: { transport: "tcp", hostname: "127.0.0.1", port: 8080 },
 *   count: 1,
 * };
 * assertEquals(
 *   new TextDecoder().decode(greeting(context)),
 *   "example at 1970-01-01T00:00:00Z\n",
 * );
 * ```
 */
export interface CompileTemplateOptions extends EncodeGreetingOptions {
  /**
   * The value of `{hostname}`, resolved once.
   *
   * @default {Deno.hostname()} (only called if `{hostname}` is used; needs
   * `--allow-sys=hostname`)
   */
  hostname?: string;
  /**
   * The clock for `{time}`; for tests.
   *
   * @default {() => new Date()}
   */
  now?: () => Date;
}

/**
 * A template that cannot be compiled; `position` is where, from 1.
 *
 * @example Usage
 * ```ts
 * import { compileTemplate, TemplateError } from "../../mod.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const error = assertThrows(() => compileTemplate("Hello {nme}"), TemplateError);
 * assertEquals(error.position, 7);
 * ```
 */
export class TemplateError extends SyntaxError {
  /** Where in the message the problem is, from 1 (0: not in the text). */
  readonly position: number;
  /** Says what is wrong and how to write it instead. */
  constructor(message: string, position: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "TemplateError";
    this.position = position;
  }
}

/** `{{`, `}}`, a `{name}` reference, or a stray brace. */
const BRACES = /(\{\{|\}\}|\{[^{}\r\n]*\}|[{}])/;

/** `{remote_addr}, {remote_port}, …` for messages. */
const LIST = TEMPLATE_PLACEHOLDERS.map((name) => `{${name}}`).join(", ");

/** `{hostname}`'s text: as given, or resolved, or why it cannot be. */
function resolveHostname(given: string | undefined): string {
  try {
    return given ?? Deno.hostname();
  } catch (error) {
    const { NotCapable, PermissionDenied } = Deno.errors;
    if (!(error instanceof NotCapable || error instanceof PermissionDenied)) {
      throw error;
    }
    const why = "The message uses {hostname}, which needs the host name";
    const how = "run deno with --allow-sys=hostname";
    throw new TemplateError(`${why}: ${how}`, 0, { cause: error });
  }
}

/** The size of the blocks small per-connection greetings are cut from. */
const SLAB_SIZE = 8 * 1024;
/** Greetings up to this size share a slab; larger ones get their own. */
const SLAB_MAX = 1024;
let slab = new Uint8Array(0);
let slabUsed = 0;

/**
 * Returns `length` bytes no one else has: a slice of a shared block for
 * small greetings, since allocating each ArrayBuffer costs more than
 * filling it. Slices are never handed out twice; a full block is left to
 * the garbage collector once its greetings are sent.
 */
function allocate(length: number): Uint8Array {
  if (length > SLAB_MAX) return new Uint8Array(length);
  if (slabUsed + length > slab.length) {
    slab = new Uint8Array(SLAB_SIZE);
    slabUsed = 0;
  }
  return slab.subarray(slabUsed, slabUsed += length);
}

/**
 * A value that depends only on the current second: built once per second,
 * shared by the connections within it. `now` is the clock, for tests
 * (by default Date.now, which makes no Date).
 */
export function perSecond<T>(
  now: (() => Date) | undefined,
  build: (second: number) => T,
): () => T {
  const clock = now ? () => now().getTime() : Date.now;
  let second = NaN;
  let value: T;
  return () => {
    const current = Math.floor(clock() / 1000);
    if (current !== second) [value, second] = [build(current), current];
    return value;
  };
}

/**
 * Compiles a greeting template once, at start-up, into what the server
 * sends to each client.
 *
 * Placeholders: `{remote_addr}`, `{remote_port}`, `{local_addr}`,
 * `{local_port}` (addresses bare, `::1` not `[::1]`; ports in decimal),
 * `{time}` (RFC 3339 in UTC to the second, `2026-11-25T03:15:39Z`),
 * `{hostname}` (resolved once, here) and `{count}` (the connection's number
 * since start). `{{` and `}}` are literal braces. The literal text follows
 * {@linkcode encodeGreeting}'s rules: its line breaks become the line
 * ending, and the greeting ends with one.
 *
 * @returns The bytes themselves (the fast path, as from encodeGreeting) if
 * nothing varies per connection; otherwise a function that only formats the
 * per-connection values and copies the pre-encoded literal parts. That
 * function throws a RangeError rather than send an address that is not
 * ASCII (never the case for addresses from `Deno.listen`). The returned
 * bytes must not be modified: small ones are slices of a shared block.
 * @throws {TemplateError} For an unknown placeholder, an unclosed `{`, a lone
 * `}`, a missing `--allow-sys=hostname` permission, or a host name the
 * encoding cannot carry.
 * @throws {RangeError} As encodeGreeting does, for literal text the encoding
 * cannot carry or an unknown line ending or encoding.
 *
 * @example Usage
 * ```ts
 * import { compileTemplate, fetchGreeting, serveGreeting } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   greeting: compileTemplate("Hello {remote_addr}, you are number {count}"),
 * });
 * const bytes = await fetchGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * assertEquals(
 *   new TextDecoder().decode(bytes),
 *   "Hello 127.0.0.1, you are number 1\r\n",
 * );
 * ```
 */
export function compileTemplate(
  message: string,
  options: CompileTemplateOptions = {},
): GreetingSource {
  const { hostname, now, ...encodeOptions } = options;
  // The literal texts around the placeholders (one more text than
  // placeholders; `{{` and `}}` unescaped).
  const texts = [""];
  const names: TemplatePlaceholder[] = [];
  let position = 1;
  // Literal text and braces alternate: split keeps what it splits at.
  for (const [i, part] of message.split(BRACES).entries()) {
    const name = part.slice(1, -1) as TemplatePlaceholder;
    const at = `at position ${position} of the message`;
    if (i % 2 === 0 || part === "{{" || part === "}}") {
      texts[names.length] += i % 2 === 0 ? part : part[0];
    } else if (TEMPLATE_PLACEHOLDERS.includes(name)) {
      texts[names.push(name)] = ""; // The text after it.
    } else {
      const why = part === "{"
        ? `Unclosed "{" ${at}: write {{ for a literal brace, or use a placeholder: ${LIST}`
        : part === "}"
        ? `Lone "}" ${at}: write }} for a literal brace (placeholders are ${LIST})`
        : `Unknown placeholder "${part}" ${at}: use one of ${LIST}, or write {{ and }} for literal braces`;
      throw new TemplateError(why, position);
    }
    position += part.length;
  }
  // No placeholders: the fast path, with {{ and }} unescaped.
  if (names.length === 0) return encodeGreeting(texts[0], encodeOptions);
  // Checks the literal text, with the positions encodeGreeting reports for
  // a plain message (braces and placeholder names are ASCII).
  encodeGreeting(message, encodeOptions);
  const { lineEnding = "crlf", encoding = "ascii" } = encodeOptions;
  // {time}: RFC 3339 in UTC to the second, formatted once a second.
  const time = perSecond(
    now,
    (second) => new Date(second * 1000).toISOString().slice(0, 19) + "Z",
  );
  // The literal text, {hostname} and the line ending, pre-encoded: one
  // block before each varying value and one after the last.
  const terminator = TERMINATORS[lineEnding];
  const fixed = [lines(texts[0], terminator)];
  const getters: Getter[] = [];
  // {hostname}: resolved and checked once, however often it is used.
  const raw = names.includes("hostname") ? resolveHostname(hostname) : "";
  const host = lines(raw, "");
  encodeText(host, encoding, `The host name "${raw}" for {hostname}`);
  for (const [i, name] of names.entries()) {
    const text = lines(texts[i + 1], terminator);
    if (name === "hostname") fixed[getters.length] += host + text;
    // A varying value ends its block: the text after it begins the next.
    else fixed[getters.push(VALUES[name] ?? time)] = text;
  }
  fixed[getters.length] += terminator;
  const blocks = fixed.map((text) => encodeText(text, encoding));
  // Only {hostname}, which does not vary: the fast path.
  if (getters.length === 0) return blocks[0];
  const fixedLength = blocks.reduce((sum, block) => sum + block.length, 0);
  const values: string[] = new Array(getters.length);
  return (context: GreetingContext): Uint8Array => {
    let length = fixedLength;
    for (let i = 0; i < getters.length; i++) {
      length += (values[i] = getters[i](context)).length;
    }
    const out = allocate(length);
    let at = 0;
    for (let i = 0; i < getters.length; i++) {
      if (blocks[i].length > 0) out.set(blocks[i], at);
      at += blocks[i].length;
      if (writeBytes(out, at, values[i], 0x7f) !== -1) {
        throw new RangeError(
          `Greeting value "${values[i]}" is not ASCII and was not sent`,
        );
      }
      at += values[i].length;
    }
    out.set(blocks[getters.length], at);
    return out;
  };
}
