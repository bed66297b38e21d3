import { assert, assertEquals } from "@std/assert";
import {
  createHealthCheck,
  type Health,
  listenQueueLength,
} from "../lib/observe/health.ts";
import { createServerStats, type ServerStats } from "../lib/server/stats.ts";
import { closedPort, waitUntil } from "./_helpers.ts";

const OK: Health = { ok: true, reason: "ok" };

/** A health check on a hand-moved clock, over stats the test changes. */
function checkAt(options: { queued?: number | undefined } = {}) {
  const clock = { time: 10_000 };
  const stats: ServerStats = createServerStats();
  const state = {
    draining: false,
    queued: "queued" in options ? options.queued : 0,
    queuedAsked: 0,
  };
  const check = createHealthCheck({
    stats: () => stats,
    draining: () => state.draining,
    ports: () => [8080],
    queued: (ports) => {
      assertEquals(ports, [8080]);
      state.queuedAsked++;
      return state.queued;
    },
    stallAfter: 1_000,
    now: () => clock.time,
  });
  return { check, clock, stats, state };
}

Deno.test("createHealthCheck() is ok when idle with an empty queue", () => {
  const { check, clock } = checkAt({ queued: 0 });
  assertEquals(check(), OK);
  clock.time += 60_000;
  assertEquals(check(), OK, "no accepts for a minute, but nobody waits");
});

Deno.test("createHealthCheck() is ok when idle and the queue cannot be read", () => {
  const { check, clock } = checkAt({ queued: undefined });
  check();
  clock.time += 60_000;
  assertEquals(check(), OK);
});

Deno.test("createHealthCheck() says 503 draining", () => {
  const { check, state } = checkAt();
  assertEquals(check(), OK);
  state.draining = true;
  assertEquals(check(), { ok: false, reason: "draining" });
});

Deno.test("createHealthCheck() says 503 when clients are queued and no accept moves for stallAfter", () => {
  const { check, clock, stats, state } = checkAt({ queued: 3 });
  stats.accepted = 42;
  assertEquals(check(), OK);
  clock.time += 999;
  assertEquals(check(), OK, "not yet stalled");
  clock.time += 1;
  const health = check();
  assertEquals(health.ok, false);
  assertEquals(
    health.reason,
    "3 clients waiting to be accepted, none accepted for 1 s",
  );
  assert(state.queuedAsked > 0);
  // One accept is progress: ok again at once, and for stallAfter after.
  stats.accepted++;
  assertEquals(check(), OK);
  clock.time += 999;
  assertEquals(check(), OK);
  clock.time += 1;
  assertEquals(check().ok, false, "stalled again");
  state.queued = 1;
  assertEquals(
    check().reason,
    "1 client waiting to be accepted, none accepted for 1 s",
  );
});

Deno.test("createHealthCheck() says 503 when exhausted for stallAfter although EMFILE errors keep counting", () => {
  // The queue is empty: the verdict must come from the exhaustion alone.
  const { check, clock, stats } = checkAt({ queued: 0 });
  stats.accepted = 7;
  assertEquals(check(), OK);
  stats.exhausted = true;
  for (let step = 0; step < 10; step++) {
    stats.acceptErrors.EMFILE = (stats.acceptErrors.EMFILE ?? 0) + 100;
    stats.acceptErrors.ENFILE = (stats.acceptErrors.ENFILE ?? 0) + 1;
    clock.time += 100;
    const health = check();
    if (step < 9) {
      assertEquals(health, OK, `${(step + 1) * 100} ms`);
    } else {
      assertEquals(health, {
        ok: false,
        reason: "accepting fails: out of file descriptors or memory",
      });
    }
  }
  // A success clears it.
  stats.accepted++;
  stats.exhausted = false;
  assertEquals(check(), OK);
});

Deno.test("createHealthCheck() counts client-kind accept errors as progress", () => {
  const { check, clock, stats } = checkAt({ queued: 5 });
  assertEquals(check(), OK);
  // Clients reset before their accept: none is accepted, but the queue
  // moves, so the server is not stalled.
  for (let step = 0; step < 20; step++) {
    stats.acceptErrors.ENOTCONN = (stats.acceptErrors.ENOTCONN ?? 0) + 1;
    if (step % 2) {
      stats.acceptErrors.ECONNABORTED = (stats.acceptErrors.ECONNABORTED ??
        0) + 1;
    }
    clock.time += 500;
    assertEquals(check(), OK, `${(step + 1) * 500} ms`);
  }
  clock.time += 1_000;
  assertEquals(check().ok, false, "no progress at all for stallAfter");
});

// BUG(lib/observe/health.ts): fails today under the task's permissions
// (--allow-read without --allow-all), passes with -A. Deno 2.9 refuses every
// read under /proc without --allow-all (NotCapable: "Requires all access to
// /proc/net/tcp"), although permissions.querySync() says "granted"; the
// error is swallowed and listenQueueLength() returns undefined. greeter's
// binaries, `deno task start` and the README's `deno run --allow-net
// --allow-read` never have --allow-all, so /healthz never sees clients
// waiting in the queue and says 200 through a stalled accept loop.
Deno.test({
  name:
    "listenQueueLength() counts connections not yet accepted [BUG: undefined without --allow-all]",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr;
    const clients: Deno.Conn[] = [];
    try {
      assertEquals(listenQueueLength([port]), 0);
      for (let i = 0; i < 5; i++) {
        const client = await Deno.connect({ hostname: "127.0.0.1", port });
        clients.push(client);
        // Bytes waiting in a queued connection are not queued clients: only
        // the listening socket's line counts.
        await client.write(new Uint8Array([1, 2, 3]));
      }
      await waitUntil(
        () => listenQueueLength([port]) === 5,
        2_000,
        "5 queued",
      );
      // Other ports are not counted.
      assertEquals(listenQueueLength([closedPort()]), 0);
      // An accepted connection leaves the queue.
      const accepted = await listener.accept();
      accepted.close();
      assertEquals(listenQueueLength([port]), 4);
    } finally {
      for (const client of clients) client.close();
      listener.close();
    }
  },
});
