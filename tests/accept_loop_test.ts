import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  acceptErrorCode,
  acceptLoop,
  type AcceptLoopContext,
  classifyAcceptError,
  MAX_BACKOFF,
  MIN_BACKOFF,
} from "../lib/server/accept_loop.ts";
import type { AcceptErrorKind } from "../lib/server/options.ts";
import { createPlaces, type Places } from "../lib/server/places.ts";
import { createServerStats } from "../lib/server/stats.ts";
import { serveGreetingWith } from "../lib/server/serve_greeting.ts";

/** An error as the runtime throws it: a message and an errno `code`. */
function osError(code: string, message = `${code} (os error 0)`): Error {
  return Object.assign(new Error(message), { code });
}

Deno.test("classifyAcceptError() tells one client's failures from exhaustion", () => {
  for (const code of ["ENOTCONN", "ECONNABORTED", "ECONNRESET", "EPROTO"]) {
    assertEquals(classifyAcceptError(code), "client", code);
  }
  assertEquals(classifyAcceptError("EPERM"), "client");
  for (const code of ["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"]) {
    assertEquals(classifyAcceptError(code), "exhausted", code);
  }
  for (const code of ["EINVAL", "EBADF", "ECONNREFUSED", "Error", "unknown"]) {
    assertEquals(classifyAcceptError(code), "other", code);
  }
});

Deno.test("acceptErrorCode() reads .code, else maps the runtime's error class", () => {
  assertEquals(acceptErrorCode(osError("EPROTO")), "EPROTO");
  assertEquals(acceptErrorCode(osError("EMFILE")), "EMFILE");
  // A code wins over the class.
  assertEquals(
    acceptErrorCode(
      Object.assign(new Deno.errors.NotConnected(), { code: "ECONNRESET" }),
    ),
    "ECONNRESET",
  );
  const byClass: [Error, string][] = [
    [new Deno.errors.NotConnected(), "ENOTCONN"],
    [new Deno.errors.ConnectionAborted(), "ECONNABORTED"],
    [new Deno.errors.ConnectionReset(), "ECONNRESET"],
    [new Deno.errors.PermissionDenied(), "EPERM"],
  ];
  for (const [error, code] of byClass) {
    assert(!("code" in error), "the runtime's class alone, no code");
    assertEquals(acceptErrorCode(error), code, error.name);
    assertEquals(classifyAcceptError(acceptErrorCode(error)), "client");
  }
  assertEquals(acceptErrorCode(new TypeError("odd")), "TypeError");
  assertEquals(acceptErrorCode("a string"), "unknown");
  assertEquals(acceptErrorCode(null), "unknown");
  assertEquals(acceptErrorCode(osError("")), "Error");
});

/** One scripted accept: a connection, an error, or a promise to await. */
type Step = Deno.Conn | Error | Promise<Deno.Conn>;

/**
 * A listener whose accept() follows `script`; past its end, accept() waits
 * until close(), then fails as a closed listener does. `freeAtAccept`
 * records the free places each time accept() is called.
 */
function fakeListener(script: Step[], places: Places) {
  let next = 0;
  let rejectPending: ((error: Error) => void) | undefined;
  const fake = {
    accepts: 0,
    freeAtAccept: [] as number[],
    accept(): Promise<Deno.Conn> {
      fake.accepts++;
      fake.freeAtAccept.push(places.free);
      const step = script[next++];
      if (step === undefined) {
        return new Promise((_, reject) => rejectPending = reject);
      }
      if (step instanceof Error) return Promise.reject(step);
      return Promise.resolve(step);
    },
    close() {
      rejectPending?.(new Deno.errors.BadResource("Listener has been closed"));
    },
  };
  return fake;
}

function fakeConn(id: number): Deno.Conn {
  return { id } as unknown as Deno.Conn;
}

/** The server side of a loop, recording what the loop does to it. */
function loopContext(places: Places, hooks: {
  accepted?: (conn: Deno.Conn) => void;
  waited?: (ms: number) => void;
} = {}) {
  const context = {
    places,
    stats: createServerStats(),
    closing: false as boolean,
    conns: [] as Deno.Conn[],
    waits: [] as number[],
    errors: [] as {
      error: unknown;
      kind: AcceptErrorKind;
      code: string;
      free: number;
    }[],
    accepted(conn: Deno.Conn) {
      context.conns.push(conn);
      hooks.accepted?.(conn);
    },
    connectionEnded(ms: number) {
      context.waits.push(ms);
      hooks.waited?.(ms);
      return Promise.resolve();
    },
    onAcceptError(error: unknown, kind: AcceptErrorKind, code: string) {
      context.errors.push({ error, kind, code, free: places.free });
    },
  } satisfies AcceptLoopContext & Record<string, unknown>;
  return context;
}

/** Shuts the loop down as serveGreeting does, and waits for it to end. */
async function stop(
  context: { closing: boolean; places: Places },
  listener: { close(): void },
  loop: Promise<void>,
): Promise<void> {
  context.closing = true;
  listener.close();
  context.places.close();
  await loop;
}

function asListener(fake: { accept(): Promise<Deno.Conn> }): Deno.Listener {
  return fake as unknown as Deno.Listener;
}

Deno.test("acceptLoop() passes over 1,000 client errors in a row without waiting", async () => {
  const places = createPlaces(10);
  const errors: Error[] = [];
  for (let i = 0; i < 1_000; i++) {
    errors.push(
      i % 2 === 0
        ? osError("ENOTCONN", "Transport endpoint is not connected")
        : new Deno.errors.NotConnected(),
    );
  }
  const listener = fakeListener([...errors, fakeConn(1)], places);
  let servedAfter = -1;
  const started = performance.now();
  const context = loopContext(places, {
    accepted: () => servedAfter = performance.now() - started,
  });
  const loop = acceptLoop(asListener(listener), context);
  // The loop reaches the connection after the errors without a timer.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(context.conns.length, 1, "served after the errors");
  assert(servedAfter >= 0 && servedAfter < 200, `took ${servedAfter} ms`);
  assertEquals(context.waits, [], "connectionEnded() is never called");
  assertEquals(context.stats.acceptErrors, { ENOTCONN: 1_000 });
  assertEquals(context.errors.length, 1_000);
  assert(context.errors.every((e) => e.kind === "client"));
  // Told the code it counted: the class-only errors as ENOTCONN too.
  assert(context.errors.every((e) => e.code === "ENOTCONN"));
  assertEquals(context.stats.exhausted, false);
  await stop(context, listener, loop);
});

Deno.test("acceptLoop() backs off on exhaustion from 5 ms, doubling to 1 s, and restarts after a success", async () => {
  const places = createPlaces(10);
  const exhaustedWhileWaiting: boolean[] = [];
  const exhaustedAtAccept: boolean[] = [];
  const script: Step[] = [];
  for (let i = 0; i < 10; i++) script.push(osError("EMFILE"));
  script.push(fakeConn(1));
  script.push(osError("ENFILE"), osError("EMFILE"));
  script.push(fakeConn(2));
  script.push(osError("ENOBUFS"));
  const listener = fakeListener(script, places);
  const context = loopContext(places, {
    waited: () => exhaustedWhileWaiting.push(context.stats.exhausted),
    accepted: () => exhaustedAtAccept.push(context.stats.exhausted),
  });
  const loop = acceptLoop(asListener(listener), context);
  // Past its script, the fake's accept() waits: the loop is idle there.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(listener.accepts, script.length + 1);
  assertEquals(MIN_BACKOFF, 5);
  assertEquals(MAX_BACKOFF, 1_000);
  assertEquals(context.waits, [
    5,
    10,
    20,
    40,
    80,
    160,
    320,
    640,
    1_000,
    1_000,
    // Reset by the first success.
    5,
    10,
    // And by the second.
    5,
  ]);
  assert(exhaustedWhileWaiting.every((exhausted) => exhausted));
  assertEquals(exhaustedAtAccept, [false, false], "cleared by a success");
  assertEquals(context.stats.exhausted, true, "after the last ENOBUFS");
  assertEquals(context.stats.acceptErrors, {
    EMFILE: 11,
    ENFILE: 1,
    ENOBUFS: 1,
  });
  assert(context.errors.every((e) => e.kind === "exhausted"));
  await stop(context, listener, loop);
});

Deno.test("acceptLoop() backs off on an unexpected error without calling it exhaustion", async () => {
  const places = createPlaces(10);
  const listener = fakeListener([
    osError("EINVAL"),
    osError("EINVAL"),
    osError("ECONNRESET"),
    osError("EINVAL"),
    fakeConn(1),
  ], places);
  const context = loopContext(places);
  const loop = acceptLoop(asListener(listener), context);
  await new Promise((resolve) => setTimeout(resolve, 0));
  // A client error between them neither waits nor resets the back-off.
  assertEquals(context.waits, [5, 10, 20]);
  assertEquals(context.errors.map((e) => [e.kind, e.code]), [
    ["other", "EINVAL"],
    ["other", "EINVAL"],
    ["client", "ECONNRESET"],
    ["other", "EINVAL"],
  ]);
  assertEquals(context.stats.exhausted, false);
  assertEquals(context.conns.length, 1, "retried, never fatal");
  await stop(context, listener, loop);
});

Deno.test("acceptLoop() takes a place before each accept and gives it back on failure", async () => {
  const places = createPlaces(1);
  const freeAtAccepted: number[] = [];
  const listener = fakeListener([
    osError("ECONNABORTED"),
    osError("EMFILE"),
    fakeConn(1),
  ], places);
  const context = loopContext(places, {
    accepted: () => freeAtAccepted.push(places.free),
  });
  const loop = acceptLoop(asListener(listener), context);
  await new Promise((resolve) => setTimeout(resolve, 0));
  // The place is held during every accept, given back after each failure
  // (so the error hooks see it free), and kept by the accepted connection.
  assertEquals(listener.freeAtAccept, [0, 0, 0]);
  assertEquals(context.errors.map((e) => e.free), [1, 1]);
  assertEquals(freeAtAccepted, [0]);
  // At the cap, the loop waits for the place without calling accept().
  assertEquals(listener.accepts, 3);
  assertEquals(context.stats.pausedAtLimit, 1);
  places.release(); // The connection ends: the loop accepts again.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(listener.accepts, 4);
  assertEquals(listener.freeAtAccept[3], 0);
  await stop(context, listener, loop);
  assertEquals(places.free, 1, "the pending accept's place is given back");
});

Deno.test("acceptLoop() holds the cap across several listeners sharing places", async () => {
  const places = createPlaces(1);
  const first = Promise.withResolvers<Deno.Conn>();
  const a = fakeListener([first.promise], places);
  const b = fakeListener([], places);
  const context = loopContext(places);
  const loops = [
    acceptLoop(asListener(a), context),
    acceptLoop(asListener(b), context),
  ];
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals([a.accepts, b.accepts], [1, 0], "one accept at a time");
  first.resolve(fakeConn(1));
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(context.conns.length, 1);
  assertEquals([a.accepts, b.accepts], [1, 0], "the connection holds it");
  places.release();
  await new Promise((resolve) => setTimeout(resolve, 0));
  // One freed place wakes one loop: the one that waited first.
  assertEquals([a.accepts, b.accepts], [1, 1]);
  context.closing = true;
  a.close();
  b.close();
  places.close();
  await Promise.all(loops);
});

Deno.test("acceptLoop() ends when closing, while accepting or waiting for a place", async () => {
  const places = createPlaces(1);
  const listener = fakeListener([], places);
  const context = loopContext(places);
  const loop = acceptLoop(asListener(listener), context);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(places.free, 0, "held by the pending accept");
  await stop(context, listener, loop);
  assertEquals(places.free, 1);
  assertEquals(context.errors, [], "the closed listener is no accept error");
  assertEquals(context.stats.acceptErrors, {});

  // A second loop, parked at the cap, ends when the places close.
  const full = createPlaces(1);
  full.take();
  const parked = fakeListener([], full);
  const parkedContext = loopContext(full);
  const parkedLoop = acceptLoop(asListener(parked), parkedContext);
  await new Promise((resolve) => setTimeout(resolve, 0));
  parkedContext.closing = true;
  full.close();
  await parkedLoop;
  assertEquals(parked.accepts, 0);
});

Deno.test("acceptLoop() rethrows BadResource when not closing", async () => {
  const places = createPlaces(2);
  const broken = new Deno.errors.BadResource("Bad resource ID");
  const listener = fakeListener([broken], places);
  const context = loopContext(places);
  const error = await assertRejects(
    () => acceptLoop(asListener(listener), context),
    Deno.errors.BadResource,
  );
  assertEquals(error, broken);
  assertEquals(places.free, 2, "its place is given back");
  assertEquals(context.waits, []);
});

Deno.test("serveGreeting() calls onAcceptError with the error alone, as a plain function: not with the server's internals as this", async () => {
  const seen: { self: unknown; code: string }[] = [];
  const closed = Promise.withResolvers<never>();
  let calls = 0;
  const listener = {
    addr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } as Deno.NetAddr,
    accept: () =>
      calls++ === 0 ? Promise.reject(osError("ECONNRESET")) : closed.promise,
    close: () => closed.reject(new Deno.errors.BadResource("closed")),
  };
  const server = serveGreetingWith({
    onAcceptError(this: unknown, _error, _kind, code) {
      seen.push({ self: this, code });
    },
  }, { listeners: [{ listener }] });
  while (seen.length === 0) await new Promise((r) => setTimeout(r, 1));
  await server.shutdown();
  assertEquals(seen, [{ self: undefined, code: "ECONNRESET" }]);
});
