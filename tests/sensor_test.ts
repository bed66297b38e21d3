// The sensor in the library: the greeting pause and early talkers, capture,
// probe kinds, and address masks; on real sockets on port 0.
import {
  assert,
  assertEquals,
  assertNotEquals,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  type ConnectionRecord,
  createAddressMask,
  encodeGreeting,
  identifyProbe,
  parseCidr,
  serveGreeting,
  type ServeGreetingOptions,
} from "../mod.ts";
import { truncateAddress } from "../lib/net/address_privacy.ts";
import { escapeBytes } from "../lib/net/escape.ts";
import { createConnectionTable } from "../lib/server/connection_table.ts";
import { createServerStats } from "../lib/server/stats.ts";
import {
  formatJsonConnectionLine,
  formatTextSensedLine,
} from "../lib/observe/log_format.ts";
import { renderMetrics } from "../lib/observe/metrics.ts";
import { createDurationHistogram } from "../lib/observe/metrics.ts";

const encoder = new TextEncoder();
const GREETING = encodeGreeting("Connection Established");

/** A TLS 1.2-style ClientHello record, with an SNI extension if `name`. */
function clientHello(name?: string): Uint8Array {
  const ext: number[] = [];
  // A padding-like extension first, so the parser must walk past it.
  ext.push(0x00, 0x17, 0x00, 0x00);
  if (name !== undefined) {
    const host = [...encoder.encode(name)];
    const entry = [0x00, host.length >> 8, host.length & 0xff, ...host];
    const list = [entry.length >> 8, entry.length & 0xff, ...entry];
    ext.push(0x00, 0x00, list.length >> 8, list.length & 0xff, ...list);
  }
  const body = [
    0x03,
    0x03,
    ...new Array(32).fill(7),
    0x00, // session id
    0x00,
    0x02,
    0x13,
    0x01, // one cipher suite
    0x01,
    0x00, // no compression
    ext.length >> 8,
    ext.length & 0xff,
    ...ext,
  ];
  const handshake = [0x01, 0x00, body.length >> 8, body.length & 0xff, ...body];
  return Uint8Array.from([
    0x16,
    0x03,
    0x01,
    handshake.length >> 8,
    handshake.length & 0xff,
    ...handshake,
  ]);
}

Deno.test("identifyProbe() names TLS with its SNI, HTTP, SSH, RDP, SMB, PROXY and the rest", () => {
  assertEquals(identifyProbe(clientHello("example.test")), {
    kind: "tls",
    serverName: "example.test",
  });
  assertEquals(identifyProbe(clientHello()), { kind: "tls" });
  // Cut short inside the extensions: still TLS, no SNI invented.
  assertEquals(identifyProbe(clientHello("example.test").subarray(0, 60)), {
    kind: "tls",
  });
  assertEquals(
    identifyProbe(
      encoder.encode(
        "POST /login?next=%2F HTTP/1.1\r\nHost: x\r\nUser-Agent: Bot/2\r\n\r\n",
      ),
    ),
    {
      kind: "http",
      method: "POST",
      path: "/login",
      query: "next=%2F",
      version: "1.1",
      userAgent: "Bot/2",
    },
  );
  assertEquals(identifyProbe(encoder.encode("PRI * HTTP/2.0\r\n\r\nSM")), {
    kind: "http",
    method: "PRI",
    path: "*",
    version: "2.0",
  });
  assertEquals(identifyProbe(encoder.encode("SSH-2.0-libssh_0.9\r\n")), {
    kind: "ssh",
    version: "SSH-2.0-libssh_0.9",
  });
  // nmap's TerminalServer probe: a TPKT-wrapped X.224 connection request.
  assertEquals(
    identifyProbe(Uint8Array.of(3, 0, 0, 11, 6, 0xe0, 0, 0, 0, 0, 0)).kind,
    "rdp",
  );
  assertEquals(
    identifyProbe(Uint8Array.of(0, 0, 0, 0x85, 0xff, 0x53, 0x4d, 0x42, 0x72))
      .kind,
    "smb",
  );
  assertEquals(
    identifyProbe(encoder.encode("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")).kind,
    "proxy",
  );
  assertEquals(
    identifyProbe(
      Uint8Array.of(
        13,
        10,
        13,
        10,
        0,
        13,
        10,
        0x51,
        0x55,
        0x49,
        0x54,
        10,
        0x21,
      ),
    ).kind,
    "proxy",
  );
  assertEquals(
    identifyProbe(encoder.encode("OPTIONS / RTSP/1.0\r\n")).kind,
    "unknown",
  );
  assertEquals(identifyProbe(encoder.encode("hello\r\n")).kind, "unknown");
  assertEquals(identifyProbe(new Uint8Array(0)).kind, "unknown");
});

Deno.test("truncateAddress() keeps an IPv4 /24 and an IPv6 /48", () => {
  assertEquals(truncateAddress("192.0.2.77"), "192.0.2.0/24");
  assertEquals(truncateAddress("::ffff:192.0.2.77"), "192.0.2.0/24");
  assertEquals(truncateAddress("2001:db8:1:2:3::9"), "2001:db8:1::/48");
  assertEquals(truncateAddress("::1"), "::/48");
});

Deno.test("createAddressMask() hash is keyed, stable, drops the port and refuses short keys", async () => {
  const key = encoder.encode("0123456789abcdef");
  const mask = await createAddressMask({ mode: "hash", key });
  const a = { transport: "tcp" as const, hostname: "127.1.2.3", port: 5 };
  const token = mask(a).hostname;
  assert(/^[0-9a-f]{16}$/.test(token), token);
  assertEquals(mask({ ...a, port: 6 }), { ...a, hostname: token, port: 0 });
  // One address, one token, however it is spelt.
  assertEquals(mask({ ...a, hostname: "::ffff:127.1.2.3" }).hostname, token);
  assertNotEquals(mask({ ...a, hostname: "127.1.2.4" }).hostname, token);
  // HMAC-SHA-256 of the address's bytes, its first 8 bytes: as WebCrypto
  // computes it, and the same after 5,000 other clients filled the cache.
  const hmac = new Uint8Array(
    await crypto.subtle.sign(
      "HMAC",
      await crypto.subtle.importKey(
        "raw",
        key,
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      ),
      Uint8Array.of(127, 1, 2, 3),
    ),
  );
  assertEquals(
    token,
    [...hmac.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0"))
      .join(""),
  );
  for (let i = 0; i < 5_000; i++) {
    mask({ ...a, hostname: `10.0.${i >> 8}.${i & 255}` });
  }
  assertEquals(mask(a).hostname, token);
  const other = await createAddressMask({
    mode: "hash",
    key: encoder.encode("0123456789abcdeF"),
  });
  assertNotEquals(other(a).hostname, token);
  await assertRejects(
    () => createAddressMask({ mode: "hash", key: new Uint8Array(15) }),
    RangeError,
    "at least 16 bytes",
  );
  await assertRejects(
    () =>
      createAddressMask(
        { mode: "blur" } as unknown as Parameters<typeof createAddressMask>[0],
      ),
    TypeError,
  );
});

Deno.test("escapeBytes() leaves no control byte and reads back byte for byte", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const text = escapeBytes(all);
  assert(/^[\x20-\x7e]*$/.test(text));
  // Read back: JSON's escapes are a superset once \x is made \u00.
  const back = JSON.parse(`"${text.replace(/\\x/g, "\\u00")}"`) as string;
  assertEquals(Uint8Array.from(back, (c) => c.charCodeAt(0)), all);
});

Deno.test("connection table pause wakes on the sweep once due, and a cancelled one never", () => {
  let time = 0;
  const table = createConnectionTable({
    timeout: 0,
    linger: 0,
    pause: 100,
    onRelease: () => {},
    now: () => time,
  });
  const woken: string[] = [];
  table.pause(() => woken.push("a"));
  time = 50;
  const b = table.pause(() => woken.push("b"));
  table.sweep();
  assertEquals(woken, []);
  time = 100;
  table.cancelPause(b);
  table.sweep();
  assertEquals(woken, ["a"]);
  time = 1000;
  table.sweep();
  assertEquals(woken, ["a"]);
  table.stop();
});

async function connect(port: number): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: "127.0.0.1", port });
}

async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: number[] = [];
  const buffer = new Uint8Array(1024);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return Uint8Array.from(chunks);
    chunks.push(...buffer.subarray(0, n));
  }
}

function sensedServer(options: ServeGreetingOptions) {
  const records: ConnectionRecord[] = [];
  let next = Promise.withResolvers<void>();
  const server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    ...options,
    onClose(record) {
      records.push(record);
      next.resolve();
      next = Promise.withResolvers<void>();
    },
  });
  return {
    server,
    records,
    async closed(count: number) {
      while (records.length < count) await next.promise;
    },
  };
}

Deno.test("serveGreeting() greetPause refuses an early talker and greets a quiet client after the pause", async () => {
  const { server, records, closed } = sensedServer({
    greetPause: 300,
    capture: 64,
    linger: 200,
  });
  await using _ = server;
  const early = await connect(server.addr.port);
  await early.write(encoder.encode("GET /x HTTP/1.0\r\n\r\n"));
  assertEquals((await readToEnd(early)).length, 0);
  early.close();
  await closed(1);
  assertEquals(records[0].outcome, "refused");
  assertEquals(records[0].reason, "early_talker");
  assertEquals(records[0].earlyTalker, true);
  assertEquals(records[0].probe, {
    kind: "http",
    method: "GET",
    path: "/x",
    version: "1.0",
  });
  assertEquals(
    new TextDecoder().decode(records[0].captured),
    "GET /x HTTP/1.0\r\n\r\n",
  );

  const quiet = await connect(server.addr.port);
  const start = performance.now();
  const first = new Uint8Array(64);
  const n = await quiet.read(first);
  const waited = performance.now() - start;
  assertEquals(first.subarray(0, n!), GREETING);
  assert(waited >= 280, `greeted after ${waited} ms`);
  // Then what it says after the greeting is captured too.
  await quiet.write(encoder.encode("SSH-2.0-late\r\n"));
  quiet.close();
  await closed(2);
  assertEquals(records[1].outcome, "greeted");
  assertEquals(records[1].earlyTalker, false);
  assertEquals(records[1].probe?.kind, "ssh");
  assertEquals(
    new TextDecoder().decode(records[1].captured),
    "SSH-2.0-late\r\n",
  );
  assertEquals(server.stats.earlyTalkers, 1);
  assertEquals(server.stats.refused.early_talker, 1);
  assertEquals(server.stats.probes.http, 1);
  assertEquals(server.stats.probes.ssh, 1);
});

Deno.test("serveGreeting() earlyTalkers greet still greets an early talker, marked", async () => {
  const { server, records, closed } = sensedServer({
    greetPause: 2_000,
    earlyTalkers: "greet",
  });
  await using _ = server;
  const conn = await connect(server.addr.port);
  const start = performance.now();
  await conn.write(clientHello("sni.example"));
  const got = await readToEnd(conn);
  // Greeted as soon as it talked, not after the whole pause.
  assert(performance.now() - start < 1_500);
  assertEquals(got, GREETING);
  conn.close();
  await closed(1);
  assertEquals(records[0].outcome, "greeted");
  assertEquals(records[0].earlyTalker, true);
  assertEquals(records[0].probe, { kind: "tls", serverName: "sni.example" });
  // No capture asked: nothing kept.
  assertEquals("captured" in records[0], false);
});

Deno.test("serveGreeting() capture keeps at most its bytes of a client that sends more", async () => {
  const { server, records, closed } = sensedServer({
    capture: 16,
    linger: 500,
  });
  await using _ = server;
  const conn = await connect(server.addr.port);
  assertEquals(await readToEnd(conn), GREETING);
  conn.close();
  await closed(1);
  // A client that sent nothing: an empty capture, no probe.
  assertEquals(records[0].captured, new Uint8Array(0));
  assertEquals(records[0].probe, undefined);

  const big = await connect(server.addr.port);
  await big.write(new Uint8Array(10_000).fill(0x41));
  await readToEnd(big);
  big.close();
  await closed(2);
  assertEquals(records[1].captured, new Uint8Array(16).fill(0x41));
  assertEquals(records[1].probe?.kind, "unknown");
  assertEquals(records[1].earlyTalker, false);
});

Deno.test("serveGreeting() without the sensor records nothing of it", async () => {
  const { server, records, closed } = sensedServer({});
  await using _ = server;
  const conn = await connect(server.addr.port);
  await conn.write(encoder.encode("GET / HTTP/1.1\r\n\r\n"));
  assertEquals(await readToEnd(conn), GREETING);
  conn.close();
  await closed(1);
  assertEquals(
    Object.keys(records[0]).sort(),
    [
      "bytesWritten",
      "duration",
      "greetingLength",
      "localAddr",
      "outcome",
      "reason",
      "remoteAddr",
      "startTime",
    ],
  );
  assertEquals(server.stats.probes.http, 0);
});

Deno.test("serveGreeting() maskAddress hides the client from observers, not from admission", async () => {
  const seen: Deno.Addr[] = [];
  const { server, records, closed } = sensedServer({
    maskAddress: await createAddressMask({ mode: "truncate" }),
    // Admission sees the real address: a mask would not match this.
    allow: [parseCidr("127.0.0.1/32")],
    onConnection: (addr) => seen.push(addr),
  });
  await using _ = server;
  const conn = await connect(server.addr.port);
  assertEquals(await readToEnd(conn), GREETING);
  conn.close();
  await closed(1);
  const masked: Deno.Addr = {
    transport: "tcp",
    hostname: "127.0.0.0/24",
    port: 0,
  };
  assertEquals(records[0].remoteAddr, masked);
  assertEquals(seen, [masked]);
  // A reload swaps the mask; undefined shows addresses whole again.
  server.reload({ maskAddress: undefined });
  const again = await connect(server.addr.port);
  await readToEnd(again);
  again.close();
  await closed(2);
  assertEquals((records[1].remoteAddr as Deno.NetAddr).hostname, "127.0.0.1");
});

Deno.test("serveGreeting() refuses sensor options out of range", () => {
  const base = { hostname: "127.0.0.1", port: 0 };
  assertThrows(
    () => serveGreeting({ ...base, greetPause: 10_000 }),
    RangeError,
    "greetPause",
  );
  assertThrows(() => serveGreeting({ ...base, capture: 0 }), RangeError);
  assertThrows(() => serveGreeting({ ...base, capture: 4097 }), RangeError);
  assertThrows(
    () => serveGreeting({ ...base, earlyTalkers: "greet" }),
    RangeError,
    "greetPause",
  );
  assertThrows(
    () =>
      serveGreeting({
        ...base,
        greetPause: 5,
        earlyTalkers: "drop" as "greet",
      }),
    RangeError,
  );
});

const SENSED: ConnectionRecord = {
  remoteAddr: { transport: "tcp", hostname: "192.0.2.0/24", port: 0 },
  localAddr: { transport: "tcp", hostname: "127.0.0.1", port: 8080 },
  outcome: "refused",
  reason: "early_talker",
  bytesWritten: 0,
  greetingLength: 0,
  startTime: 0,
  duration: 1,
  earlyTalker: true,
  probe: {
    kind: "http",
    method: "GET",
    path: "/a\nb",
    version: "1.1",
    userAgent: "x\x1b[2J",
  },
  captured: encoder.encode("GET /a\nb HTTP/1.1\r\nUser-Agent: x\x1b[2J\r\n"),
};

Deno.test("formatTextSensedLine() is one line without raw control bytes, the port dropped", () => {
  const line = formatTextSensedLine(SENSED);
  assertEquals(
    line,
    'Connection received from 192.0.2.0/24 outcome=refused reason=early_talker early_talker=yes probe=http method="GET" path="/a\\nb" version="1.1" user_agent="x\\x1b[2J" captured="GET /a\\nb HTTP/1.1\\r\\nUser-Agent: x\\x1b[2J\\r\\n"',
  );
});

Deno.test("formatJsonConnectionLine() carries the sensed fields, capture as text and base64", () => {
  const line = JSON.parse(formatJsonConnectionLine(SENSED));
  assertEquals(line["client.address"], "192.0.2.0/24");
  assertEquals(line["client.port"], null);
  assertEquals(line["greeter.early_talker"], true);
  assertEquals(line["greeter.probe.kind"], "http");
  assertEquals(line["http.request.method"], "GET");
  assertEquals(line["url.path"], "/a\nb");
  assertEquals(line["http.version"], "1.1");
  assertEquals(line["user_agent.original"], "x\x1b[2J");
  assertEquals(
    Uint8Array.from(
      atob(line["greeter.capture.base64"]),
      (c) => c.charCodeAt(0),
    ),
    SENSED.captured,
  );
  assertEquals(line["greeter.capture.bytes"], SENSED.captured!.length);
  // deno-lint-ignore no-control-regex
  assert(!/[\x00-\x1f]/.test(line["greeter.capture.text"]));
});

Deno.test("renderMetrics() has the early talkers and every probe kind", () => {
  const stats = createServerStats();
  stats.earlyTalkers = 3;
  stats.probes.tls = 2;
  const text = renderMetrics(stats, createDurationHistogram());
  assert(text.includes("\ngreeter_early_talkers_total 3\n"));
  assert(text.includes('\ngreeter_client_probes_total{kind="tls"} 2\n'));
  assert(text.includes('\ngreeter_client_probes_total{kind="unknown"} 0\n'));
});
