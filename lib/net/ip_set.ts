/**
 * A set of CIDR blocks for the per-connection access check: the blocks as
 * sorted, merged ranges, found by binary search, so that 60,000 `--deny`
 * blocks cost about as much per connection as a dozen.
 *
 * @module
 */
import { type Cidr, maskBits } from "./ip.ts";

/**
 * Blocks of addresses, asked one address at a time: `has(address)` (4 or 16
 * bytes) is true if it lies in one of the blocks; `empty` when none was given.
 */
export type IpSet = ReturnType<typeof createIpSet>;

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

const ipv4 = (bytes: Uint8Array) =>
  ((bytes[0] << 24) >>> 0) + (bytes[1] << 16) + (bytes[2] << 8) + bytes[3];

/**
 * A test for the blocks' addresses, as keys (IPv4 as numbers, the fast path;
 * IPv6 as bytes): the blocks become sorted, disjoint ranges.
 */
function ranges<T>(
  blocks: Cidr[],
  key: (bytes: Uint8Array) => T,
  compare: (a: T, b: T) => number,
): (value: T) => boolean {
  const sorted = blocks.map(({ bytes, prefix }) => [
    key(maskBits(bytes, prefix)),
    key(maskBits(bytes, prefix, true)),
  ]).sort((a, b) => compare(a[0], b[0]));
  const starts: T[] = [];
  const ends: T[] = [];
  for (const [start, end] of sorted) {
    const last = ends.length - 1;
    if (last < 0 || compare(start, ends[last]) > 0) {
      starts.push(start);
      ends.push(end);
    } else if (compare(end, ends[last]) > 0) ends[last] = end;
  }
  // A binary search: `high` ends at the last range that starts at or
  // before the value.
  return (value) => {
    let low = 0;
    let high = starts.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (compare(starts[middle], value) <= 0) low = middle + 1;
      else high = middle - 1;
    }
    return high >= 0 && compare(value, ends[high]) <= 0;
  };
}

/**
 * Makes the set of `blocks`, IPv4 and IPv6 alike.
 *
 * @example
 * ```ts
 * import { parseCidr, parseIp } from "./ip.ts";
 * import { createIpSet } from "./ip_set.ts";
 *
 * const set = createIpSet([parseCidr("192.0.2.0/24"), parseCidr("2001:db8::/32")]);
 * console.log(set.has(parseIp("192.0.2.7")!)); // true
 * console.log(set.has(parseIp("198.51.100.1")!)); // false
 * ```
 */
export function createIpSet(blocks: readonly Cidr[]) {
  const v4 = blocks.filter((cidr) => cidr.bytes.length === 4);
  const has4 = ranges(v4, ipv4, (a, b) => a - b);
  const v6 = blocks.filter((cidr) => cidr.bytes.length !== 4);
  const has6 = ranges(v6, (bytes) => bytes, compareBytes);
  return {
    empty: blocks.length === 0,
    has: (address: Uint8Array): boolean =>
      address.length === 4 ? has4(ipv4(address)) : has6(address),
  } as const;
}
