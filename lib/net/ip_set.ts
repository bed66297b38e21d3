/**
 * A set of CIDR blocks for the per-connection access check: the blocks as
 * sorted, merged ranges, found by binary search, so that 60,000 `--deny`
 * blocks cost about as much per connection as a dozen.
 *
 * @module
 */
import type { Cidr } from "./ip.ts";

/** Blocks of addresses, asked one address at a time. */
export interface IpSet {
  /** True if `address` (4 or 16 bytes) lies in one of the blocks. */
  has(address: Uint8Array): boolean;
  /** True when no block was given. */
  readonly empty: boolean;
}

/** IPv4 ranges as numbers; IPv6 ranges as 16-byte keys. */
interface Ranges<T> {
  starts: T[];
  ends: T[];
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}

/** The first and the last address of a block. */
function bounds(cidr: Cidr): [Uint8Array, Uint8Array] {
  const first = new Uint8Array(cidr.bytes.length);
  const last = new Uint8Array(cidr.bytes.length);
  for (let i = 0; i < first.length; i++) {
    const bits = Math.max(0, Math.min(8, cidr.prefix - i * 8));
    const mask = (0xff << (8 - bits)) & 0xff;
    first[i] = cidr.bytes[i] & mask;
    last[i] = first[i] | (~mask & 0xff);
  }
  return [first, last];
}

function ipv4(bytes: Uint8Array): number {
  return ((bytes[0] << 24) >>> 0) + (bytes[1] << 16) + (bytes[2] << 8) +
    bytes[3];
}

/** Sorts by start and merges overlapping ranges. */
function merge<T>(
  ranges: [T, T][],
  compare: (a: T, b: T) => number,
): Ranges<T> {
  ranges.sort((a, b) => compare(a[0], b[0]));
  const starts: T[] = [];
  const ends: T[] = [];
  for (const [start, end] of ranges) {
    const last = ends.length - 1;
    if (last >= 0 && compare(start, ends[last]) <= 0) {
      if (compare(end, ends[last]) > 0) ends[last] = end;
    } else {
      starts.push(start);
      ends.push(end);
    }
  }
  return { starts, ends };
}

/** True if `value` is inside one of the sorted, disjoint ranges. */
function within<T>(
  ranges: Ranges<T>,
  value: T,
  compare: (a: T, b: T) => number,
): boolean {
  const { starts, ends } = ranges;
  // The last range that starts at or before the value.
  let low = 0;
  let high = starts.length - 1;
  let found = -1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (compare(starts[middle], value) <= 0) {
      found = middle;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return found >= 0 && compare(value, ends[found]) <= 0;
}

const compareNumbers = (a: number, b: number) => a - b;

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
export function createIpSet(blocks: readonly Cidr[]): IpSet {
  const v4: [number, number][] = [];
  const v6: [Uint8Array, Uint8Array][] = [];
  for (const cidr of blocks) {
    const [first, last] = bounds(cidr);
    if (first.length === 4) v4.push([ipv4(first), ipv4(last)]);
    else v6.push([first, last]);
  }
  const ranges4 = merge(v4, compareNumbers);
  const ranges6 = merge(v6, compareBytes);
  return {
    empty: blocks.length === 0,
    has(address) {
      return address.length === 4
        ? within(ranges4, ipv4(address), compareNumbers)
        : within(ranges6, address, compareBytes);
    },
  };
}
