// The PROXY protocol parser on exact bytes: what HAProxy's specification
// allows, every way a header can be wrong, delivery in any chunking, and
// random and mutated input. tests/haproxy_test.ts checks it against the
// bytes a real HAProxy sends.
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  parseProxyHeader,
  type ProxyHeader,
  ProxyProtocolError,
  type ProxyProtocolErrorReason,
  readProxyHeader,
} from "../lib/net/proxy_protocol.ts";
import { encodeProxyHeader } from "./_proxy_header.ts";

const encoder = new TextEncoder();
const text = (s: string) => encoder.encode(s);
const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!, (h) => parseInt(h, 16));
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};
const tcp = (hostname: string, port: number): Deno.NetAddr => ({
  transport: "tcp",
  hostname,
  port,
});

const SIGNATURE = "0d0a0d0a000d0a515549540a";

/**
 * A connection that hands out `stream` in chunks of at most `chunk` bytes,
 * and remembers what was left unread.
 */
function fakeConn(stream: Uint8Array, chunk = Infinity) {
  let at = 0;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (at >= stream.length) return Promise.resolve(null);
      const n = Math.min(p.length, chunk, stream.length - at);
      p.set(stream.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
    rest: () => stream.subarray(at),
  };
}

/** The error's reason, or "ok" with the parse result. */
function outcome(bytes: Uint8Array, maxBytes?: number) {
  try {
    return { ok: parseProxyHeader(bytes, { maxBytes }) };
  } catch (error) {
    if (error instanceof ProxyProtocolError) return { reason: error.reason };
    throw error;
  }
}

Deno.test("parseProxyHeader() reads v1 TCP4, TCP6 and UNKNOWN lines", () => {
  const cases: [string, ProxyHeader][] = [
    ["PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", {
      version: 1,
      command: "proxy",
      source: tcp("192.168.0.1", 56324),
      destination: tcp("192.168.0.11", 443),
    }],
    ["PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n", {
      version: 1,
      command: "proxy",
      source: tcp("255.255.255.255", 65535),
      destination: tcp("0.0.0.0", 0),
    }],
    // Upper case, and zeros written out: canonical text comes back.
    ["PROXY TCP6 2001:DB8:0:0:0:0:0:7 2001:db8::1 40000 8080\r\n", {
      version: 1,
      command: "proxy",
      source: tcp("2001:db8::7", 40000),
      destination: tcp("2001:db8::1", 8080),
    }],
    ["PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n", {
      version: 1,
      command: "proxy",
      source: tcp("::ffff:192.0.2.1", 1),
      destination: tcp("::1", 2),
    }],
    [
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff " +
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
      {
        version: 1,
        command: "proxy",
        source: tcp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
        destination: tcp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
      },
    ],
    ["PROXY UNKNOWN\r\n", { version: 1, command: "proxy" }],
    // The specification's worst case: 107 bytes, whatever follows UNKNOWN.
    [
      "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff " +
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
      { version: 1, command: "proxy" },
    ],
  ];
  for (const [line, header] of cases) {
    const bytes = text(line + "GET / HTTP/1.0\r\n");
    assertEquals(
      parseProxyHeader(bytes),
      { header, length: line.length },
      line,
    );
  }
  assertEquals(cases.at(-1)![0].length, 107);
});

Deno.test("parseProxyHeader() writes IPv6 addresses in RFC 5952 form", () => {
  const cases: [string, string][] = [
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of equal runs
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero stays
    ["FE80:0000:0000:0000:0000:0000:0000:00AB", "fe80::ab"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["0:0:0:0:0:ffff:7f00:1", "::ffff:127.0.0.1"],
  ];
  for (const [written, canonical] of cases) {
    const v1 = parseProxyHeader(text(`PROXY TCP6 ${written} ::1 1 2\r\n`))!;
    assertEquals(v1.header.source?.hostname, canonical, written);
    const v2 = parseProxyHeader(encodeProxyHeader({
      version: 2,
      command: "proxy",
      source: tcp(written, 1),
      destination: tcp("::1", 2),
    }))!;
    assertEquals(v2.header.source?.hostname, canonical, written);
  }
});

Deno.test("parseProxyHeader() reads v2 PROXY over IPv4 and IPv6, skipping TLVs", () => {
  // HAProxy's header for 127.0.0.2:40017 -> 127.0.0.1:18080, then a CRC32C
  // and a unique-ID TLV, then the client's own bytes.
  const ipv4 = hex(
    SIGNATURE + "21 11 0018 7f000002 7f000001 9c51 46a0" +
      "03 0004 cd7ce7ec  05 0002 4142",
  );
  assertEquals(parseProxyHeader(concat(ipv4, text("hello"))), {
    header: {
      version: 2,
      command: "proxy",
      source: tcp("127.0.0.2", 40017),
      destination: tcp("127.0.0.1", 18080),
    },
    length: ipv4.length,
  });
  const ipv6 = hex(
    SIGNATURE + "21 21 0027" +
      "20010db8000000000000000000000007 20010db8000000000000000000000001" +
      "9c40 1f90  04 0000", // a NOOP TLV with no value
  );
  assertEquals(parseProxyHeader(ipv6), {
    header: {
      version: 2,
      command: "proxy",
      source: tcp("2001:db8::7", 40000),
      destination: tcp("2001:db8::1", 8080),
    },
    length: 16 + 39,
  });
  // UDP is carried the same way, as udp addresses.
  const udp = parseProxyHeader(
    hex(SIGNATURE + "21 12 000c 0a000001 0a000002 0035 0035"),
  )!;
  assertEquals(udp.header.source, {
    transport: "udp",
    hostname: "10.0.0.1",
    port: 53,
  });
});

Deno.test("parseProxyHeader() gives no source for v2 LOCAL, AF_UNSPEC and AF_UNIX", () => {
  const cases: [string, ProxyHeader][] = [
    // HAProxy's health check with send-proxy-v2.
    [SIGNATURE + "20 00 0000", { version: 2, command: "local" }],
    // LOCAL ignores whatever address block and family come with it.
    [SIGNATURE + "20 ff 0005 0102030405", { version: 2, command: "local" }],
    [
      SIGNATURE + "20 11 000c 7f000002 7f000001 9c51 46a0",
      { version: 2, command: "local" },
    ],
    [SIGNATURE + "21 00 0003 010203", { version: 2, command: "proxy" }],
    [SIGNATURE + "21 10 0000", { version: 2, command: "proxy" }],
    [
      SIGNATURE + "21 31 00d8" + "00".repeat(216),
      { version: 2, command: "proxy" },
    ],
  ];
  for (const [bytes, header] of cases) {
    const header16 = hex(bytes);
    assertEquals(parseProxyHeader(header16), {
      header,
      length: header16.length,
    }, bytes);
  }
});

Deno.test("parseProxyHeader() returns undefined for every proper prefix of a valid header", () => {
  const headers = [
    text("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
    text("PROXY TCP6 2001:db8::7 2001:db8::1 40000 8080\r\n"),
    text("PROXY UNKNOWN\r\n"),
    hex(SIGNATURE + "21 11 0013 7f000002 7f000001 9c51 46a0 04 0004 00000000"),
    hex(SIGNATURE + "20 00 0000"),
  ];
  for (const header of headers) {
    for (let n = 0; n < header.length; n++) {
      assertEquals(parseProxyHeader(header.subarray(0, n)), undefined);
    }
    assertEquals(parseProxyHeader(header)?.length, header.length);
  }
});

Deno.test("parseProxyHeader() refuses each malformed, oversized or unsupported header with its reason", () => {
  const v1 = (line: string) => text(line);
  const cases: [string, Uint8Array, ProxyProtocolErrorReason][] = [
    ["another protocol", v1("GET / HTTP/1.1\r\n"), "malformed"],
    ["a TLS hello", hex("16030100"), "malformed"],
    ["lower-case proxy", v1("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "malformed"],
    ["no space after PROXY", v1("PROXYTCP4"), "malformed"],
    ["PROXY alone", v1("PROXY\r\n"), "malformed"],
    ["unknown protocol", v1("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), "malformed"],
    ["protocol word too long", v1("PROXY TCP44"), "malformed"],
    ["UNKNOWN with a suffix", v1("PROXY UNKNOWNX\r\n"), "malformed"],
    ["two spaces", v1("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), "malformed"],
    ["trailing space", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), "malformed"],
    ["a field missing", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), "malformed"],
    ["a field too many", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3"), "malformed"],
    ["port 65536", v1("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), "malformed"],
    ["port 99999", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"), "malformed"],
    [
      "port with a sign",
      v1("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"),
      "malformed",
    ],
    [
      "port with leading zero",
      v1("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
      "malformed",
    ],
    [
      "port too long",
      v1("PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n"),
      "malformed",
    ],
    ["octet over 255", v1("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), "malformed"],
    [
      "octet with leading zero",
      v1("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n"),
      "malformed",
    ],
    ["three octets", v1("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), "malformed"],
    ["host name", v1("PROXY TCP4 localhost 5.6.7.8 1 2\r\n"), "malformed"],
    ["IPv6 in TCP4", v1("PROXY TCP4 ::1 ::1 1 2\r\n"), "malformed"],
    ["IPv4 in TCP6", v1("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), "malformed"],
    ["zone in TCP6", v1("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), "malformed"],
    ["two ::", v1("PROXY TCP6 1::2::3 ::1 1 2\r\n"), "malformed"],
    [
      "nine groups",
      v1("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"),
      "malformed",
    ],
    ["five hex digits", v1("PROXY TCP6 12345::1 ::1 1 2\r\n"), "malformed"],
    ["bare LF", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), "malformed"],
    ["bare CR", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), "malformed"],
    ["LF CR", v1("PROXY UNKNOWN\n\r"), "malformed"],
    ["tab", v1("PROXY\tTCP4"), "malformed"],
    ["NUL", v1("PROXY TCP4 1.2.3.4\x005.6.7.8 1 2\r\n"), "malformed"],
    [
      "non-ASCII",
      concat(v1("PROXY UNKNOWN "), Uint8Array.of(0xc3, 0xa9), v1("\r\n")),
      "malformed",
    ],
    ["DEL", v1("PROXY UNKNOWN \x7f\r\n"), "malformed"],
    [
      "no CRLF in 107 bytes",
      v1("PROXY UNKNOWN " + "a".repeat(93)),
      "oversized",
    ],
    [
      "CRLF at 108",
      v1("PROXY UNKNOWN " + "a".repeat(92) + "\r\n"),
      "oversized",
    ],
    [
      "v2 signature off by one byte",
      hex(SIGNATURE.replace(/0a$/, "0b")),
      "malformed",
    ],
    ["v2 signature wrong early", hex("0d0a0d0a01"), "malformed"],
    ["v2 version 1", hex(SIGNATURE + "11 11 000c"), "unsupported"],
    ["v2 version 3", hex(SIGNATURE + "31"), "unsupported"],
    ["v2 version 0", hex(SIGNATURE + "01"), "unsupported"],
    ["v2 command 2", hex(SIGNATURE + "22 11 000c"), "unsupported"],
    ["v2 family 4", hex(SIGNATURE + "21 41 000c"), "unsupported"],
    ["v2 protocol 3", hex(SIGNATURE + "21 13 000c"), "unsupported"],
    ["v2 length over the limit", hex(SIGNATURE + "21 11 0ff1"), "oversized"],
    ["v2 length at the maximum", hex(SIGNATURE + "21 11 ffff"), "oversized"],
    [
      "v2 IPv4 block too short",
      hex(SIGNATURE + "21 11 000b" + "00".repeat(11)),
      "malformed",
    ],
    [
      "v2 IPv6 block too short",
      hex(SIGNATURE + "21 21 000c" + "00".repeat(12)),
      "malformed",
    ],
    [
      "v2 Unix block too short",
      hex(SIGNATURE + "21 31 0010" + "00".repeat(16)),
      "malformed",
    ],
    [
      "v2 TLV runs past the end",
      hex(SIGNATURE + "21 11 0010 7f000002 7f000001 0001 0002 04 0002 00"),
      "malformed",
    ],
    [
      "v2 stray bytes after a TLV",
      hex(SIGNATURE + "21 11 0011 7f000002 7f000001 0001 0002 04 0000 0000"),
      "malformed",
    ],
  ];
  for (const [name, bytes, reason] of cases) {
    const error = assertThrows(
      () => parseProxyHeader(bytes),
      ProxyProtocolError,
      undefined,
      name,
    );
    assertEquals(error.reason, reason, name);
    assert(/^[A-Z]/.test(error.message), `${name}: ${error.message}`);
  }
  // The limit is a parameter: the same 28-byte header fits 28 but not 27.
  const ipv4 = hex(SIGNATURE + "21 11 000c 7f000002 7f000001 0001 0002");
  assertEquals(outcome(ipv4, 28).ok?.length, 28);
  assertEquals(outcome(ipv4, 27).reason, "oversized");
  assertEquals(outcome(text("PROXY UNKNOWN\r\n"), 16).ok?.length, 15);
  assertEquals(outcome(text("PROXY TCP4 1.2.3.4"), 16).reason, "oversized");
  assertThrows(() => parseProxyHeader(ipv4, { maxBytes: 15 }), RangeError);
  assertThrows(() => parseProxyHeader(ipv4, { maxBytes: 1.5 }), RangeError);
});

Deno.test("parseProxyHeader() refuses a wrong first byte at once, before a whole header", () => {
  for (const first of ["G", "\x16", "\0", "p", "\r\n\r\n\r"]) {
    assertEquals(outcome(text(first)).reason, "malformed", first);
  }
  assertEquals(outcome(text("PROXY X")).reason, "malformed");
  assertEquals(
    outcome(text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ")).reason,
    "malformed",
  );
});

const VALID_STREAMS: [string, Uint8Array, ProxyHeader][] = [
  [
    "v1 TCP4",
    text("PROXY TCP4 203.0.113.195 198.51.100.1 51234 8080\r\n"),
    {
      version: 1,
      command: "proxy",
      source: tcp("203.0.113.195", 51234),
      destination: tcp("198.51.100.1", 8080),
    },
  ],
  [
    "v1 shortest TCP4",
    text("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"),
    {
      version: 1,
      command: "proxy",
      source: tcp("0.0.0.0", 0),
      destination: tcp("0.0.0.0", 0),
    },
  ],
  [
    "v1 shortest TCP6",
    text("PROXY TCP6 :: :: 0 0\r\n"),
    {
      version: 1,
      command: "proxy",
      source: tcp("::", 0),
      destination: tcp("::", 0),
    },
  ],
  [
    "v1 TCP6",
    text("PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::1 65535 443\r\n"),
    {
      version: 1,
      command: "proxy",
      source: tcp("2001:db8:85a3::8a2e:370:7334", 65535),
      destination: tcp("2001:db8::1", 443),
    },
  ],
  ["v1 UNKNOWN", text("PROXY UNKNOWN\r\n"), { version: 1, command: "proxy" }],
  [
    "v1 UNKNOWN with addresses",
    text("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"),
    { version: 1, command: "proxy" },
  ],
  ["v2 LOCAL", hex(SIGNATURE + "20 00 0000"), {
    version: 2,
    command: "local",
  }],
  [
    "v2 IPv4 with TLVs",
    hex(
      SIGNATURE + "21 11 0014 7f000002 7f000001 9c51 46a0 02 0005 6869686968",
    ),
    {
      version: 2,
      command: "proxy",
      source: tcp("127.0.0.2", 40017),
      destination: tcp("127.0.0.1", 18080),
    },
  ],
];

Deno.test("readProxyHeader() reads each header whole, in any chunking, and nothing after it", async () => {
  // The client's bytes after the header look like more header on purpose.
  const after = text("\r\nPROXY TCP4 6.6.6.6 6.6.6.6 6 6\r\n");
  for (const [name, header, expected] of VALID_STREAMS) {
    for (const chunk of [1, 2, 3, 7, 16, 64, Infinity]) {
      const conn = fakeConn(concat(header, after), chunk);
      assertEquals(await readProxyHeader(conn), expected, `${name} / ${chunk}`);
      assertEquals(conn.rest(), after, `${name} / ${chunk}: bytes left`);
    }
  }
});

Deno.test("readProxyHeader() reads a v1 line in a few reads, never past its CRLF", async () => {
  const line = text("PROXY TCP4 203.0.113.195 198.51.100.1 51234 8080\r\n");
  const asked: number[] = [];
  const conn = fakeConn(concat(line, text("x".repeat(200))));
  const header = await readProxyHeader({
    read(p) {
      asked.push(p.length);
      return conn.read(p);
    },
  });
  assertEquals(header.source?.hostname, "203.0.113.195");
  assertEquals(asked.reduce((a, b) => a + b), line.length);
  assert(asked.length <= 8, `${asked.length} reads: ${asked}`);
});

Deno.test("readProxyHeader() tells a missing header from a truncated one", async () => {
  const missing = await assertRejects(
    () => readProxyHeader(fakeConn(new Uint8Array())),
    ProxyProtocolError,
  );
  assertEquals(missing.reason, "missing");
  for (const [name, header] of VALID_STREAMS) {
    for (const cut of [1, header.length - 1]) {
      const error = await assertRejects(
        () => readProxyHeader(fakeConn(header.subarray(0, cut), 3)),
        ProxyProtocolError,
        undefined,
        name,
      );
      assertEquals(error.reason, "truncated", `${name} cut at ${cut}`);
    }
  }
  // A read error is the caller's to see, as it came.
  await assertRejects(
    () =>
      readProxyHeader({
        read: () => Promise.reject(new Deno.errors.ConnectionReset("reset")),
      }),
    Deno.errors.ConnectionReset,
  );
});

Deno.test("readProxyHeader() refuses garbage and oversized headers without reading on", async () => {
  const asked: number[] = [];
  const conn = fakeConn(text("SSH-2.0-OpenSSH_9.2\r\n" + "z".repeat(500)));
  const error = await assertRejects(
    () =>
      readProxyHeader({
        read(p) {
          asked.push(p.length);
          return conn.read(p);
        },
      }),
    ProxyProtocolError,
  );
  assertEquals(error.reason, "malformed");
  assertEquals(asked, [15]);

  const big = hex(SIGNATURE + "21 11 ffff");
  const oversized = await assertRejects(
    () => readProxyHeader(fakeConn(concat(big, new Uint8Array(70_000)))),
    ProxyProtocolError,
  );
  assertEquals(oversized.reason, "oversized");
  // Within a raised limit, the same length is read whole.
  const whole = concat(
    hex(SIGNATURE + "21 11 ffff 7f000002 7f000001 0001 0002 04 fff0"),
    new Uint8Array(0xfff0),
  );
  const header = await readProxyHeader(fakeConn(whole, 1000), {
    maxBytes: 16 + 0xffff,
  });
  assertEquals(header.source, tcp("127.0.0.2", 1));
});

Deno.test("encodeProxyHeader() writes what parseProxyHeader() reads back", () => {
  const headers: ProxyHeader[] = [
    {
      version: 1,
      command: "proxy",
      source: tcp("192.0.2.1", 1),
      destination: tcp("192.0.2.2", 65535),
    },
    {
      version: 2,
      command: "proxy",
      source: tcp("2001:db8::1", 0),
      destination: tcp("::1", 8080),
    },
    { version: 2, command: "local" },
    { version: 1, command: "proxy" },
  ];
  for (const header of headers) {
    const bytes = encodeProxyHeader(header);
    assertEquals(parseProxyHeader(bytes), { header, length: bytes.length });
  }
  // Mixed families become IPv6, the IPv4 one mapped, as Deno shows it.
  const mixed = parseProxyHeader(encodeProxyHeader({
    version: 1,
    command: "proxy",
    source: tcp("192.0.2.1", 1),
    destination: tcp("2001:db8::1", 2),
  }))!;
  assertEquals(mixed.header.source?.hostname, "::ffff:192.0.2.1");
  const withTlv = encodeProxyHeader({ version: 2, command: "local" }, [
    { type: 0x04, value: new Uint8Array(3) },
  ]);
  assertEquals(withTlv, hex(SIGNATURE + "20 00 0006 04 0003 000000"));
  assertThrows(
    () =>
      encodeProxyHeader({
        version: 1,
        command: "proxy",
        source: tcp("example.com", 1),
        destination: tcp("::1", 2),
      }),
    TypeError,
  );
  assertThrows(
    () =>
      encodeProxyHeader({
        version: 2,
        command: "proxy",
        source: tcp("::1", 70000),
        destination: tcp("::1", 2),
      }),
    RangeError,
  );
});

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("parseProxyHeader() and readProxyHeader() agree on 10,000 random and mutated inputs, throwing only ProxyProtocolError", async () => {
  const seed = 0x5eed14;
  const next = random(seed);
  const int = (n: number) => Math.floor(next() * n);
  const seeds = VALID_STREAMS.map(([, bytes]) => bytes);
  const alphabet = text("PROXY TCP46UNKOW0123456789abcdef:.\r\n ");
  let valid = 0;
  for (let i = 0; i < 10_000; i++) {
    let bytes: Uint8Array;
    const kind = i % 4;
    if (kind === 0) {
      // Random bytes behind a random piece of a real signature.
      const prefix = seeds[int(seeds.length)].subarray(0, int(17));
      const tail = Uint8Array.from({ length: int(120) }, () => int(256));
      bytes = concat(prefix, tail);
    } else if (kind === 1) {
      // Text from the v1 alphabet after "PROXY ".
      const tail = Uint8Array.from(
        { length: int(110) },
        () => alphabet[int(alphabet.length)],
      );
      bytes = concat(text("PROXY "), tail);
    } else {
      // A valid header with a few bytes flipped, dropped or inserted.
      bytes = Uint8Array.from(seeds[int(seeds.length)]);
      for (let m = 1 + int(3); m > 0; m--) {
        const at = int(bytes.length);
        const op = int(3);
        if (op === 0) bytes[at] ^= 1 << int(8);
        else if (op === 1) {
          bytes = concat(bytes.subarray(0, at), bytes.subarray(at + 1));
        } else {
          bytes = concat(
            bytes.subarray(0, at),
            Uint8Array.of(
              kind === 2 ? int(256) : alphabet[int(alphabet.length)],
            ),
            bytes.subarray(at),
          );
        }
      }
    }
    const context = `seed ${seed}, case ${i}: ${JSON.stringify([...bytes])}`;
    let parsed;
    try {
      parsed = outcome(bytes);
    } catch (error) {
      throw new Error(`${context}: ${error}`);
    }
    let read;
    try {
      read = { ok: await readProxyHeader(fakeConn(bytes, 1 + int(20))) };
    } catch (error) {
      if (!(error instanceof ProxyProtocolError)) {
        throw new Error(`${context}: ${error}`);
      }
      read = { reason: error.reason };
    }
    if (parsed.ok) {
      valid++;
      const { header, length } = parsed.ok;
      assert(length <= bytes.length, context);
      assertEquals(read, { ok: header }, context);
      // What was accepted holds together: its addresses write back the same.
      if (header.source) {
        const again = parseProxyHeader(encodeProxyHeader(header));
        assertEquals(again?.header, header, context);
      }
    } else if (parsed.reason) {
      assertEquals(read, { reason: parsed.reason }, context);
    } else {
      // A valid beginning: the stream ends inside the header.
      assert(
        read.reason === "truncated" || read.reason === "missing",
        context,
      );
    }
  }
  // Mutations leave some headers valid; the test covers both outcomes.
  assert(valid > 100 && valid < 9_000, `${valid} valid`);
});
