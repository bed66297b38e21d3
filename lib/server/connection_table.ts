/**
 * One open connection and when it must be closed. A slot is in at most one
 * {@linkcode SlotList} at a time.
 */
export interface Slot {
  /** The connection. */
  conn: Deno.Conn;
  /** When to close it, in milliseconds since the epoch (Infinity: never). */
  deadline: number;
  /** The list it is in, if any. */
  list: SlotList | undefined;
  /** The neighbour towards the head. */
  prev: Slot | undefined;
  /** The neighbour towards the tail. */
  next: Slot | undefined;
}

/**
 * A doubly linked list of slots in deadline order. Every slot of a list gets
 * the same timeout when it is appended, so appending keeps the order and the
 * expired ones are always at the head: sweeping costs only what expired.
 * Unlike a Set or Map of connections, it holds no large table that the
 * garbage collector must keep rescanning and promoting under load.
 */
export interface SlotList {
  /** The slot with the earliest deadline. */
  head: Slot | undefined;
  /** The slot appended last. */
  tail: Slot | undefined;
  /** How many slots are in the list. */
  size: number;
}

/** Creates an empty list. */
export function createSlotList(): SlotList {
  return { head: undefined, tail: undefined, size: 0 };
}

/** Creates a slot that is in no list yet. */
export function createSlot(conn: Deno.Conn, deadline: number): Slot {
  return { conn, deadline, list: undefined, prev: undefined, next: undefined };
}

/** Appends `slot` at the tail of `list`, taking it out of its old list. */
export function appendSlot(list: SlotList, slot: Slot): void {
  unlinkSlot(slot);
  slot.list = list;
  slot.prev = list.tail;
  slot.next = undefined;
  if (list.tail) list.tail.next = slot;
  else list.head = slot;
  list.tail = slot;
  list.size++;
}

/**
 * Puts `slot` into `list` in deadline order, taking it out of its old list.
 * Scans from the tail, where a new deadline almost always belongs, so it is
 * as cheap as appending unless the slot's deadline is earlier than most.
 */
export function insertSlot(list: SlotList, slot: Slot): void {
  let after = list.tail;
  while (after && after.deadline > slot.deadline) after = after.prev;
  if (after === list.tail) {
    appendSlot(list, slot);
    return;
  }
  unlinkSlot(slot);
  slot.list = list;
  slot.prev = after;
  slot.next = after ? after.next : list.head;
  if (after) after.next = slot;
  else list.head = slot;
  slot.next!.prev = slot;
  list.size++;
}

/** Takes `slot` out of its list; false if it was in none. */
export function unlinkSlot(slot: Slot): boolean {
  const list = slot.list;
  if (!list) return false;
  if (slot.prev) slot.prev.next = slot.next;
  else list.head = slot.next;
  if (slot.next) slot.next.prev = slot.prev;
  else list.tail = slot.prev;
  slot.list = slot.prev = slot.next = undefined;
  list.size--;
  return true;
}
