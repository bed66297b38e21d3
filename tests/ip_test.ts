import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  formatIp,
  parseCidr,
  parseIp,
  sourceKey,
  unmapIpv4,
} from "../lib/net/ip.ts";
import { createIpSet } from "../lib/net/ip_set.ts";

Deno.test("parseIp() parses IPv4, IPv6 and IPv4-mapped addresses", () => {
  assertEquals([...parseIp("192.168.1.2")!], [192, 168, 1, 2]);
  assertEquals([...parseIp("::1")!], [...Array(15).fill(0), 1]);
  assertEquals([...parseIp("2001:db8::1")!.subarray(0, 4)], [
    0x20,
    0x01,
    0x0d,
    0xb8,
  ]);
  assertEquals([...parseIp("::ffff:10.0.0.1")!], [10, 0, 0, 1]);
  assertEquals(parseIp("fe80::1%eth0")!.length, 16);
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.256",
      "01.2.3.4",
      "::1::",
      "1:2:3:4:5:6:7:8:9",
      "g::1",
      "example.com",
      "1.2.3.4.5",
      ":::",
    ]
  ) {
    assertEquals(parseIp(bad), undefined, bad);
  }
});

Deno.test("parseCidr() normalises blocks and rejects bad ones", () => {
  assertEquals(parseCidr("10.1.2.3/8").text, "10.0.0.0/8");
  assertEquals(parseCidr("127.0.0.1").text, "127.0.0.1/32");
  assertEquals(parseCidr("2001:db8::/32").text, "2001:db8::/32");
  assertEquals(parseCidr("::ffff:10.0.0.0/104").text, "10.0.0.0/8");
  for (
    const bad of [
      "10.0.0.0/33",
      "::/129",
      "10.0.0.0/",
      "10.0.0.0/-1",
      "nope",
      "10.0.0.0/8/8",
      "/8",
    ]
  ) {
    assertThrows(() => parseCidr(bad), RangeError, "Invalid CIDR", bad);
  }
});

Deno.test("formatIp() compresses the longest run of zero groups (RFC 5952)", () => {
  const cases: [string, string][] = [
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
    ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["fe80:0:0:0:1:0:0:0", "fe80::1:0:0:0"],
  ];
  for (const [input, text] of cases) {
    assertEquals(formatIp(parseIp(input)!), text, input);
  }
  assertEquals(formatIp(new Uint8Array([10, 0, 0, 1])), "10.0.0.1");
  const mapped = new Uint8Array(16);
  mapped.set([0xff, 0xff, 10, 0, 0, 1], 10);
  assertEquals(formatIp(mapped), "::ffff:10.0.0.1");
  assertEquals(parseCidr("1:0:0:2:0:0:0:3").text, "1:0:0:2::3/128");
  assertEquals(parseCidr("1:0:0:2:0:0:0:3/64").text, "1:0:0:2::/64");
});

Deno.test("createIpSet() matches by prefix within one family", () => {
  const has = (cidr: string, ip: string) =>
    createIpSet([parseCidr(cidr)]).has(parseIp(ip)!);
  assert(has("192.168.0.0/23", "192.168.1.255"));
  assert(!has("192.168.0.0/23", "192.168.2.0"));
  assert(has("0.0.0.0/0", "8.8.8.8"));
  assert(!has("0.0.0.0/0", "::1"));
  assert(has("2001:db8::/32", "2001:db8:ffff::1"));
  assert(!has("2001:db8::/33", "2001:db8:8000::1"));
  assert(has("127.0.0.0/8", "::ffff:127.0.0.1"));
});

Deno.test("sourceKey() groups IPv6 by /64 and keeps IPv4 whole", () => {
  assertEquals(sourceKey("10.0.0.1"), "10.0.0.1");
  assertEquals(sourceKey("::ffff:10.0.0.1"), "10.0.0.1");
  assertEquals(sourceKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  assertEquals(sourceKey("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
  assertEquals(sourceKey("2001:db8::1"), "2001:db8::/64");
  assertEquals(sourceKey("::1"), "::/64");
  assertEquals(unmapIpv4("::ffff:1.2.3.4"), "1.2.3.4");
  assertEquals(unmapIpv4("::1"), "::1");
});

Deno.test("parseCidr() and parseIp() never crash on random input", () => {
  const alphabet = "0123456789abcdefABCDEFxg.:/%-[] ";
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 20_000; i++) {
    const length = Math.floor(random() * 24);
    let text = "";
    for (let j = 0; j < length; j++) {
      text += alphabet[Math.floor(random() * alphabet.length)];
    }
    const bytes = parseIp(text);
    assert(bytes === undefined || bytes.length === 4 || bytes.length === 16);
    try {
      const cidr = parseCidr(text);
      assert(cidr.prefix >= 0 && cidr.prefix <= cidr.bytes.length * 8);
    } catch (error) {
      assert(error instanceof RangeError, `${text}: ${error}`);
    }
  }
});
