import { ValueError } from "./value_error.ts";

/**
 * A parsed CIDR block such as `10.0.0.0/8` or `2001:db8::/32`.
 *
 * @example Usage
 * ```ts
 * import { type Cidr, fetchGreeting, parseCidr, serveGreeting } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const allow: Cidr[] = [parseCidr("127.0.0.0/8"), parseCidr("::1")];
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0, allow });
 * const bytes = await fetchGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * assertEquals(new TextDecoder().decode(bytes), "Connection Established\r\n");
 * ```
 */
export interface Cidr {
  /** The network address, as bytes (4 for IPv4, 16 for IPv6). */
  bytes: Uint8Array;
  /** How many leading bits must match. */
  prefix: number;
  /** The block as written, normalised (`10.0.0.0/8`). */
  text: string;
}

/**
 * Drops the `::ffff:` prefix of an IPv4-mapped IPv6 address, so a dual-stack
 * listener reports and limits IPv4 clients by their real address.
 */
export function unmapIpv4(hostname: string): string {
  return hostname.startsWith("::ffff:") && hostname.includes(".")
    ? hostname.slice(7)
    : hostname;
}

/** Parses dotted-quad IPv4 text (no leading zeros) into 4 bytes. */
export function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  for (const part of parts) if (!IPV4_BYTE.test(part)) return undefined;
  return Uint8Array.of(+parts[0], +parts[1], +parts[2], +parts[3]);
}

/** 0 to 255, without leading zeros. */
const IPV4_BYTE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/**
 * Parses IPv6 text, without a zone, into 16 bytes; an IPv4-mapped address
 * stays mapped.
 */
export function parseIpv6(text: string): Uint8Array | undefined {
  // An embedded IPv4 tail (::ffff:1.2.3.4) stands for the last two groups.
  const colon = text.lastIndexOf(":");
  const dotted = text.includes(".", colon);
  const tail = dotted ? parseIpv4(text.slice(colon + 1)) : undefined;
  if (dotted && !tail) return undefined;
  const halves = (dotted ? text.slice(0, colon + 1) + "0:0" : text).split("::");
  if (halves.length > 2) return undefined;
  const [head, rest = []] = halves.map((half) => half ? half.split(":") : []);
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...Array(missing).fill("0"), ...rest];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(groups[i])) return undefined;
    bytes[i * 2] = parseInt(groups[i], 16) >> 8;
    bytes[i * 2 + 1] = parseInt(groups[i], 16); // The low byte.
  }
  if (tail) bytes.set(tail, 12);
  return bytes;
}

/**
 * Parses an IPv4 or IPv6 address into bytes. IPv4-mapped IPv6 addresses
 * become IPv4. Returns undefined for anything else (including host names).
 */
export function parseIp(text: string): Uint8Array | undefined {
  if (!text.includes(":")) return parseIpv4(text);
  const bytes = parseIpv6(text.replace(/%.*$/, ""));
  return bytes && isMapped(bytes) ? bytes.slice(12) : bytes;
}

/** True for the 16 bytes of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`). */
function isMapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 12; i++) if (bytes[i] !== (i > 9 ? 255 : 0)) return false;
  return true;
}

/**
 * An IPv4 (4 bytes) or IPv6 (16 bytes) address as canonical text: IPv6 in
 * lower case with the longest run of two or more zero groups (the first, on
 * a tie) written `::`, and IPv4-mapped addresses as `::ffff:a.b.c.d`, as
 * RFC 5952 recommends and as Deno reports dual-stack peers.
 */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  if (isMapped(bytes)) return `::ffff:${bytes.subarray(12).join(".")}`;
  // The longest run of two or more zero groups, found on numbers: this runs
  // per IPv6 connection (sourceKey, PROXY headers).
  const hex: string[] = [];
  let start = -1;
  let length = 1;
  for (let i = 0, run = 0; i < 8; i++) {
    const group = (bytes[2 * i] << 8) | bytes[2 * i + 1];
    hex.push(group.toString(16));
    run = group === 0 ? run + 1 : 0;
    if (run > length) {
      start = i - run + 1;
      length = run;
    }
  }
  if (start === -1) return hex.join(":");
  const head = hex.slice(0, start).join(":");
  return `${head}::${hex.slice(start + length).join(":")}`;
}

/**
 * Parses a CIDR block; a bare address is a block of one.
 *
 * @throws {ValueError} If it is not a valid IPv4 or IPv6 block.
 *
 * @example Usage
 * ```ts
 * import { parseCidr } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const block = parseCidr("10.1.2.3/8");
 * assertEquals(block.text, "10.0.0.0/8");
 * assertEquals(block.prefix, 8);
 * ```
 */
export function parseCidr(text: string): Cidr {
  const [address, prefixText, ...rest] = text.split("/");
  const bytes = parseIp(address);
  const bits = (bytes?.length ?? 0) * 8;
  // An IPv4-mapped block counts its prefix in IPv6 bits.
  const offset = bits === 32 && address.includes(":") ? 96 : 0;
  const prefix = prefixText === undefined ? bits : Number(prefixText) - offset;
  const digits = prefixText === undefined || /^\d{1,3}$/.test(prefixText);
  if (!bytes || rest.length || !digits || !(prefix >= 0 && prefix <= bits)) {
    const how =
      "write an address or block such as 192.168.0.0/16 or 2001:db8::/32";
    throw new ValueError("CIDR", text, how);
  }
  // Keep only the network part, so 10.1.2.3/8 means 10.0.0.0/8.
  const network = maskBits(bytes, prefix);
  return { bytes: network, prefix, text: blockText(network, prefix) };
}

/**
 * `bytes` with every bit after the first `prefix` cleared: the block's first
 * address; with `last`, every such bit set: its last.
 */
export function maskBits(bytes: Uint8Array, prefix: number, last = false) {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const mask = (0xff00 >> Math.max(0, Math.min(8, prefix - i * 8))) & 0xff;
    out[i] = last ? out[i] | ~mask : out[i] & mask;
  }
  return out;
}

/**
 * The key per-source limits count by: the IPv4 address, or the /64 network
 * of an IPv6 address (one host usually owns a whole /64).
 */
export function sourceKey(hostname: string): string {
  // The kernel's IPv4 text is already canonical: the per-connection fast path.
  if (!hostname.includes(":")) return hostname;
  const unmapped = unmapIpv4(hostname);
  const bytes = unmapped === hostname ? parseIp(hostname) : undefined;
  if (!bytes) return unmapped;
  return bytes.length === 4 ? formatIp(bytes) : blockText(bytes, 64);
}

/**
 * The network of `bytes` with a prefix of `prefix` bits, in canonical text
 * (RFC 5952), as `192.0.2.0/24` or `2001:db8:1::/48`.
 */
export function blockText(bytes: Uint8Array, prefix: number): string {
  return `${formatIp(maskBits(bytes, prefix))}/${prefix}`;
}
