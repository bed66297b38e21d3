// The PROXY protocol against the real thing: Debian's HAProxy runs the
// shipped deploy/haproxy/haproxy.cfg on loopback in front of two small
// backends that read its headers with readProxyHeader, and clients that
// bind their own 127.x.y.z (and ::1) source addresses connect through it.
// These backends read the headers themselves, so what is checked here is
// the parser and the config; tests/fleet_test.ts puts greeter itself
// (--proxy-protocol) behind the same config.
import { assert, assertEquals, assertMatch } from "@std/assert";
import net from "node:net";
import { DEFAULT_BYTES, waitUntil } from "./_helpers.ts";
import {
  CONFIG,
  freePort,
  haproxy,
  shippedConfig,
  skipped,
} from "./_haproxy.ts";
import {
  type ProxyHeader,
  readProxyHeader,
} from "../lib/net/proxy_protocol.ts";
import { encodeProxyHeader } from "./_proxy_header.ts";

const decoder = new TextDecoder();

/** One connection a backend took: the header, its exact bytes, and the rest. */
interface Seen {
  header: ProxyHeader;
  raw: Uint8Array;
  /** What the client sent after the header, read to the end. */
  after: string;
}

/** A loopback backend that reads a PROXY header, greets, and reads the rest. */
function backend() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: Seen[] = [];
  const errors: unknown[] = [];
  const handlers = new Set<Promise<void>>();
  async function handle(conn: Deno.Conn) {
    const raw: number[] = [];
    // Bounded: HAProxy closes each connection within a second here.
    const guard = setTimeout(() => conn.close(), 5_000);
    try {
      const header = await readProxyHeader({
        async read(p) {
          const n = await conn.read(p);
          if (n) raw.push(...p.subarray(0, n));
          return n;
        },
      });
      const length = raw.length;
      await conn.write(DEFAULT_BYTES);
      const buffer = new Uint8Array(1024);
      try {
        for (let n; (n = await conn.read(buffer)) !== null;) {
          raw.push(...buffer.subarray(0, n));
        }
      } catch (error) {
        // HAProxy ends its health checks with a reset once the greeting
        // matched; the bytes read until then still count.
        if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
      }
      seen.push({
        header,
        raw: Uint8Array.from(raw.slice(0, length)),
        after: decoder.decode(Uint8Array.from(raw.slice(length))),
      });
    } catch (error) {
      errors.push(error);
    } finally {
      clearTimeout(guard);
      try {
        conn.close();
      } catch {
        // The guard closed it.
      }
    }
  }
  const accepting = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (
          error instanceof Deno.errors.BadResource ||
          error instanceof Deno.errors.Interrupted
        ) return; // closed
        // A client gone before its accept (HAProxy's checks reset at once;
        // Deno then fails the accept with NotConnected): the next one.
        if (
          error instanceof Deno.errors.NotConnected ||
          error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.ConnectionAborted
        ) continue;
        throw error;
      }
      const handler = handle(conn);
      handlers.add(handler);
      handler.finally(() => handlers.delete(handler));
    }
  })();
  return {
    port: listener.addr.port,
    seen,
    errors,
    async close() {
      listener.close();
      await accepting;
      await Promise.all(handlers);
    },
  };
}

/** Connects from `localAddress`, says hello, reads the greeting to the end. */
function client(host: string, port: number, localAddress: string) {
  return new Promise<{ localPort: number; received: string }>(
    (resolve, reject) => {
      const socket = net.connect({ host, port, localAddress });
      const chunks: Uint8Array[] = [];
      let localPort = 0;
      socket.setTimeout(5_000, () => socket.destroy(new Error("timed out")));
      socket.on("connect", () => {
        localPort = socket.localPort!;
        socket.write(`hello from ${localAddress}`);
      });
      socket.on("data", (chunk: Uint8Array) => {
        chunks.push(chunk);
        if (
          decoder.decode(Buffer.concat(chunks)) === "Connection Established\r\n"
        ) {
          socket.end();
        }
      });
      socket.on("error", reject);
      socket.on("close", () =>
        resolve({
          localPort,
          received: decoder.decode(Buffer.concat(chunks)),
        }));
    },
  );
}

/**
 * Runs HAProxy with `config` in front of two backends, waits until both
 * have passed two health checks, runs `clients`, and stops it. A frontend
 * port taken in the meantime is retried with new ports.
 */
async function throughHaproxy<T>(
  config: string,
  clients: (ports: { ipv4: number; ipv6: number }) => Promise<T>,
) {
  const dir = await Deno.makeTempDir({ prefix: "greeter-haproxy-" });
  const backends = [backend(), backend()];
  try {
    const file = `${dir}/haproxy.cfg`;
    await Deno.writeTextFile(file, config);
    for (let attempt = 1;; attempt++) {
      const ports = { ipv4: freePort("127.0.0.1"), ipv6: freePort("::1") };
      const process = new Deno.Command("haproxy", {
        args: ["-db", "-f", file],
        env: {
          GREETER_BIND: `127.0.0.1:${ports.ipv4},[::1]:${ports.ipv6}`,
          GREETER_1: `127.0.0.1:${backends[0].port}`,
          GREETER_2: `127.0.0.1:${backends[1].port}`,
          GREETER_CHECK_INTERVAL: "100ms",
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const output = process.output();
      let exited = false;
      process.status.then(() => exited = true);
      const checks = (b: ReturnType<typeof backend>) =>
        b.seen.filter((s) => isCheck(s, b.port)).length;
      try {
        await waitUntil(
          () => exited || backends.every((b) => checks(b) >= 2),
          10_000,
          "two passed health checks on each backend",
        );
      } catch (error) {
        process.kill("SIGKILL");
        await output;
        throw error;
      }
      if (exited) {
        const { stderr } = await output;
        const log = decoder.decode(stderr);
        if (attempt < 3 && /cannot bind/i.test(log)) continue;
        throw new Error(`haproxy exited early:\n${log}`);
      }
      try {
        const result = await clients(ports);
        return { result, backends, ports };
      } finally {
        process.kill("SIGTERM");
        await output;
      }
    }
  } finally {
    for (const b of backends) await b.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** HAProxy's health checks: LOCAL in v2; in v1, a line about the check itself. */
function isCheck(seen: Seen, backendPort: number): boolean {
  return seen.header.command === "local" ||
    seen.header.destination?.port === backendPort;
}

const CLIENTS = [
  { from: "127.0.0.2", to: "127.0.0.1" },
  { from: "127.0.0.3", to: "127.0.0.1" },
  { from: "127.1.2.3", to: "127.0.0.1" },
  { from: "::1", to: "::1" },
];

async function checkClientsSeen(
  version: 1 | 2,
  edit: (s: string) => string,
  defaults = "",
) {
  const { result, backends, ports } = await throughHaproxy(
    await shippedConfig(edit, defaults),
    async (ports) => {
      const results = [];
      for (const { from, to } of CLIENTS) {
        const port = to === "::1" ? ports.ipv6 : ports.ipv4;
        results.push(await client(to, port, from));
      }
      return results;
    },
  );
  for (const b of backends) assertEquals(b.errors, []);
  const clientsSeen = backends.flatMap((b) =>
    b.seen.filter((s) => !isCheck(s, b.port))
  );
  assertEquals(clientsSeen.length, CLIENTS.length);
  // Round robin: both backends served clients.
  for (const b of backends) assert(b.seen.some((s) => !isCheck(s, b.port)));
  CLIENTS.forEach(({ from, to }, i) => {
    const { localPort, received } = result[i];
    assertEquals(received, "Connection Established\r\n", from);
    const seen = clientsSeen.filter((s) =>
      s.header.source?.hostname === from && s.header.source.port === localPort
    );
    assertEquals(seen.length, 1, `${from}:${localPort} seen once`);
    const { header, after } = seen[0];
    assertEquals(header, {
      version,
      command: "proxy",
      source: { transport: "tcp", hostname: from, port: localPort },
      destination: {
        transport: "tcp",
        hostname: to,
        port: to === "::1" ? ports.ipv6 : ports.ipv4,
      },
    });
    // The client's first bytes were left on the connection, untouched.
    assertEquals(after, `hello from ${from}`);
  });
  return { clientsSeen, backends };
}

Deno.test({
  name: "deploy/haproxy/haproxy.cfg passes haproxy -c" + skipped,
  ignore: !haproxy,
  async fn() {
    const check = (env: Record<string, string>) =>
      new Deno.Command("haproxy", {
        args: ["-c", "-f", CONFIG],
        env,
        stdin: "null",
      }).output();
    const valid = await check({});
    assertEquals(valid.code, 0, decoder.decode(valid.stderr));
    assertMatch(decoder.decode(valid.stdout), /Configuration file is valid/);
    // The same check refuses a broken value, so passing means something.
    const broken = await check({ GREETER_CHECK_INTERVAL: "soon" });
    assertEquals(broken.code, 1);
  },
});

Deno.test({
  name:
    "readProxyHeader() sees each client's own address through HAProxy send-proxy (v1)" +
    skipped,
  ignore: !haproxy,
  async fn() {
    const { clientsSeen, backends } = await checkClientsSeen(
      1,
      () => "send-proxy",
    );
    // HAProxy's bytes and encodeProxyHeader's are the same, to the byte.
    for (const { header, raw } of clientsSeen) {
      assertEquals(raw, encodeProxyHeader(header));
    }
    // v1 health checks describe the check's own connection.
    for (const b of backends) {
      const check = b.seen.find((s) => isCheck(s, b.port))!;
      assertEquals(check.header.source?.hostname, "127.0.0.1");
      assertEquals(check.header.destination?.port, b.port);
    }
  },
});

Deno.test({
  name:
    "readProxyHeader() sees each client's own address through HAProxy send-proxy-v2, and its health checks as LOCAL" +
    skipped,
  ignore: !haproxy,
  async fn() {
    const { clientsSeen, backends } = await checkClientsSeen(2, (s) => s);
    for (const { header, raw } of clientsSeen) {
      assertEquals(raw, encodeProxyHeader(header));
    }
    for (const b of backends) {
      const checks = b.seen.filter((s) => isCheck(s, b.port));
      for (const check of checks) {
        assertEquals(check.header, { version: 2, command: "local" });
        assertEquals(
          check.raw,
          encodeProxyHeader({ version: 2, command: "local" }),
        );
        // HAProxy's tcp-check sends nothing after the header.
        assertEquals(check.after, "");
      }
    }
  },
});

Deno.test({
  name:
    "readProxyHeader() skips the CRC32C and unique-ID TLVs HAProxy adds with proxy-v2-options" +
    skipped,
  ignore: !haproxy,
  async fn() {
    const { clientsSeen } = await checkClientsSeen(
      2,
      (s) => `${s} proxy-v2-options crc32c,unique-id`,
      "unique-id-format %ci:%cp",
    );
    for (const { header, raw } of clientsSeen) {
      const plain = encodeProxyHeader(header);
      // The addresses, then TLVs: CRC32C (0x03, 4 bytes) first.
      assertEquals(raw.subarray(16, plain.length), plain.subarray(16));
      assertEquals([...raw.subarray(plain.length, plain.length + 3)], [
        0x03,
        0x00,
        0x04,
      ]);
      // The unique ID is the client address (unique-id-format %ci:%cp).
      const { hostname, port } = header.source!;
      assert(
        decoder.decode(raw).endsWith(`${hostname}:${port}`),
        decoder.decode(raw),
      );
    }
  },
});
