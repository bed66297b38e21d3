import { assert, assertEquals, assertStrictEquals } from "@std/assert";
import {
  type ConnectionTableOptions,
  createConnectionTable,
  type Slot,
} from "../lib/server/connection_table.ts";
import { waitUntil } from "./_helpers.ts";
import { liveTimers } from "../lib/server/wait.ts";

const HOUR = 3_600_000;

/** A stand-in for a connection: the table only ever calls close(). */
interface FakeConn {
  closes: number;
  close(): void;
}

function fakeConn(throwOnClose = false): FakeConn {
  return {
    closes: 0,
    close() {
      this.closes++;
      if (throwOnClose) throw new Deno.errors.BadResource("Already closed");
    },
  };
}

function asConn(conn: FakeConn): Deno.Conn {
  return conn as unknown as Deno.Conn;
}

/** A table on a clock the test moves by hand, counting its releases. */
function tableAt(
  options: Omit<ConnectionTableOptions, "onRelease" | "now">,
  start = 1_000,
) {
  const clock = { time: start };
  const counts = { released: 0 };
  const table = createConnectionTable({
    ...options,
    onRelease: () => counts.released++,
    now: () => clock.time,
  });
  return { table, clock, counts };
}

/** The slots of a list from head to tail, checking its links on the way. */
function walk(list: NonNullable<Slot["list"]>): Slot[] {
  const slots: Slot[] = [];
  let prev: Slot | undefined;
  for (let slot = list.head; slot; slot = slot.next) {
    assertStrictEquals(slot.prev, prev, "prev link");
    assertStrictEquals(slot.list, list, "list link");
    slots.push(slot);
    if (slots.length > list.size) break;
    prev = slot;
  }
  assertStrictEquals(list.tail, prev, "tail link");
  assertEquals(slots.length, list.size, "reachable slots = size");
  return slots;
}

/** Runs `fn` with Date.now() shifted by `offset` ms, then restores it. */
function withWallClockShifted(offset: number, fn: () => void): void {
  const realNow = Date.now;
  Date.now = () => realNow.call(Date) + offset;
  try {
    fn();
  } finally {
    Date.now = realNow;
  }
}

Deno.test("createConnectionTable() closes at the monotonic deadline, whatever the wall clock does", () => {
  const { table, clock, counts } = tableAt({ timeout: 100, linger: 0 });
  const conn = fakeConn();
  try {
    const slot = table.add(asConn(conn));
    assertEquals(slot.deadline, 1_100);
    // A forward wall-clock step does not close it early.
    clock.time = 1_099;
    withWallClockShifted(+HOUR, () => table.sweep());
    assertEquals([conn.closes, counts.released, table.size], [0, 0, 1]);
    // A backward step does not keep it open past its deadline.
    clock.time = 1_100;
    withWallClockShifted(-HOUR, () => table.sweep());
    assertEquals([conn.closes, counts.released, table.size], [1, 1, 0]);
  } finally {
    table.stop();
  }
});

Deno.test("createConnectionTable() runs on performance.now() by default, not Date.now()", () => {
  let released = 0;
  const table = createConnectionTable({
    timeout: 10_000,
    linger: 0,
    onRelease: () => released++,
  });
  const conn = fakeConn();
  const realPerformanceNow = performance.now;
  try {
    table.add(asConn(conn));
    withWallClockShifted(+HOUR, () => table.sweep());
    assertEquals([conn.closes, released], [0, 0], "wall clock +1 h");
    // Only the monotonic clock moving past the deadline closes it.
    const base = realPerformanceNow.call(performance);
    performance.now = () => base + 10_001;
    table.sweep();
    assertEquals([conn.closes, released], [1, 1], "monotonic clock +10 s");
  } finally {
    performance.now = realPerformanceNow;
    table.stop();
  }
});

Deno.test("createConnectionTable() linger() never extends a deadline", () => {
  const { table, clock, counts } = tableAt({ timeout: 100, linger: 1_000 });
  const conn = fakeConn();
  try {
    const slot = table.add(asConn(conn));
    clock.time = 1_010;
    assert(table.linger(slot));
    // min(timeout's 1100, 1010 + linger 1000): the earlier one stays.
    assertEquals(slot.deadline, 1_100);
    assertStrictEquals(slot.list, table.lingering);
    assertEquals([table.serving.size, table.lingering.size], [0, 1]);
    clock.time = 1_099;
    table.sweep();
    assertEquals(conn.closes, 0);
    clock.time = 1_100;
    table.sweep();
    assertEquals([conn.closes, counts.released], [1, 1]);
  } finally {
    table.stop();
  }
});

Deno.test("createConnectionTable() linger() shortens a deadline to now + linger", () => {
  const { table, clock, counts } = tableAt({ timeout: 1_000, linger: 50 });
  const conn = fakeConn();
  try {
    const slot = table.add(asConn(conn));
    clock.time = 1_010;
    assert(table.linger(slot));
    assertEquals(slot.deadline, 1_060);
    clock.time = 1_059;
    table.sweep();
    assertEquals(conn.closes, 0);
    clock.time = 1_060;
    table.sweep();
    assertEquals([conn.closes, counts.released], [1, 1]);
  } finally {
    table.stop();
  }
});

Deno.test("createConnectionTable() keeps lingering slots in deadline order", () => {
  const { table, clock } = tableAt({ timeout: 1_000, linger: 500 }, 0);
  const early = fakeConn();
  const late = fakeConn();
  try {
    const a = table.add(asConn(early)); // deadline 1000
    clock.time = 600;
    const b = table.add(asConn(late)); // deadline 1600
    clock.time = 650;
    table.linger(b); // min(1600, 1150) = 1150
    clock.time = 700;
    table.linger(a); // min(1000, 1200) = 1000: goes before b
    assertEquals(walk(table.lingering), [a, b]);
    clock.time = 1_000;
    table.sweep();
    assertEquals([early.closes, late.closes], [1, 0]);
    clock.time = 1_150;
    table.sweep();
    assertEquals([early.closes, late.closes], [1, 1]);
  } finally {
    table.stop();
  }
});

Deno.test("createConnectionTable() release() closes and frees exactly once", () => {
  const { table, clock, counts } = tableAt({ timeout: 100, linger: 0 });
  const conn = fakeConn();
  try {
    const slot = table.add(asConn(conn));
    assertEquals(table.release(slot), true);
    assertEquals(table.release(slot), false);
    assertEquals(table.linger(slot), false, "linger after release");
    clock.time = 5_000;
    table.sweep();
    table.releaseAll();
    assertEquals([conn.closes, counts.released, table.size], [1, 1, 0]);
  } finally {
    table.stop();
  }
});

Deno.test("createConnectionTable() release() after a sweep released it does nothing", () => {
  const { table, clock, counts } = tableAt({ timeout: 100, linger: 1_000 });
  const serving = fakeConn();
  const lingering = fakeConn();
  try {
    const a = table.add(asConn(serving));
    const b = table.add(asConn(lingering));
    table.linger(b);
    clock.time = 1_100;
    table.sweep();
    assertEquals([serving.closes, lingering.closes, counts.released], [
      1,
      1,
      2,
    ]);
    assertEquals([table.release(a), table.release(b)], [false, false]);
    assertEquals([serving.closes, lingering.closes, counts.released], [
      1,
      1,
      2,
    ]);
  } finally {
    table.stop();
  }
});

Deno.test("createConnectionTable() release() frees the place even if close() throws", () => {
  const { table, counts } = tableAt({ timeout: 100, linger: 0 });
  const conn = fakeConn(true);
  try {
    const slot = table.add(asConn(conn));
    assertEquals(table.release(slot), true);
    assertEquals(table.release(slot), false);
    assertEquals([conn.closes, counts.released, table.size], [1, 1, 0]);
  } finally {
    table.stop();
  }
});

Deno.test("createConnectionTable() releaseAll() releases serving and lingering slots once each", () => {
  const { table, counts } = tableAt({ timeout: 100, linger: 50 });
  const conns = [fakeConn(), fakeConn(), fakeConn(), fakeConn()];
  try {
    const slots = conns.map((conn) => table.add(asConn(conn)));
    table.linger(slots[1]);
    table.linger(slots[3]);
    table.release(slots[0]);
    assertEquals([table.serving.size, table.lingering.size], [1, 2]);
    table.releaseAll();
    assertEquals(conns.map((conn) => conn.closes), [1, 1, 1, 1]);
    assertEquals(counts.released, 4);
    assertEquals(table.size, 0);
    assertEquals(walk(table.serving), []);
    assertEquals(walk(table.lingering), []);
    table.releaseAll();
    assertEquals(counts.released, 4, "a second releaseAll() frees nothing");
  } finally {
    table.stop();
  }
});

// The next tests end without calling stop(): the sweep timer must stop by
// itself once the table is empty. (The test sanitizer does not see the
// runtime's own timers: liveTimers() counts them.)

Deno.test("createConnectionTable() sweep timer closes expired connections, then stops when empty", async () => {
  let released = 0;
  const table = createConnectionTable({
    timeout: 40,
    linger: 0,
    onRelease: () => released++,
  });
  const before = liveTimers();
  const first = fakeConn();
  table.add(asConn(first));
  assertEquals(liveTimers(), before + 1, "the sweep timer");
  await waitUntil(() => first.closes === 1, 2_000, "first timeout");
  // Stopped when it emptied; a new connection starts it again.
  const second = fakeConn();
  table.add(asConn(second));
  await waitUntil(() => second.closes === 1, 2_000, "second timeout");
  assertEquals(released, 2);
  // Let one more sweep see the empty table and stop the timer.
  await waitUntil(() => liveTimers() === before, 2_000, "the timer stopped");
});

Deno.test("createConnectionTable() sweep timer stops after the last connection is released by hand", async () => {
  const table = createConnectionTable({
    timeout: 40,
    linger: 0,
    onRelease: () => {},
  });
  const before = liveTimers();
  const slots = [fakeConn(), fakeConn()].map((conn) => table.add(asConn(conn)));
  assertEquals(liveTimers(), before + 1, "one sweep timer for both");
  for (const slot of slots) table.release(slot);
  // Longer than a sweep interval (10 ms here): a sweep sees the table empty.
  await new Promise((resolve) => setTimeout(resolve, 60));
  assertEquals(liveTimers(), before);
});

Deno.test("createConnectionTable() add() starts no timer without a timeout", () => {
  const table = createConnectionTable({
    timeout: 0,
    linger: 0,
    onRelease: () => {},
  });
  const conn = fakeConn();
  const before = liveTimers();
  const slot = table.add(asConn(conn));
  assertEquals(liveTimers(), before);
  // Nor does a sweep by hand: only a finite deadline arms the timer.
  table.sweep();
  assertEquals(liveTimers(), before);
  assertEquals(slot.deadline, Infinity);
  table.release(slot);
  assertEquals(conn.closes, 1);
});

Deno.test("createConnectionTable() linger() twice on one slot keeps the list sound", () => {
  const { table, clock, counts } = tableAt({ timeout: 100, linger: 1_000 }, 0);
  const first = fakeConn();
  const second = fakeConn();
  try {
    const a = table.add(asConn(first)); // deadline 100
    clock.time = 50;
    const b = table.add(asConn(second)); // deadline 150
    table.linger(a);
    table.linger(b);
    clock.time = 60;
    table.linger(a); // min(100, 1060) = 100: stays where it is
    assertEquals(walk(table.lingering), [a, b]);
    table.releaseAll();
    assertEquals([first.closes, second.closes, counts.released], [1, 1, 2]);
  } finally {
    table.stop();
  }
});

Deno.test("createConnectionTable() greetTimeout bounds a TLS greeting under timeout 0, not other connections, a tarpit hold or the lingering after it", () => {
  const { table, clock, counts } = tableAt({
    timeout: 0,
    linger: HOUR,
    greetTimeout: 100,
  });
  try {
    const stalled = fakeConn();
    const greeted = fakeConn();
    const plain = fakeConn();
    const held = fakeConn();
    table.add(asConn(stalled), true);
    const slot = table.add(asConn(greeted), true);
    // Not TLS: no greeting's deadline; and one a tarpit took off it.
    table.add(asConn(plain));
    table.unbound(table.add(asConn(held), true));
    clock.time += 50;
    // Greeted in time: from now on only the linger bounds it.
    assert(table.linger(slot));
    clock.time += 51;
    table.sweep();
    assertEquals([stalled.closes, greeted.closes, counts.released], [1, 0, 1]);
    // Lingering since 50 ms: due at 50 ms + HOUR from the start.
    clock.time += HOUR - 60;
    table.sweep();
    assertEquals(greeted.closes, 0);
    clock.time += 10;
    table.sweep();
    assertEquals([greeted.closes, counts.released], [1, 2]);
    assertEquals([plain.closes, held.closes], [0, 0]);
  } finally {
    table.stop();
  }
});

Deno.test("createConnectionTable() keeps deadline order when TLS greetings come and go among never-due slots (held tarpit clients)", () => {
  const { table, clock } = tableAt({
    timeout: 0,
    linger: 0,
    greetTimeout: 100,
  });
  try {
    // A random mix, with a seeded generator: holds (never due), TLS
    // greetings due 100 ms after they came, some greeted and held, some
    // released by hand.
    let seed = 42;
    const random = () =>
      (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const open: Slot[] = [];
    for (let i = 0; i < 2_000; i++) {
      clock.time += Math.floor(random() * 3);
      const roll = random();
      if (roll < 0.4) table.unbound(table.add(asConn(fakeConn()), true));
      else if (roll < 0.8) open.push(table.add(asConn(fakeConn()), true));
      else if (open.length > 0) {
        const slot = open.splice(Math.floor(random() * open.length), 1)[0];
        if (random() < 0.5) table.unbound(slot);
        else table.release(slot);
      }
      if (i % 97 === 0) table.sweep();
      const slots = walk(table.serving);
      for (let j = 1; j < slots.length; j++) {
        assert(slots[j - 1].deadline <= slots[j].deadline, `order at ${i}`);
      }
    }
    // Every finite deadline expires in order; the held ones stay.
    clock.time += 200;
    table.sweep();
    assert(walk(table.serving).every((slot) => slot.deadline === Infinity));
  } finally {
    table.releaseAll();
    table.stop();
  }
});

Deno.test("createConnectionTable() established(): the whole life counts from the accept, a greeting's deadline from now", () => {
  const { table, clock } = tableAt({
    timeout: 100,
    linger: 0,
    handshake: 30,
  });
  const slot = table.addHandshaking(asConn(fakeConn()));
  assertEquals(slot.deadline, 1_030);
  clock.time = 1_020;
  assert(table.established(slot, true));
  assertEquals(slot.deadline, 1_100);
  assertStrictEquals(slot.list, table.serving);
  table.releaseAll();
  table.stop();
  const greeting = tableAt({
    timeout: 0,
    linger: 0,
    handshake: 30,
    greetTimeout: 50,
  });
  const tls = greeting.table.addHandshaking(asConn(fakeConn()));
  const plain = greeting.table.addHandshaking(asConn(fakeConn()));
  greeting.clock.time = 1_020;
  assert(greeting.table.established(tls, true));
  assert(greeting.table.established(plain, false));
  assertEquals(tls.deadline, 1_070);
  assertEquals(plain.deadline, Infinity);
  greeting.table.release(plain);
  assert(!greeting.table.established(plain, false));
  greeting.table.releaseAll();
  greeting.table.stop();
});
