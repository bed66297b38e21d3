/**
 * Writes PROXY protocol headers as a balancer sends them, for the tests:
 * what lib/net/proxy_protocol.ts reads, and (tests/haproxy_test.ts shows)
 * what HAProxy writes, to the byte.
 *
 * @module
 */
import { formatIp, parseIp } from "../lib/net/ip.ts";
import {
  type ProxyHeader,
  V2_FIXED_LENGTH,
  V2_SIGNATURE,
} from "../lib/net/proxy_protocol.ts";

/** A v2 type-length-value field, for {@linkcode encodeProxyHeader}. */
export interface ProxyTlv {
  /** The type byte, such as 0x04 for PP2_TYPE_NOOP. */
  type: number;
  /** The value, at most 65535 bytes. */
  value: Uint8Array;
}

function addressBytes(addr: Deno.NetAddr, what: string): Uint8Array {
  const bytes = parseIp(addr.hostname);
  if (!bytes || addr.hostname.includes("%")) {
    throw new TypeError(
      `Invalid ${what} address ${
        JSON.stringify(addr.hostname)
      }: the PROXY protocol carries IPv4 or IPv6 addresses only`,
    );
  }
  if (!Number.isInteger(addr.port) || addr.port < 0 || addr.port > 65535) {
    throw new RangeError(
      `Invalid ${what} port ${addr.port}: use a whole number from 0 to 65535`,
    );
  }
  return bytes;
}

function toIpv6(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 16) return bytes;
  const mapped = new Uint8Array(16);
  mapped[10] = mapped[11] = 0xff;
  mapped.set(bytes, 12);
  return mapped;
}

/**
 * Writes a PROXY protocol header as a balancer sends it: v1 `TCP4`/`TCP6`
 * (or `UNKNOWN` without addresses), or v2 with `LOCAL`, `AF_UNSPEC`,
 * `AF_INET` or `AF_INET6`, and any TLVs after the addresses. Addresses of
 * mixed families are both written as IPv6, the IPv4 one mapped.
 *
 * @throws {TypeError} If an address is not an IP address, or only one of
 * source and destination is given.
 * @throws {RangeError} If a port or a TLV does not fit the format.
 */
export function encodeProxyHeader(
  header: ProxyHeader,
  tlvs: readonly ProxyTlv[] = [],
): Uint8Array {
  const { source, destination } = header;
  if ((source === undefined) !== (destination === undefined)) {
    throw new TypeError(
      "A PROXY protocol header needs both a source and a destination, or neither",
    );
  }
  let from = source && addressBytes(source, "source");
  let to = destination && addressBytes(destination, "destination");
  if (from && to && from.length !== to.length) {
    from = toIpv6(from);
    to = toIpv6(to);
  }
  const addressed = header.command === "proxy" && from && to;
  if (header.version === 1) {
    if (tlvs.length > 0) {
      throw new TypeError("PROXY protocol v1 has no TLVs");
    }
    const line = addressed
      ? `PROXY TCP${from!.length === 4 ? 4 : 6} ${formatIp(from!)} ${
        formatIp(to!)
      } ${source!.port} ${destination!.port}\r\n`
      : "PROXY UNKNOWN\r\n";
    return new TextEncoder().encode(line);
  }
  const addressLength = addressed ? from!.length * 2 + 4 : 0;
  let length = V2_FIXED_LENGTH + addressLength;
  for (const tlv of tlvs) {
    if (tlv.value.length > 0xffff || tlv.type < 0 || tlv.type > 0xff) {
      throw new RangeError(
        "A TLV needs a type from 0 to 255 and at most 65535 bytes of value",
      );
    }
    length += 3 + tlv.value.length;
  }
  if (length - V2_FIXED_LENGTH > 0xffff) {
    throw new RangeError(
      "A PROXY protocol v2 header carries at most 65535 bytes after its first 16",
    );
  }
  const out = new Uint8Array(length);
  out.set(V2_SIGNATURE);
  out[12] = header.command === "local" ? 0x20 : 0x21;
  const transport = source?.transport === "udp" ? 0x2 : 0x1;
  out[13] = addressed ? ((from!.length === 4 ? 0x10 : 0x20) | transport) : 0;
  out[14] = (length - V2_FIXED_LENGTH) >> 8;
  out[15] = (length - V2_FIXED_LENGTH) & 0xff;
  let at = V2_FIXED_LENGTH;
  if (addressed) {
    out.set(from!, at);
    out.set(to!, at + from!.length);
    at += from!.length * 2;
    out[at++] = source!.port >> 8;
    out[at++] = source!.port & 0xff;
    out[at++] = destination!.port >> 8;
    out[at++] = destination!.port & 0xff;
  }
  for (const tlv of tlvs) {
    out[at] = tlv.type;
    out[at + 1] = tlv.value.length >> 8;
    out[at + 2] = tlv.value.length & 0xff;
    out.set(tlv.value, at + 3);
    at += 3 + tlv.value.length;
  }
  return out;
}
