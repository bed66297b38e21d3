import { assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  fetchGreeting,
  GreetingTimeoutError,
  readGreeting,
  serveGreeting,
} from "../mod.ts";
import { parseProxyHeader } from "../lib/net/proxy_protocol.ts";
import { parseCidr } from "../lib/net/ip.ts";
import { closedPort, DEFAULT_BYTES, silentServer } from "./_helpers.ts";
import { encodeProxyHeader } from "./_proxy_header.ts";

Deno.test("fetchGreeting() returns the exact bytes the server sent", async () => {
  await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
  assertEquals(
    await fetchGreeting({ hostname: "127.0.0.1", port: server.addr.port }),
    DEFAULT_BYTES,
  );
});

Deno.test("fetchGreeting() with proxyHeader sends exactly the 16-byte v2 LOCAL header first", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    using conn = await listener.accept();
    const received: number[] = [];
    const buffer = new Uint8Array(64);
    // Read until the client has sent the whole header (it then only waits).
    while (received.length < 16) {
      const n = await conn.read(buffer);
      if (n === null) break;
      received.push(...buffer.subarray(0, n));
    }
    await conn.write(DEFAULT_BYTES);
    return new Uint8Array(received);
  })();
  const bytes = await fetchGreeting({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
    proxyHeader: true,
  });
  assertEquals(bytes, DEFAULT_BYTES);
  const header = await served;
  assertEquals(header, encodeProxyHeader({ version: 2, command: "local" }));
  assertEquals(parseProxyHeader(header), {
    header: { version: 2, command: "local" },
    length: 16,
  });
});

Deno.test("fetchGreeting() with proxyHeader over a Unix socket sends the header to a server that expects it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/greeter.sock`;
    await using server = serveGreeting({
      listen: [{ transport: "unix", path }],
      // Unix peers need no trust list, but the option wants one.
      proxyProtocol: { from: [parseCidr("127.0.0.1/32")] },
    });
    assertEquals(
      await fetchGreeting({ path, proxyHeader: true, timeout: 2_000 }),
      DEFAULT_BYTES,
    );
    assertEquals(server.stats.outcomes.greeted, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fetchGreeting() rejects with ConnectionRefused when nobody listens", async () => {
  const port = closedPort();
  await assertRejects(
    () => fetchGreeting({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("fetchGreeting() times out on a server that never closes", async () => {
  await using silent = silentServer();
  await assertRejects(
    () =>
      fetchGreeting({ hostname: "127.0.0.1", port: silent.port, timeout: 200 }),
    GreetingTimeoutError,
    `No complete greeting from 127.0.0.1:${silent.port} within 200 ms`,
  );
});

// The deadline comes within a millisecond, often while the client is still
// connecting; a connection that completes after it is closed as soon as it
// comes, which may be after the test: what is tested here is the error.
Deno.test({
  name: "fetchGreeting() times out at once on a timeout no timer can wait for",
  sanitizeResources: false,
}, async () => {
  await using silent = silentServer();
  for (const timeout of [-1, Number.NaN, 2 ** 64]) {
    await assertRejects(
      () =>
        fetchGreeting({ hostname: "127.0.0.1", port: silent.port, timeout }),
      GreetingTimeoutError,
      `127.0.0.1:${silent.port} within ${timeout} ms`,
    );
  }
});

Deno.test("readGreeting() yields chunks as they arrive", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  // The server sends its second part only once the client has yielded the
  // first: with a client that waited for the end, this would never finish.
  let firstSeen!: () => void;
  const seen = new Promise<void>((resolve) => firstSeen = resolve);
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.write(new TextEncoder().encode("one "));
    await seen;
    await conn.write(new TextEncoder().encode("two"));
    conn.close();
  })();
  const chunks: string[] = [];
  for await (
    const chunk of readGreeting({
      hostname: "127.0.0.1",
      port: listener.addr.port,
    })
  ) {
    chunks.push(new TextDecoder().decode(chunk));
    firstSeen();
  }
  await serving;
  assertEquals(chunks[0], "one ");
  assertEquals(chunks.join(""), "one two");
});

Deno.test("fetchGreeting() with tls.insecure says that a plain-text greeter is not TLS, every time", async () => {
  // The message names what went wrong, the same on every try (TLS starts
  // once the connection is up; started earlier, node:tls saw a reset now
  // and then under load, or crashed).
  await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
  for (let i = 0; i < 20; i++) {
    const error = await assertRejects(() =>
      fetchGreeting({
        hostname: "127.0.0.1",
        port: server.addr.port,
        tls: { insecure: true },
        proxyHeader: i % 2 === 0,
      })
    );
    assertMatch((error as Error).message, /corrupt message/, `try ${i}`);
  }
});
