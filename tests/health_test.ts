import { assert, assertEquals } from "@std/assert";
import {
  createHealthCheck,
  type Health,
  probeAddress,
} from "../lib/observe/health.ts";
import { serveGreeting } from "../lib/server/serve_greeting.ts";
import { createServerStats, type ServerStats } from "../lib/server/stats.ts";
import { closedPort } from "./_helpers.ts";

const OK: Health = { ok: true, reason: "ok" };

/**
 * A health check on a hand-moved clock, over stats the test changes; its
 * probe connects (or not) and, if `accepts`, counts as accepted.
 */
function checkAt(probe: { connects: boolean; accepts: boolean }) {
  const clock = { time: 10_000 };
  const stats: ServerStats = createServerStats();
  const state = { draining: false, probes: 0, closed: 0 };
  const check = createHealthCheck({
    stats: () => stats,
    draining: () => state.draining,
    probe: () => {
      state.probes++;
      if (probe.accepts) stats.accepted++;
      return Promise.resolve({
        connected: probe.connects,
        done: () => void state.closed++,
      });
    },
    stallAfter: 1_000,
    // Each reading of the clock moves it on, so waits end without sleeping
    // for long.
    now: () => clock.time += 100,
  });
  return { check, clock, stats, state };
}

Deno.test("createHealthCheck() does not probe a server that accepts", async () => {
  const { check, stats, state } = checkAt({ connects: true, accepts: false });
  for (let i = 0; i < 20; i++) {
    stats.accepted++;
    assertEquals(await check(), OK);
  }
  assertEquals(state.probes, 0);
});

Deno.test("createHealthCheck() probes an idle server and is ok when the probe is accepted", async () => {
  const { check, clock, state } = checkAt({ connects: true, accepts: true });
  await check();
  clock.time += 60_000;
  assertEquals(await check(), OK);
  assertEquals([state.probes, state.closed], [1, 1]);
});

Deno.test("createHealthCheck() says 503 when a probe is queued but never accepted", async () => {
  const { check, clock, state } = checkAt({ connects: true, accepts: false });
  await check();
  clock.time += 5_000;
  const health = await check();
  assertEquals(health.ok, false);
  assertEquals(
    health.reason,
    "a probe connection waited 1000 ms and was not accepted (stalled, or at --max-connections)",
  );
  assertEquals(state.closed, 1, "the probe connection is closed");
});

Deno.test("createHealthCheck() says 503 when it cannot connect to its own port", async () => {
  const { check, clock } = checkAt({ connects: false, accepts: false });
  await check();
  clock.time += 5_000;
  assertEquals(await check(), {
    ok: false,
    reason: "cannot connect to its own port",
  });
});

Deno.test("createHealthCheck() says 503 draining", async () => {
  const { check, state } = checkAt({ connects: true, accepts: true });
  assertEquals(await check(), OK);
  state.draining = true;
  assertEquals(await check(), { ok: false, reason: "draining" });
});

Deno.test("createHealthCheck() says 503 when exhausted although EMFILE errors keep counting", async () => {
  const { check, clock, stats } = checkAt({ connects: true, accepts: false });
  stats.accepted = 5;
  await check();
  stats.exhausted = true;
  for (let i = 0; i < 3; i++) {
    stats.acceptErrors.EMFILE = (stats.acceptErrors.EMFILE ?? 0) + 10;
    clock.time += 600;
  }
  assertEquals(await check(), {
    ok: false,
    reason: "accepting fails: out of file descriptors or memory",
  });
});

Deno.test("createHealthCheck() counts client-kind accept errors as progress", async () => {
  const { check, clock, stats, state } = checkAt({
    connects: true,
    accepts: false,
  });
  await check();
  for (let i = 0; i < 5; i++) {
    clock.time += 900;
    stats.acceptErrors.ENOTCONN = (stats.acceptErrors.ENOTCONN ?? 0) + 1;
    assertEquals(await check(), OK);
  }
  assertEquals(state.probes, 0);
});

Deno.test("probeAddress() is taken off the queue by a real server, uncounted, and fails on a closed port", async () => {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  await using server = serveGreeting({
    hostname: "127.0.0.1",
    port: 0,
    selfProbe: cell,
  });
  const { connected, accepted, done } = await probeAddress(server.addr, cell);
  assertEquals(connected, true);
  for (let i = 0; i < 100 && !accepted!(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assertEquals(accepted!(), true);
  done();
  assertEquals(server.stats.accepted, 0);
  const closed = await probeAddress({
    transport: "tcp",
    hostname: "0.0.0.0",
    port: closedPort(),
  }, cell);
  assertEquals(closed.connected, false);
});

Deno.test("probeAddress() gives up on a connect a full backlog leaves unanswered, as not accepted", async () => {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  // A listener that never accepts, its queue of one filled: the kernel
  // drops the next SYN, and a connect would wait minutes.
  using listener = Deno.listen({
    hostname: "127.0.0.1",
    port: 0,
    tcpBacklog: 1,
  } as Deno.TcpListenOptions);
  const fillers = await Promise.all(
    [0, 1].map(() => Deno.connect({ ...listener.addr, transport: "tcp" })),
  );
  const started = performance.now();
  const probe = await probeAddress(listener.addr as Deno.NetAddr, cell);
  const waited = performance.now() - started;
  assertEquals(probe.connected, true);
  assertEquals(probe.accepted!(), false);
  probe.done();
  for (const conn of fillers) conn.close();
  assert(waited < 3_000, `waited ${Math.round(waited)} ms`);
});
