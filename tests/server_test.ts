import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { encodeGreeting, ListenError, serveGreeting } from "../mod.ts";
import {
  DEFAULT_BYTES,
  pool,
  readAll,
  runNode,
  waitUntil,
} from "./_helpers.ts";
import { liveTimers } from "../lib/server/wait.ts";

const LOOPBACK = { hostname: "127.0.0.1", port: 0 };

Deno.test("serveGreeting() sends the default greeting and closes", async () => {
  await using server = serveGreeting(LOOPBACK);
  assertEquals(server.addr.hostname, "127.0.0.1");
  assert(server.addr.port > 0);
  assertEquals(await readAll(server.addr.port), DEFAULT_BYTES);
  assertEquals(await readAll(server.addr.port), DEFAULT_BYTES);
  assertEquals(server.stats.outcomes.greeted, 2);
});

Deno.test("serveGreeting() sends a custom greeting byte for byte", async () => {
  const greeting = encodeGreeting("¡Hola!\nSecond line", {
    encoding: "utf-8",
    lineEnding: "lf",
  });
  await using server = serveGreeting({ ...LOOPBACK, greeting });
  assertEquals(await readAll(server.addr.port), greeting);
});

Deno.test("serveGreeting() completes a greeting larger than socket buffers", async () => {
  const greeting = new Uint8Array(4 * 1024 * 1024).map((_, i) => i % 251);
  await using server = serveGreeting({ ...LOOPBACK, greeting });
  assertEquals(await readAll(server.addr.port), greeting);
});

Deno.test("serveGreeting() reports each client to onConnection", async () => {
  const seen: string[] = [];
  await using server = serveGreeting({
    ...LOOPBACK,
    onConnection: (remote, local) =>
      seen.push(
        `${(remote as Deno.NetAddr).hostname}>${(local as Deno.NetAddr).port}`,
      ),
  });
  await readAll(server.addr.port);
  assertEquals(seen, [`127.0.0.1>${server.addr.port}`]);
});

Deno.test("serveGreeting() gives onClose its record's fields in the order they are declared", async () => {
  const keys: string[][] = [];
  await using server = serveGreeting({
    ...LOOPBACK,
    onClose: (record) => keys.push(Object.keys(record)),
  });
  await readAll(server.addr.port);
  await waitUntil(() => keys.length === 1, 2_000, "onClose");
  // What JSON.stringify or console.log of a record shows.
  assertEquals(keys[0], [
    "remoteAddr",
    "localAddr",
    "outcome",
    "reason",
    "bytesWritten",
    "greetingLength",
    "startTime",
    "duration",
  ]);
});

Deno.test("serveGreeting() greets 2,000 clients at 200 concurrent", async () => {
  await using server = serveGreeting(LOOPBACK);
  const results = await pool(2_000, 200, () => readAll(server.addr.port));
  const wrong = results.filter((bytes) =>
    bytes.length !== DEFAULT_BYTES.length ||
    !bytes.every((byte, i) => byte === DEFAULT_BYTES[i])
  );
  assertEquals(wrong.length, 0);
  assertEquals(server.stats.outcomes.greeted, 2_000);
});

Deno.test("serveGreeting() survives clients that reset at once", async () => {
  await using server = serveGreeting(LOOPBACK);
  // Node sends a real RST (SO_LINGER 0) right after connecting.
  const script = `
    const net = require("node:net");
    let left = 200;
    for (let i = 0; i < 200; i++) {
      const s = net.connect(${server.addr.port}, "127.0.0.1", () => {
        s.resetAndDestroy();
      });
      s.on("error", () => {});
      s.on("close", () => { if (--left === 0) console.log("done"); });
    }`;
  const node = await runNode(script);
  assertEquals(node.stdout.trim(), "done", node.stderr);
  assertEquals(await readAll(server.addr.port), DEFAULT_BYTES);
  // Every reset connection ended and gave its place back.
  await waitUntil(() => server.stats.active === 0, 5_000, "all closed");
  const { greeted, reset, error } = server.stats.outcomes;
  assertEquals(greeted + reset + error, server.stats.accepted);
  assertEquals(error, 0);
});

Deno.test("serveGreeting() gets past a client that resets mid-greeting", async () => {
  const greeting = new Uint8Array(8 * 1024 * 1024);
  await using server = serveGreeting({ ...LOOPBACK, greeting });
  const script = `
    const s = require("node:net").connect(${server.addr.port}, "127.0.0.1");
    s.once("data", () => { s.resetAndDestroy(); console.log("reset"); });
    s.on("error", () => {});`;
  assertEquals((await runNode(script)).stdout.trim(), "reset");
  assertEquals((await readAll(server.addr.port)).length, greeting.length);
  await server.shutdown();
  assertEquals(server.stats.outcomes.reset, 1);
  assertEquals(server.stats.outcomes.greeted, 1);
});

Deno.test("serveGreeting() shutdown lets in-flight greetings finish", async () => {
  const greeting = new Uint8Array(16 * 1024 * 1024).fill(7);
  const server = serveGreeting({ ...LOOPBACK, greeting });
  const conn = await Deno.connect({ port: server.addr.port });
  // Wait until the server has accepted, then shut down while it writes.
  while (server.stats.accepted === 0) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const stopping = server.shutdown();
  let received = 0;
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    received += n;
  }
  conn.close();
  await stopping;
  assertEquals(received, greeting.length);
  await assertRejects(() => Deno.connect({ port: server.addr.port }));
});

Deno.test("serveGreeting() shutdown closes what the drain timeout leaves", async () => {
  const greeting = new Uint8Array(32 * 1024 * 1024);
  const before = liveTimers();
  const server = serveGreeting({ ...LOOPBACK, greeting, drainTimeout: 100 });
  const conn = await Deno.connect({ port: server.addr.port });
  while (server.stats.accepted === 0) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assertEquals(liveTimers(), before + 1, "the sweep of its deadline");
  const started = Date.now();
  await server.shutdown(); // The client never reads.
  assert(Date.now() - started < 2_000);
  assertEquals(server.stats.outcomes.aborted, 1);
  // The sweep stopped with the server (the sanitizer does not see it).
  assertEquals(liveTimers(), before);
  conn.close();
});

Deno.test("serveGreeting() shuts down when its signal aborts", async () => {
  const controller = new AbortController();
  const server = serveGreeting({ ...LOOPBACK, signal: controller.signal });
  controller.abort();
  await server.finished;
  await assertRejects(() => Deno.connect({ port: server.addr.port }));
});

Deno.test("serveGreeting() pauses at maxConnections instead of refusing", async () => {
  const greeting = new Uint8Array(32 * 1024 * 1024);
  await using server = serveGreeting({
    ...LOOPBACK,
    greeting,
    maxConnections: 1,
  });
  const first = await Deno.connect({ port: server.addr.port });
  while (server.stats.accepted === 0) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // The second client waits in the backlog until the first is done.
  const second = readAll(server.addr.port);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assertEquals(server.stats.accepted, 1);
  first.close();
  assertEquals((await second).length, greeting.length);
  assertEquals(server.stats.accepted, 2);
});

Deno.test("serveGreeting() throws a ListenError naming the busy address", () => {
  using listener = Deno.listen(LOOPBACK);
  const error = assertThrows(
    () => serveGreeting({ ...LOOPBACK, port: listener.addr.port }),
    ListenError,
    `Cannot listen on 127.0.0.1:${listener.addr.port}`,
  );
  assert(error.cause instanceof Deno.errors.AddrInUse);
  assertEquals(error.port, listener.addr.port);
});

Deno.test("serveGreeting() opens every listener or none", async () => {
  using busy = Deno.listen(LOOPBACK);
  const free = Deno.listen(LOOPBACK);
  const freePort = free.addr.port;
  free.close();
  assertThrows(
    () =>
      serveGreeting({
        listen: [
          { hostname: "127.0.0.1", port: freePort },
          { hostname: "127.0.0.1", port: busy.addr.port },
        ],
      }),
    ListenError,
    `127.0.0.1:${busy.addr.port}`,
  );
  // The first listener was closed again: its port is free.
  await assertRejects(() => Deno.connect({ port: freePort }));
});

Deno.test("serveGreeting() serves several listeners at once", async () => {
  await using server = serveGreeting({
    listen: [
      { hostname: "127.0.0.1", port: 0 },
      { hostname: "::1", port: 0 },
    ],
  });
  assertEquals(server.addrs.length, 2);
  for (const addr of server.addrs as Deno.NetAddr[]) {
    assertEquals(await readAll(addr.port, addr.hostname), DEFAULT_BYTES);
  }
});

Deno.test("serveGreeting() rejects a nonsensical maxConnections", () => {
  assertThrows(
    () => serveGreeting({ ...LOOPBACK, maxConnections: 0 }),
    RangeError,
    "Invalid maxConnections option: expected a whole number from 1 to 1000000000, got 0",
  );
});

Deno.test("serveGreeting() counts a greeting function that throws as an error", async () => {
  const records: string[] = [];
  await using server = serveGreeting({
    ...LOOPBACK,
    greeting: () => {
      throw new RangeError("not ASCII");
    },
    onClose: (record) => records.push(`${record.outcome}:${record.reason}`),
  });
  assertEquals((await readAll(server.addr.port)).length, 0);
  await waitUntil(() => records.length === 1, 2_000, "onClose");
  assertEquals(records, ["error:template"]);
  assertEquals(server.stats.outcomes.error, 1);
  assertEquals(server.stats.outcomes.greeted, 0);
});
