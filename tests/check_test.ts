import { assert, assertEquals, assertMatch } from "@std/assert";
import { checkGreeting, quoteBytes } from "../lib/client/check.ts";
import { encodeGreeting } from "../lib/greeting/template.ts";
import { serveGreeting } from "../lib/server/serve_greeting.ts";
import { closedPort, DEFAULT_BYTES } from "./_helpers.ts";

const LOOPBACK = { hostname: "127.0.0.1", port: 0 };
const encoder = new TextEncoder();

/**
 * A server that writes `bytes` to its first client and then holds the
 * connection open without closing: what greeter never does.
 */
function holdingServer(bytes: Uint8Array) {
  const listener = Deno.listen(LOOPBACK);
  let conn: Deno.Conn | undefined;
  const accepted = listener.accept().then(async (accepted) => {
    conn = accepted;
    if (bytes.length > 0) await accepted.write(bytes);
  });
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      await accepted;
      conn?.close();
      listener.close();
    },
  };
}

Deno.test("checkGreeting() is OK when the server sends the expected bytes and closes", async () => {
  await using server = serveGreeting(LOOPBACK);
  const result = await checkGreeting({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  assertEquals([result.ok, result.status], [true, "ok"]);
  assertEquals(result.received, DEFAULT_BYTES);
  assertMatch(
    result.message,
    new RegExp(
      `^OK 127\\.0\\.0\\.1:${server.addr.port} sent the expected greeting ` +
        "\\(24 bytes\\) in \\d+ ms$",
    ),
  );
});

Deno.test("checkGreeting() matches a custom greeting byte for byte", async () => {
  const greeting = encodeGreeting("Grüße\nzwei", {
    encoding: "utf-8",
    lineEnding: "lf",
  });
  await using server = serveGreeting({ ...LOOPBACK, greeting });
  const { port } = server.addr;
  const ok = await checkGreeting({
    hostname: "127.0.0.1",
    port,
    expect: greeting,
  });
  assertEquals(ok.status, "ok");
  const latin1 = encodeGreeting("Grüße\nzwei", {
    encoding: "latin1",
    lineEnding: "lf",
  });
  const bad = await checkGreeting({
    hostname: "127.0.0.1",
    port,
    expect: latin1,
  });
  assertEquals(
    bad.message,
    `MISMATCH 127.0.0.1:${port}: expected "Gr\\xfc\\xdfe\\nzwei\\n" (11 bytes), ` +
      `got "Gr\\xc3\\xbc\\xc3\\x9fe\\nzwei\\n" (13 bytes); first difference at byte 3`,
  );
});

Deno.test("checkGreeting() reports a different greeting as MISMATCH", async () => {
  await using server = serveGreeting({
    ...LOOPBACK,
    greeting: encodeGreeting("Hello"),
  });
  const result = await checkGreeting({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  assertEquals([result.ok, result.status], [false, "mismatch"]);
  assertEquals(
    result.message,
    `MISMATCH 127.0.0.1:${server.addr.port}: expected ` +
      `"Connection Established\\r\\n" (24 bytes), got "Hello\\r\\n" (7 bytes)`,
  );
});

Deno.test("checkGreeting() shows a long greeting from just before the first difference", async () => {
  const text = "A".repeat(100);
  await using server = serveGreeting({
    ...LOOPBACK,
    greeting: encodeGreeting(text + "B"),
  });
  const { message } = await checkGreeting({
    hostname: "127.0.0.1",
    port: server.addr.port,
    expect: encodeGreeting(text + "C"),
  });
  assertEquals(
    message,
    `MISMATCH 127.0.0.1:${server.addr.port}: expected ` +
      `…"AAAAAAAAC\\r\\n" (103 bytes), got …"AAAAAAAAB\\r\\n" (103 bytes); ` +
      "first difference at byte 101",
  );
});

Deno.test("checkGreeting() reports a greeting cut short as MISMATCH", async () => {
  await using server = serveGreeting({
    ...LOOPBACK,
    greeting: encodeGreeting("Connection", { lineEnding: "none" }),
  });
  const { status, message } = await checkGreeting({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  assertEquals(status, "mismatch");
  assertEquals(
    message,
    `MISMATCH 127.0.0.1:${server.addr.port}: expected ` +
      `"Connection Established\\r\\n" (24 bytes), got "Connection" ` +
      "(10 bytes, then closed); first difference at byte 11",
  );
});

Deno.test("checkGreeting() stops reading a much longer greeting", async () => {
  await using server = serveGreeting({
    ...LOOPBACK,
    greeting: new Uint8Array(4 * 1024 * 1024).fill(0x78),
  });
  const { status, message, received } = await checkGreeting({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  assertEquals(status, "mismatch");
  assertEquals(received.length, 24 + 256 + 1);
  assertEquals(
    message,
    `MISMATCH 127.0.0.1:${server.addr.port}: expected ` +
      `"Connection Established\\r\\n" (24 bytes), got "${"x".repeat(48)}"… ` +
      "(at least 281 bytes)",
  );
});

Deno.test("checkGreeting() reports a refused connection as FAIL with its error", async () => {
  const port = closedPort();
  const result = await checkGreeting({ hostname: "127.0.0.1", port });
  assertEquals([result.ok, result.status], [false, "fail"]);
  assertEquals(
    result.message,
    `FAIL cannot connect to 127.0.0.1:${port}: connection refused`,
  );
  assertEquals(result.address, `127.0.0.1:${port}`);
  assertEquals(result.error instanceof Deno.errors.ConnectionRefused, true);
});

Deno.test("checkGreeting() tells each kind of timeout apart", async () => {
  const check = (port: number) =>
    checkGreeting({ hostname: "127.0.0.1", port, timeout: 200 });
  {
    await using silent = holdingServer(new Uint8Array());
    const result = await check(silent.port);
    assertEquals(
      result.message,
      `FAIL no greeting from 127.0.0.1:${silent.port} within 200 ms; is it a ` +
        "greeter, and is the port open?",
    );
    assertEquals(result.hint, "timeout");
  }
  {
    await using partial = holdingServer(encoder.encode("Connection"));
    assertEquals(
      (await check(partial.port)).message,
      `FAIL 127.0.0.1:${partial.port} sent 10 of the 24 expected bytes, ` +
        "then nothing more within 200 ms",
    );
  }
  {
    await using open = holdingServer(DEFAULT_BYTES);
    const result = await check(open.port);
    assertEquals(result.status, "fail");
    assertEquals(
      result.message,
      `FAIL 127.0.0.1:${open.port} sent the expected greeting but did not ` +
        "close the connection within 200 ms",
    );
  }
  {
    await using other = holdingServer(encoder.encode("Hello\r\n"));
    const result = await check(other.port);
    assertEquals(result.status, "mismatch");
    assertEquals(
      result.message,
      `MISMATCH 127.0.0.1:${other.port}: expected "Connection Established` +
        `\\r\\n" (24 bytes), got "Hello\\r\\n" (at least 7 bytes, still ` +
        "open after 200 ms)",
    );
  }
});

Deno.test("quoteBytes() escapes control characters, quotes and non-ASCII bytes", () => {
  assertEquals(
    quoteBytes(
      new Uint8Array([0x41, 0x22, 0x5c, 0x09, 0x00, 0x1b, 0x7f, 0xff]),
    ),
    '"A\\"\\\\\\t\\x00\\x1b\\x7f\\xff"',
  );
  assertEquals(quoteBytes(encoder.encode("abcdef"), 2, 3), '…"cde"…');
  assertEquals(quoteBytes(new Uint8Array()), '""');
});

Deno.test("checkGreeting() hints at a PROXY header when the server closes at once, unless one was sent", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closing = (async () => {
    for await (const conn of listener) conn.close();
  })();
  try {
    const { port } = listener.addr;
    const bare = await checkGreeting({ hostname: "127.0.0.1", port });
    assertEquals([bare.status, bare.hint], ["mismatch", "proxy-header"]);
    assert(!bare.message.includes("--"), bare.message);
    const sent = await checkGreeting({
      hostname: "127.0.0.1",
      port,
      proxyHeader: true,
    });
    assertEquals([sent.status, sent.hint], ["mismatch", undefined]);
  } finally {
    listener.close();
    await closing;
  }
});
