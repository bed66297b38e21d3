/**
 * The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's
 * specification describes it: a load balancer writes one header at the start
 * of each connection to say which client it relays. This module reads and
 * checks that header; tests/_proxy_header.ts writes them for the tests.
 *
 * @module
 */
import { formatIp, parseIpv4, parseIpv6 } from "./ip.ts";

/** What a PROXY protocol header says about the connection it starts. */
export interface ProxyHeader {
  /** 1 for the text format, 2 for the binary one. */
  version: 1 | 2;
  /**
   * `"proxy"`: relayed for a client. `"local"` (v2 only): the balancer's own
   * connection, such as a health check; its addresses are ignored.
   */
  command: "proxy" | "local";
  /**
   * The client, when the header names one. Absent for `LOCAL`, v1 `UNKNOWN`,
   * and v2 `AF_UNSPEC` or `AF_UNIX`: the connection's own peer is then the
   * address to use. IPv6 addresses are in canonical text (RFC 5952).
   */
  source?: Deno.NetAddr;
  /** The address the client connected to, when `source` is present. */
  destination?: Deno.NetAddr;
}

/** Why a header was refused. */
export type ProxyProtocolErrorReason =
  /** The connection ended before its first byte. */
  | "missing"
  /** The connection ended inside the header. */
  | "truncated"
  /** The bytes do not follow the format. */
  | "malformed"
  /** The header is longer than allowed. */
  | "oversized"
  /** A version, command, family or protocol value the specification leaves unassigned. */
  | "unsupported";

/**
 * A PROXY protocol header that cannot be accepted. The connection should be
 * closed: the specification allows no recovery.
 *
 * @example Tell a refused header by its reason
 * ```ts
 * import { assertEquals, assertThrows } from "@std/assert";
 * import { parseProxyHeader, ProxyProtocolError } from "./proxy_protocol.ts";
 *
 * const error = assertThrows(
 *   () => parseProxyHeader(new TextEncoder().encode("GET / HTTP/1.1\r\n")),
 *   ProxyProtocolError,
 * );
 * assertEquals(error.reason, "malformed");
 * ```
 */
export class ProxyProtocolError extends Error {
  /**
   * Makes an error with the reason and a message for people.
   *
   * @param reason Why the header was refused.
   */
  constructor(readonly reason: ProxyProtocolErrorReason, message: string) {
    super(message);
    this.name = "ProxyProtocolError";
  }
}

/** Options for {@linkcode parseProxyHeader} and {@linkcode readProxyHeader}. */
export interface ProxyHeaderOptions {
  /**
   * The longest header accepted, in bytes, TLVs included (at least 16). A v1
   * line is never longer than 107 bytes, so this mostly bounds v2.
   * Default {@linkcode DEFAULT_MAX_PROXY_HEADER_BYTES}.
   */
  maxBytes?: number;
}

/**
 * The default longest header. The specification keeps a header within one
 * 536-byte segment; this leaves room for balancers that add TLVs (TLS
 * details, cloud endpoint identifiers) while bounding what one connection
 * can make the server hold before it is greeted.
 */
export const DEFAULT_MAX_PROXY_HEADER_BYTES = 4096;

/** A parsed header and how many bytes it took; the data after it is the client's. */
export interface ParsedProxyHeader {
  /** What the header says. */
  header: ProxyHeader;
  /** The header's length in bytes. */
  length: number;
}

/** The 12 bytes every v2 header starts with. */
export const V2_SIGNATURE: Uint8Array = new TextEncoder().encode(
  "\r\n\r\n\0\r\nQUIT\n",
);
/** The fixed part of a v2 header: signature, command, family, length. */
export const V2_FIXED_LENGTH = 16;
/** "PROXY " */
const V1_PREFIX = new TextEncoder().encode("PROXY ");
/** The longest v1 line, CRLF included (the specification's worst case). */
const V1_MAX_LENGTH = 107;
/** "PROXY UNKNOWN\r\n", the shortest v1 line: also the most a first read may take. */
const V1_MIN_LENGTH = 15;

/**
 * The protocol words a v1 line may carry, with the fewest characters of
 * each address and port field after them ("0.0.0.0" or "::", then "0").
 */
const V1_PROTOCOLS: Record<string, number[]> = {
  UNKNOWN: [],
  TCP4: [7, 7, 1, 1],
  TCP6: [2, 2, 1, 1],
};

/** Either a parsed header, or how many more bytes a valid header needs at least. */
type Step = ParsedProxyHeader | { need: number };

/** True if `bytes` and `signature` agree as far as both go. */
function agrees(bytes: Uint8Array, signature: Uint8Array): boolean {
  return signature.subarray(0, bytes.length).every((b, i) => b === bytes[i]);
}

/** A byte as `0x0a`. */
const hex = (byte: number) => `0x${byte.toString(16).padStart(2, "0")}`;

/** "Malformed (or Oversized) PROXY protocol vN header: DETAIL". */
function refuse(word: "Malformed" | "Oversized", v: 1 | 2, detail: string) {
  const reason = word === "Malformed" ? "malformed" : "oversized";
  const message = `${word} PROXY protocol v${v} header: ${detail}`;
  return new ProxyProtocolError(reason, message);
}
const malformedV1 = (detail: string) => refuse("Malformed", 1, detail);
const malformedV2 = (detail: string) => refuse("Malformed", 2, detail);

function checkMaxBytes(maxBytes = DEFAULT_MAX_PROXY_HEADER_BYTES): number {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < V2_FIXED_LENGTH) {
    throw new RangeError(
      `Invalid maximum PROXY header length ${maxBytes}: use a whole number of at least ${V2_FIXED_LENGTH} bytes`,
    );
  }
  return maxBytes;
}

/**
 * Parses a PROXY protocol header (v1 or v2, told apart by its first bytes)
 * at the start of `bytes`. Bytes after the header are not looked at.
 *
 * Input that cannot begin a valid header is refused as soon as it is seen,
 * so a client speaking another protocol fails on its first bytes.
 *
 * @returns The header and its length, or undefined if `bytes` is a valid
 * beginning that needs more bytes.
 * @throws {ProxyProtocolError} If the bytes are not, and cannot become, a
 * valid header.
 * @throws {RangeError} If `options.maxBytes` is below 16.
 *
 * @example Parse HAProxy's v1 line for an IPv4 client
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { parseProxyHeader } from "./proxy_protocol.ts";
 *
 * const bytes = new TextEncoder().encode(
 *   "PROXY TCP4 192.0.2.7 198.51.100.1 51234 8080\r\nhello",
 * );
 * const parsed = parseProxyHeader(bytes)!;
 * assertEquals(parsed.length, 46);
 * assertEquals(parsed.header.source, {
 *   transport: "tcp",
 *   hostname: "192.0.2.7",
 *   port: 51234,
 * });
 * assertEquals(parseProxyHeader(bytes.subarray(0, 20)), undefined);
 * ```
 */
export function parseProxyHeader(
  bytes: Uint8Array,
  options: ProxyHeaderOptions = {},
): ParsedProxyHeader | undefined {
  const step = inspect(bytes, checkMaxBytes(options.maxBytes));
  return "header" in step ? step : undefined;
}

/**
 * Reads a PROXY protocol header (v1 or v2, told apart by its first bytes)
 * from the start of a connection.
 *
 * It reads no byte past a valid header, without needing to peek: each read
 * asks for no more bytes than the shortest valid header that the bytes so
 * far can still become (15 at first, the shortest v1 line; then the rest of
 * a v2 header once its length is known; for v1, a bound from the fields
 * still to come). So whatever the client sends after the header stays
 * unread on the connection. When the input is invalid, up to those bounds
 * may have been read past the point where it went wrong; the connection is
 * to be closed then anyway.
 *
 * There is no deadline here: to bound the wait, close the connection (its
 * pending read then rejects with the runtime's error, which is passed on).
 *
 * @throws {ProxyProtocolError} With reason `missing` if the connection ends
 * before any byte, `truncated` if it ends inside the header, or the reason
 * {@linkcode parseProxyHeader} gives.
 * @throws {RangeError} If `options.maxBytes` is below 16.
 *
 * @example Read a v2 header, then the client's own bytes
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { readProxyHeader, V2_SIGNATURE } from "./proxy_protocol.ts";
 *
 * // 2001:db8::7 port 40000 to 2001:db8::1 port 8080, as a balancer sends it.
 * const ipv6 = (last: number) => [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), last];
 * const header = [
 *   ...V2_SIGNATURE,
 *   0x21, // version 2, PROXY
 *   0x21, // AF_INET6, STREAM
 *   0, 36, // the bytes that follow: two addresses, two ports
 *   ...ipv6(7),
 *   ...ipv6(1),
 *   0x9c, 0x40, // 40000
 *   0x1f, 0x90, // 8080
 * ];
 * const stream = [...header, ...new TextEncoder().encode("hi")];
 * const conn = {
 *   read(p: Uint8Array): Promise<number | null> {
 *     const n = Math.min(p.length, stream.length);
 *     p.set(stream.splice(0, n));
 *     return Promise.resolve(n === 0 ? null : n);
 *   },
 * };
 * const read = await readProxyHeader(conn);
 * assertEquals(read.source?.hostname, "2001:db8::7");
 * assertEquals(read.destination?.port, 8080);
 * assertEquals(new TextDecoder().decode(Uint8Array.from(stream)), "hi");
 * ```
 */
export async function readProxyHeader(
  conn: { read(p: Uint8Array): Promise<number | null> },
  options: ProxyHeaderOptions = {},
): Promise<ProxyHeader> {
  const maxBytes = checkMaxBytes(options.maxBytes);
  let buffer = new Uint8Array(Math.min(V1_MAX_LENGTH, maxBytes));
  let filled = 0;
  while (true) {
    const step = inspect(buffer.subarray(0, filled), maxBytes);
    if ("header" in step) return step.header;
    const end = filled + step.need;
    // Only a v2 header whose length is known (and within maxBytes) grows.
    if (end > buffer.length) {
      buffer = new Uint8Array(buffer.buffer.transfer(end));
    }
    const n = await conn.read(buffer.subarray(filled, end));
    if (n === null) {
      const where = filled > 0 ? `after ${filled} bytes of` : "before";
      const reason = filled > 0 ? "truncated" : "missing";
      const message = `The connection closed ${where} a PROXY protocol header`;
      throw new ProxyProtocolError(reason, message);
    }
    filled += n;
  }
}

function inspect(bytes: Uint8Array, maxBytes: number): Step {
  if (bytes.length === 0) return { need: V1_MIN_LENGTH };
  if (bytes[0] === V2_SIGNATURE[0]) return inspectV2(bytes, maxBytes);
  if (bytes[0] === V1_PREFIX[0]) return inspectV1(bytes, maxBytes);
  const neither = "the first byte begins neither the v1 nor the v2 signature";
  const message = `Not a PROXY protocol header: ${neither}`;
  throw new ProxyProtocolError("malformed", message);
}

// --- Version 2 -------------------------------------------------------------

function inspectV2(bytes: Uint8Array, maxBytes: number): Step {
  const n = bytes.length;
  if (!agrees(bytes, V2_SIGNATURE)) {
    throw malformedV2("the signature does not match");
  }
  const version = bytes[12] >> 4;
  const command = bytes[12] & 0x0f;
  const unsupported = "Unsupported PROXY protocol";
  const message = n <= 12
    ? undefined
    : version !== 2
    ? `${unsupported} binary version ${version}: only 2 is defined`
    : command > 1
    ? `${unsupported} v2 command ${command}: only LOCAL (0) and PROXY (1) are defined`
    // LOCAL ignores the family byte, whatever it holds.
    : n > 13 && command === 1 && (bytes[13] >> 4 > 3 || (bytes[13] & 0x0f) > 2)
    ? `${unsupported} v2 address family and protocol ${hex(bytes[13])}`
    : undefined;
  if (message) throw new ProxyProtocolError("unsupported", message);
  if (n < V2_FIXED_LENGTH) return { need: V2_FIXED_LENGTH - n };
  const length = V2_FIXED_LENGTH + ((bytes[14] << 8) | bytes[15]);
  if (length > maxBytes) {
    const detail = `${length} bytes, more than the ${maxBytes} allowed`;
    throw refuse("Oversized", 2, detail);
  }
  if (n < length) return { need: length - n };
  return { header: decodeV2(bytes.subarray(0, length)), length };
}

/** The bytes of each address, by family (AF_INET, AF_INET6, AF_UNIX). */
const V2_ADDRESS_BYTES = [0, 4, 16, 108];

function decodeV2(header: Uint8Array): ProxyHeader {
  if ((header[12] & 0x0f) === 0) return { version: 2, command: "local" };
  const family = header[13] >> 4;
  const protocol = header[13] & 0x0f;
  // AF_UNSPEC or an unspecified protocol: the addresses are to be ignored,
  // and nothing says where TLVs would begin.
  if (family === 0 || protocol === 0) return { version: 2, command: "proxy" };
  // The addresses, ports and TLVs after the fixed part.
  const body = header.subarray(V2_FIXED_LENGTH);
  const size = V2_ADDRESS_BYTES[family];
  const blockEnd = size * 2 + (family === 3 ? 0 : 4);
  if (blockEnd > body.length) {
    const detail = `${body.length} bytes of addresses, fewer than the`;
    throw malformedV2(`${detail} ${blockEnd} its family needs`);
  }
  // Each TLV after the addresses must lie wholly inside the header.
  for (let at = blockEnd; at < body.length;) {
    const left = body.length - at;
    if (left < 3) {
      throw malformedV2(`${left} stray bytes where a TLV should begin`);
    }
    const past = 3 + ((body[at + 1] << 8) | body[at + 2]) - left;
    if (past > 0) {
      const type = hex(body[at]);
      throw malformedV2(`TLV type ${type} runs ${past} bytes past the header`);
    }
    at = body.length + past;
  }
  // A Unix socket address is not a network address: use the peer.
  if (family === 3) return { version: 2, command: "proxy" };
  const transport = protocol === 1 ? "tcp" : "udp";
  const address = (ip: number, port: number): Deno.NetAddr => ({
    transport,
    hostname: formatIp(body.subarray(ip, ip + size)),
    port: (body[port] << 8) | body[port + 1],
  });
  const source = address(0, size * 2);
  const destination = address(size, size * 2 + 2);
  return { version: 2, command: "proxy", source, destination };
}

// --- Version 1 -------------------------------------------------------------

function unknownProtocol(word: string): ProxyProtocolError {
  const defined = "only TCP4, TCP6 and UNKNOWN are defined";
  return malformedV1(`unknown protocol ${JSON.stringify(word)}: ${defined}`);
}

function inspectV1(bytes: Uint8Array, maxBytes: number): Step {
  const limit = Math.min(V1_MAX_LENGTH, maxBytes);
  const n = Math.min(bytes.length, limit);
  if (!agrees(bytes.subarray(0, n), V1_PREFIX)) {
    throw malformedV1('it does not begin with "PROXY "');
  }
  const text = String.fromCharCode(...bytes.subarray(0, n));
  // The first byte that is not printable US-ASCII, or a CR before another.
  const i = text.search(/[^ -~\r]|\r(?=[^\n])/);
  if (text[i] === "\n") {
    if (text[i - 1] !== "\r") {
      throw malformedV1("a line feed without a carriage return before it");
    }
    return { header: parseV1Line(text.slice(0, i - 1)), length: i + 1 };
  }
  if (text[i] === "\r") {
    throw malformedV1("a carriage return without a line feed after it");
  }
  if (i !== -1) {
    const where = `byte ${hex(bytes[i])} at offset ${i}`;
    throw malformedV1(`${where}: the line must be printable US-ASCII`);
  }
  // A line that cannot become valid is malformed, however long it runs;
  // after a CR only its LF can come, but the fields before it are checked.
  const cr = text.endsWith("\r");
  const need = v1Fewest(cr ? text.slice(0, -1) : text);
  if (n >= limit) throw refuse("Oversized", 1, `no CRLF within ${limit} bytes`);
  return { need: Math.min(cr ? 1 : need, limit - n) };
}

/**
 * The fewest bytes that can still complete a valid line beginning with
 * `text` (which has no CRLF yet), throwing when none can.
 */
function v1Fewest(text: string): number {
  if (text.length < V1_PREFIX.length) return V1_MIN_LENGTH - text.length;
  const fields = text.slice(V1_PREFIX.length).split(" ");
  const [word] = fields;
  // The field being typed: 0 for the protocol word, which any protocol it
  // begins may complete; after it, only that protocol (own keys only: a
  // word such as "constructor" names nothing here).
  const at = fields.length - 1;
  const names = Object.keys(V1_PROTOCOLS).filter((name) =>
    at === 0 ? name.startsWith(word) : name === word
  );
  if (names.length === 0) throw unknownProtocol(word);
  // UNKNOWN may be followed by anything up to the CRLF.
  if (at > 0 && word === "UNKNOWN") return 2;
  const count = V1_PROTOCOLS[word]?.length;
  if (at > count) throw malformedV1(`more than ${count} fields after ${word}`);
  // The shortest line each can make: the rest of this field, then CRLF,
  // then a space and the fewest characters of each field still to come.
  return Math.min(...names.map((name) => {
    const fewest = [name.length, ...V1_PROTOCOLS[name]];
    let need = Math.max(0, fewest[at] - fields[at].length) + 2;
    for (let i = at + 1; i < fewest.length; i++) need += 1 + fewest[i];
    return need;
  }));
}

const V1_PORT_RULE =
  "is not a whole number from 0 to 65535 without leading zeros";

function parseV1Line(line: string): ProxyHeader {
  const fields = line.split(" ");
  const word = fields[1];
  if (word === "UNKNOWN") return { version: 1, command: "proxy" };
  if (word !== "TCP4" && word !== "TCP6") throw unknownProtocol(word);
  if (fields.length !== 6) {
    const rule = `${word} needs 4 fields separated by single spaces`;
    throw malformedV1(`${rule}, found ${fields.length - 2}`);
  }
  const ipv6 = word === "TCP6";
  /** The source (0) or destination (1) address and port. */
  const address = (i: 0 | 1): Deno.NetAddr => {
    const what = i === 0 ? "source" : "destination";
    const [text, port] = [fields[2 + i], fields[4 + i]];
    // The protocol word fixes the family; a zone is no part of the format,
    // and ::ffff:a.b.c.d stays mapped in a TCP6 line.
    const bytes = ipv6 ? parseIpv6(text) : parseIpv4(text);
    const problem = !bytes
      ? `address ${JSON.stringify(text)} is not an IPv${ipv6 ? 6 : 4} address`
      : /^(0|[1-9][0-9]{0,4})$/.test(port) && Number(port) <= 65535
      ? undefined
      : `port ${JSON.stringify(port)} ${V1_PORT_RULE}`;
    if (!bytes || problem) throw malformedV1(`the ${what} ${problem}`);
    return { transport: "tcp", hostname: formatIp(bytes), port: Number(port) };
  };
  const [source, destination] = [address(0), address(1)];
  return { version: 1, command: "proxy", source, destination };
}

/**
 * True if `bytes` begin like a PROXY protocol header, v1 (`PROXY `) or v2
 * (its 12-byte signature), as far as they go (at least 6 bytes): for naming
 * what a client sent on a port that expects no header.
 */
export function looksLikeProxyHeader(bytes: Uint8Array): boolean {
  return bytes.length >= 6 &&
    agrees(bytes, bytes[0] === V2_SIGNATURE[0] ? V2_SIGNATURE : V1_PREFIX);
}
