import { assert, assertEquals } from "@std/assert";
import { type Cidr, parseCidr } from "../lib/net/ip.ts";
import { createIpSet } from "../lib/net/ip_set.ts";

/** The oracle: true if `address` lies inside `cidr`, bit by bit. */
function cidrContains(cidr: Cidr, address: Uint8Array): boolean {
  if (cidr.bytes.length !== address.length) return false;
  for (let bit = 0; bit < cidr.prefix; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((cidr.bytes[bit >> 3] & mask) !== (address[bit >> 3] & mask)) {
      return false;
    }
  }
  return true;
}

/** A small deterministic generator, so that a failure can be replayed. */
function random(seed: number) {
  return () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

Deno.test("createIpSet() agrees with cidrContains on 20,000 random addresses against 500 random IPv4 and IPv6 blocks", () => {
  const next = random(42);
  const byte = () => Math.floor(next() * 256);
  const blocks = Array.from({ length: 500 }, (_, i) => {
    // Few distinct leading bytes, so that blocks overlap and nest.
    if (i % 2 === 0) {
      const prefix = 12 + Math.floor(next() * 21);
      return parseCidr(`${byte() & 3}.${byte()}.${byte()}.${byte()}/${prefix}`);
    }
    const prefix = 28 + Math.floor(next() * 101);
    const groups = Array.from(
      { length: 8 },
      (_, g) =>
        (g === 0 ? 0x2001 : (byte() & (g < 3 ? 1 : 0xff)) << 8 | byte())
          .toString(16),
    );
    return parseCidr(`${groups.join(":")}/${prefix}`);
  });
  const set = createIpSet(blocks);
  let inside = 0;
  for (let i = 0; i < 20_000; i++) {
    const address = i % 2 === 0
      ? new Uint8Array([byte() & 3, byte(), byte(), byte()])
      : new Uint8Array([
        0x20,
        0x01,
        byte() & 1,
        byte(),
        byte() & 1,
        ...Array.from({ length: 11 }, byte),
      ]);
    const expected = blocks.some((cidr) => cidrContains(cidr, address));
    assertEquals(set.has(address), expected, address.join("."));
    if (expected) inside++;
  }
  // Both answers were asked often enough to mean something.
  assert(inside > 1_000 && inside < 19_000, `${inside} inside`);
});

Deno.test("createIpSet() takes edges, a /0, single addresses and no blocks", () => {
  const set = createIpSet([
    parseCidr("10.0.0.0/8"),
    parseCidr("192.0.2.255"),
    parseCidr("::/0"),
  ]);
  assert(set.has(new Uint8Array([10, 0, 0, 0])));
  assert(set.has(new Uint8Array([10, 255, 255, 255])));
  assert(!set.has(new Uint8Array([11, 0, 0, 0])));
  assert(!set.has(new Uint8Array([9, 255, 255, 255])));
  assert(set.has(new Uint8Array([192, 0, 2, 255])));
  assert(!set.has(new Uint8Array([192, 0, 2, 254])));
  assert(set.has(new Uint8Array(16).fill(0xff)));
  assert(!set.empty);
  const none = createIpSet([]);
  assert(none.empty);
  assert(!none.has(new Uint8Array(4)));
});
