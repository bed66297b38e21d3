// serveGreeting behind a PROXY protocol balancer, with this test as the
// balancer: the header's client is what admission, templates and records
// see; untrusted peers and bad or late headers are refused.
import { assertEquals } from "@std/assert";
import { encodeProxyHeader } from "./_proxy_header.ts";
import { parseCidr } from "../lib/net/ip.ts";
import type { ConnectionRecord } from "../lib/server/options.ts";
import { serveGreeting } from "../lib/server/serve_greeting.ts";
import { compileTemplate } from "../lib/greeting/template.ts";
import { waitUntil } from "./_helpers.ts";

const GREETING = "Connection Established\r\n";
const decoder = new TextDecoder();

/** Connects, sends `header`, and reads until the server closes. */
async function through(port: number, header?: Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    if (header) await conn.write(header);
    let text = "";
    const buffer = new Uint8Array(256);
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return text;
      text += decoder.decode(buffer.subarray(0, n));
    }
  } finally {
    conn.close();
  }
}

function v1(client: string, port: number): Uint8Array {
  return encodeProxyHeader({
    version: 1,
    command: "proxy",
    source: { transport: "tcp", hostname: client, port },
    destination: { transport: "tcp", hostname: "127.0.0.1", port: 8080 },
  });
}

function v2(client: string, port: number): Uint8Array {
  return encodeProxyHeader({
    version: 2,
    command: "proxy",
    source: { transport: "tcp", hostname: client, port },
    destination: { transport: "tcp", hostname: "127.0.0.1", port: 8080 },
  });
}

Deno.test("serveGreeting() proxyProtocol greets the client a v1 or v2 header names, in records and templates", async () => {
  const records: ConnectionRecord[] = [];
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    proxyProtocol: { from: [parseCidr("127.0.0.0/8")] },
    greeting: compileTemplate("Hello {remote_addr}"),
    onClose: (record) => records.push(record),
  });
  const port = server.addr.port;
  assertEquals(
    await through(port, v1("192.0.2.7", 4242)),
    "Hello 192.0.2.7\r\n",
  );
  assertEquals(
    await through(port, v2("2001:db8::1", 4243)),
    "Hello 2001:db8::1\r\n",
  );
  // A LOCAL header is the balancer's own health check: it is greeted.
  assertEquals(
    await through(port, encodeProxyHeader({ version: 2, command: "local" })),
    "Hello 127.0.0.1\r\n",
  );
  await waitUntil(() => records.length === 3, 2_000, "three records");
  const seen = records.map((r) => [
    r.outcome,
    (r.remoteAddr as Deno.NetAddr).hostname,
    (r.peerAddr as Deno.NetAddr | undefined)?.hostname,
  ]);
  assertEquals(seen, [
    ["greeted", "192.0.2.7", "127.0.0.1"],
    ["greeted", "2001:db8::1", "127.0.0.1"],
    // LOCAL: the balancer itself is the client, and there is no other peer.
    ["greeted", "127.0.0.1", undefined],
  ]);
  assertEquals(
    records.slice(0, 2).map((r) => (r.remoteAddr as Deno.NetAddr).port),
    [4242, 4243],
  );
});

Deno.test("serveGreeting() proxyProtocol applies maxPerIp and deny to the named client, not the balancer", async () => {
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    proxyProtocol: { from: [parseCidr("127.0.0.1")] },
    deny: [parseCidr("198.51.100.0/24")],
    maxPerIp: 1,
    linger: 5_000,
  });
  const port = server.addr.port;
  // One client holds its place: it reads its greeting but does not close.
  const held = await Deno.connect({ hostname: "127.0.0.1", port });
  await held.write(v1("192.0.2.1", 1));
  const buffer = new Uint8Array(64);
  let got = 0;
  while (got < GREETING.length) got += (await held.read(buffer)) ?? 0;
  try {
    // The same client again: refused; another client through the same
    // balancer: served; a denied client: refused.
    assertEquals(await through(port, v2("192.0.2.1", 2)), "");
    assertEquals(await through(port, v2("192.0.2.2", 3)), GREETING);
    assertEquals(await through(port, v2("198.51.100.9", 4)), "");
    assertEquals(server.stats.refused.per_ip_limit, 1);
    assertEquals(server.stats.refused.denied, 1);
  } finally {
    held.close();
  }
});

Deno.test("serveGreeting() proxyProtocol refuses untrusted peers and missing, malformed or late headers", async () => {
  const records: ConnectionRecord[] = [];
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    proxyProtocol: { from: [parseCidr("127.0.0.2")], timeout: 300 },
    onClose: (record) => records.push(record),
  });
  const port = server.addr.port;
  // This test connects from 127.0.0.1, which is not a trusted balancer.
  assertEquals(await through(port, v1("192.0.2.7", 1)), "");
  await waitUntil(() => records.length === 1, 2_000, "the refusal");
  assertEquals(server.stats.refused.proxy_untrusted, 1);

  await using trusting = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    proxyProtocol: { from: [parseCidr("127.0.0.1")], timeout: 300 },
    onClose: (record) => records.push(record),
  });
  const p = trusting.addr.port;
  const started = performance.now();
  assertEquals(await through(p), "", "no header: cut at the header timeout");
  const waited = performance.now() - started;
  assertEquals(waited >= 250 && waited < 2_000, true, `${waited} ms`);
  assertEquals(
    await through(p, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n")),
    "",
  );
  await waitUntil(() => records.length === 3, 2_000, "two more refusals");
  assertEquals(trusting.stats.refused.proxy_header, 2);
  assertEquals(records.slice(1).map((r) => r.reason), [
    "proxy_timeout",
    "proxy_malformed",
  ]);
  assertEquals(trusting.stats.active, 0);
});

Deno.test("serveGreeting() proxyProtocol needs its trusted peers", () => {
  let error: unknown;
  try {
    serveGreeting({
      hostname: "127.0.0.1",
      port: 0,
      proxyProtocol: { from: [] },
    });
  } catch (caught) {
    error = caught;
  }
  assertEquals(error instanceof RangeError, true);
  assertEquals((error as { option?: string }).option, "proxyProtocol.from");
});

/**
 * A raw v2 PROXY header with family/protocol byte `fp`: 192.0.2.9 (IPv4),
 * 2001:db8::9 (IPv6) or a Unix path as the source, by its family.
 */
function v2Raw(fp: number): Uint8Array {
  const family = fp >> 4;
  const addresses = family === 1
    ? [192, 0, 2, 9, 127, 0, 0, 1, 0x04, 0xd2, 0x1f, 0x90]
    : family === 2
    ? [
      ...[0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 9],
      ...[...new Array(15).fill(0), 1],
      ...[0x04, 0xd2, 0x1f, 0x90],
    ]
    : family === 3
    ? new Array(216).fill(0).map((_, i) => i === 0 || i === 108 ? 0x2f : 0)
    : [];
  return new Uint8Array([
    ...[0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a],
    0x21,
    fp,
    addresses.length >> 8,
    addresses.length & 0xff,
    ...addresses,
  ]);
}

Deno.test("serveGreeting() proxyProtocol: under every v2 family and protocol, the rules see the client the server serves; a datagram client is refused", async () => {
  const RULES = {
    deny: { deny: [parseCidr("192.0.2.0/24"), parseCidr("2001:db8::/32")] },
    allow: { allow: [parseCidr("127.0.0.0/8")] },
    maxPerIp: { maxPerIp: 1 },
    ratePerIp: { ratePerIp: 1 },
  };
  for (const fp of [0x00, 0x01, 0x02, 0x10, 0x11, 0x12, 0x20, 0x21, 0x22]) {
    // Who the server serves: the named client for a stream header, the
    // balancer itself where the header names nobody, none for a datagram.
    const named = (fp >> 4) !== 0 && (fp & 0x0f) === 1;
    const datagram = (fp >> 4) !== 0 && (fp & 0x0f) === 2;
    for (const [rule, options] of Object.entries(RULES)) {
      const records: ConnectionRecord[] = [];
      await using server = serveGreeting({
        hostname: "127.0.0.1",
        port: 0,
        proxyProtocol: { from: [parseCidr("127.0.0.1")] },
        linger: 5_000,
        onClose: (record) => records.push(record),
        ...options,
      });
      const port = server.addr.port;
      // The first holds its place (it does not close) for maxPerIp.
      const held = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await held.write(v2Raw(fp));
        const buffer = new Uint8Array(64);
        let first = "";
        while (true) {
          const n = await held.read(buffer).catch(() => null);
          if (n === null) break;
          first += decoder.decode(buffer.subarray(0, n));
          if (first === GREETING) break;
        }
        const second = await through(port, v2Raw(fp));
        const label = `0x${fp.toString(16).padStart(2, "0")} ${rule}`;
        if (datagram) {
          assertEquals([first, second], ["", ""], label);
          assertEquals(server.stats.refused.proxy_header, 2, label);
          continue;
        }
        const expected = rule === "deny"
          ? named ? ["", ""] : [GREETING, GREETING]
          : rule === "allow"
          ? named ? ["", ""] : [GREETING, GREETING]
          : [GREETING, ""];
        assertEquals([first, second], expected, label);
      } finally {
        held.close();
      }
      await waitUntil(() => records.length === 2, 2_000, "two records");
      if (datagram) {
        assertEquals(
          records.map((r) => r.reason),
          ["proxy_unsupported", "proxy_unsupported"],
        );
      }
    }
  }
});
