import { assert, assertEquals } from "@std/assert";
import { serveGreeting } from "../lib/server/serve_greeting.ts";
import { readAll, waitUntil } from "./_helpers.ts";

const HOST = "127.0.0.1";
// Far more than loopback socket buffers take at first, and the server
// lingers after writing anyway: a client that never reads keeps its place.
const BIG = new Uint8Array(8 * 1024 * 1024).fill(0x41);

/** Waits `ms` milliseconds. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A client that has asked for one byte and reads nothing more. */
interface Client {
  conn: Deno.TcpConn;
  /** Settles with 1 once the server has sent anything. */
  firstByte: Promise<number | null | "closed">;
  got: boolean;
}

async function connectClient(port: number): Promise<Client> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const client: Client = { conn, firstByte: Promise.resolve(null), got: false };
  client.firstByte = conn.read(new Uint8Array(1)).then(
    (n) => {
      if (n === 1) client.got = true;
      return n;
    },
    () => "closed" as const,
  );
  return client;
}

Deno.test("serveGreeting() maxConnections 1 holds across 3 listeners; a freed place serves the next client", async () => {
  await using server = serveGreeting({
    listen: [0, 1, 2].map(() => ({ hostname: HOST, port: 0 })),
    maxConnections: 1,
    greeting: BIG,
    timeout: 0,
    linger: 10_000,
    drainTimeout: 100,
  });
  const ports = server.addrs.map((addr) => (addr as Deno.NetAddr).port);
  assertEquals(new Set(ports).size, 3);
  let maxActive = 0;
  const sampler = setInterval(() => {
    maxActive = Math.max(maxActive, server.stats.active);
  }, 1);
  const clients: Client[] = [];
  try {
    for (const port of ports) clients.push(await connectClient(port));
    const served: Client[] = [];
    for (let round = 1; round <= 3; round++) {
      await waitUntil(
        () => clients.filter((c) => c.got).length === round,
        5_000,
        `client ${round} served`,
      );
      // Give any other loop time to accept beyond the cap.
      await sleep(200);
      maxActive = Math.max(maxActive, server.stats.active);
      assertEquals(server.stats.accepted, round, "accepted so far");
      assertEquals(clients.filter((c) => c.got).length, round, "served");
      assertEquals(server.stats.active, 1);
      assertEquals(maxActive, 1, "never more than one open connection");
      // Close the one being served: its place goes to the next client.
      const current = clients.find((c) => c.got && !served.includes(c))!;
      served.push(current);
      current.conn.close();
    }
    await waitUntil(() => server.stats.active === 0, 5_000, "last release");
    assert(server.stats.pausedAtLimit > 0, "the loops waited at the cap");
  } finally {
    clearInterval(sampler);
    for (const client of clients) {
      try {
        client.conn.close();
      } catch {
        // Closed by the test already.
      }
    }
    await Promise.all(clients.map((client) => client.firstByte));
  }
});

Deno.test("serveGreeting() releases the per-IP place exactly once when the greeting function throws", async () => {
  let mode: "big" | "throw" = "big";
  const errors: string[] = [];
  await using server = serveGreeting({
    hostname: HOST,
    port: 0,
    maxPerIp: 2,
    timeout: 0,
    linger: 10_000,
    drainTimeout: 100,
    greeting: () => {
      if (mode === "throw") throw new Error("Template failed");
      return BIG;
    },
    onClose: (record) => errors.push(`${record.outcome}:${record.reason}`),
  });
  const { port } = server.addr;
  const held: Client[] = [];
  try {
    // One client from 127.0.0.1 holds a per-IP place all along.
    held.push(await connectClient(port));
    await waitUntil(() => held[0].got, 5_000, "first held client served");

    // Five failing greetings in a row: each is admitted, then frees its
    // place (with a leak, the second would already be refused).
    mode = "throw";
    for (let i = 0; i < 5; i++) {
      assertEquals((await readAll(port)).length, 0, `client ${i + 1}`);
    }
    assertEquals(server.stats.refused.per_ip_limit, 0);
    assertEquals(server.stats.outcomes.error, 5);
    assertEquals(errors, Array(5).fill("error:template"));

    // Freed once each, not twice: exactly one more fits beside the held one.
    mode = "big";
    held.push(await connectClient(port));
    await waitUntil(() => held[1].got, 5_000, "second held client served");
    assertEquals((await readAll(port)).length, 0, "the third is refused");
    assertEquals(server.stats.refused.per_ip_limit, 1);
    assertEquals(server.stats.accepted, 8);
    assert(server.stats.active === 2, `active: ${server.stats.active}`);
  } finally {
    for (const client of held) client.conn.close();
    await Promise.all(held.map((client) => client.firstByte));
  }
});
