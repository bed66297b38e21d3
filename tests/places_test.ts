import { assertEquals, assertStrictEquals } from "@std/assert";
import { createPlaces } from "../lib/server/places.ts";

/** Lets every settled promise's callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
  await new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("createPlaces() take() and release() count free places", () => {
  const places = createPlaces(3);
  assertEquals(places.free, 3);
  assertStrictEquals(places.take(), undefined);
  assertStrictEquals(places.take(), undefined);
  assertEquals(places.free, 1);
  places.release();
  assertEquals(places.free, 2);
  places.release();
  assertEquals(places.free, 3);
});

Deno.test("createPlaces() take() returns a pending promise at the cap", async () => {
  const places = createPlaces(1);
  assertStrictEquals(places.take(), undefined);
  const waiting = places.take();
  if (!(waiting instanceof Promise)) throw new Error("No promise at the cap");
  let woken = false;
  waiting.then(() => woken = true);
  await settle();
  assertEquals(woken, false, "no place was freed");
  assertEquals(places.free, 0);
  places.release();
  await settle();
  assertEquals(woken, true);
  // The place went to the waiter, not back to the pool.
  assertEquals(places.free, 0);
});

Deno.test("createPlaces() release() hands one place to the longest waiter only", async () => {
  const places = createPlaces(1);
  places.take();
  const order: number[] = [];
  for (let i = 0; i < 3; i++) places.take()!.then(() => order.push(i));
  places.release();
  await settle();
  assertEquals(order, [0], "one release wakes one waiter");
  assertEquals(places.free, 0);
  places.release();
  await settle();
  assertEquals(order, [0, 1]);
  places.release();
  await settle();
  assertEquals(order, [0, 1, 2]);
  assertEquals(places.free, 0);
  // No one waits any more: the place goes back to the pool.
  places.release();
  assertEquals(places.free, 1);
});

Deno.test("createPlaces() close() wakes every waiter", async () => {
  const places = createPlaces(2);
  places.take();
  places.take();
  const woken: number[] = [];
  const waiters = [0, 1, 2, 3].map((i) =>
    places.take()!.then(() => woken.push(i))
  );
  places.close();
  await Promise.all(waiters);
  assertEquals(woken, [0, 1, 2, 3]);
  // Woken by close(), they hold no place; later releases refill the pool.
  assertEquals(places.free, 0);
  places.release();
  places.release();
  assertEquals(places.free, 2);
});
