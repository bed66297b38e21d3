import { createPauseQueue, type PauseEntry } from "./greet_pause.ts";

/**
 * The members of `Deno.Conn` a server uses: what `Deno.TcpConn`,
 * `Deno.UnixConn`, the TLS connections and the adopted sockets of passed
 * listeners all have.
 */
export type Conn = Pick<
  Deno.Conn,
  "read" | "write" | "closeWrite" | "close" | "remoteAddr" | "localAddr"
>;

/**
 * One open connection and when it must be closed. A slot is in at most one
 * {@linkcode SlotList} at a time.
 */
export interface Slot {
  /** The connection. */
  conn: Conn;
  /** When to close it, on the table's monotonic clock (Infinity: never). */
  deadline: number;
  /**
   * The client a PROXY protocol header named, when it is not the peer;
   * undefined otherwise (the client is `conn.remoteAddr`).
   */
  client: Deno.Addr | undefined;
  /** The list it is in, if any; none once it is released. */
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
  // Out first, so the scan below never finds the slot itself.
  unlinkSlot(slot);
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

/** Options for {@linkcode createConnectionTable}. */
export interface ConnectionTableOptions {
  /** Longest life of a connection, in ms; 0 for none. */
  timeout: number;
  /** Longest wait for the client to close after the greeting, in ms. */
  linger: number;
  /**
   * Longest wait for what comes before the greeting (a PROXY protocol
   * header), in ms; 0 when nothing does.
   *
   * @default {0}
   */
  handshake?: number;
  /**
   * Longest wait to greet (a TLS handshake and the greeting's write), in ms,
   * when `timeout` is 0: a TLS client that never sends its ClientHello is
   * cut then, not never. Ignored when `timeout` bounds the whole life; 0 for
   * none.
   *
   * @default {0}
   */
  greetTimeout?: number;
  /**
   * How long a connection may wait before it is greeted (`greetPause`), in
   * ms; 0 for no pause (and no queue).
   *
   * @default {0}
   */
  pause?: number;
  /**
   * Called once for every released slot, after its connection is closed:
   * the place it held is free.
   */
  onRelease: () => void;
  /**
   * The monotonic clock, in milliseconds. Only tests replace it: deadlines
   * must not move when the wall clock is stepped (NTP, a resumed VM).
   *
   * @default {() => performance.now()}
   */
  now?: () => number;
}

/**
 * The open connections, each with its deadline, on a monotonic clock. One
 * sweep timer serves every deadline (no timer per connection), and runs only
 * while a connection with a deadline is open.
 */
export interface ConnectionTable {
  /** Connections whose PROXY header is awaited, in deadline order. */
  readonly handshaking: SlotList;
  /** Connections being greeted (TLS handshake included), in deadline order. */
  readonly serving: SlotList;
  /** Greeted connections waiting for their client to close. */
  readonly lingering: SlotList;
  /** How many connections are open. */
  readonly size: number;
  /** True when `greetTimeout` bounds some connections (TLS ones). */
  readonly boundsGreeting: boolean;
  /** True when greeted connections linger (`linger` above 0). */
  readonly lingers: boolean;
  /**
   * Adds an accepted connection, with the table's timeout as its deadline;
   * `greeting` (a TLS connection) has `greetTimeout` when there is none.
   */
  add(conn: Conn, greeting?: boolean): Slot;
  /**
   * Adds an accepted connection that must first send a header, with the
   * handshake timeout as its deadline; then {@linkcode ConnectionTable.established}.
   */
  addHandshaking(conn: Conn): Slot;
  /**
   * Moves a connection whose header has come to the serving list, with the
   * timeout counted from `acceptedAt`; false if it was already released.
   */
  established(slot: Slot, acceptedAt: number, greeting?: boolean): boolean;
  /**
   * Takes the greeting's deadline off a connection that has no whole-life
   * one (a tarpit holds it from then on); a whole-life timeout stays.
   */
  unbound(slot: Slot): void;
  /**
   * Moves a greeted connection to the lingering list, with a deadline no
   * later than its own; false if it was already released.
   */
  linger(slot: Slot): boolean;
  /**
   * Closes the connection and frees its place, exactly once: true the first
   * time, false after. A pending read or write on it then fails.
   */
  release(slot: Slot): boolean;
  /**
   * Starts a greeting pause: `wake` is called by the sweep once the pause
   * has passed, unless {@linkcode ConnectionTable.cancelPause} came first.
   * Only for a table with a `pause`.
   */
  pause(wake: () => void): PauseEntry;
  /** Ends a pause without waking it. */
  cancelPause(entry: PauseEntry): void;
  /** Releases every open connection. */
  releaseAll(): void;
  /** Releases the connections whose deadline has passed. */
  sweep(): void;
  /** Stops the sweep timer (at shutdown). */
  stop(): void;
}

function closeQuietly(conn: Conn) {
  try {
    conn.close();
  } catch {
    // Already closed by the runtime or the peer.
  }
}

/** Creates an empty table. */
export function createConnectionTable(
  options: ConnectionTableOptions,
): ConnectionTable {
  const { timeout, linger, onRelease, handshake = 0, pause = 0 } = options;
  // The deadline of a TLS connection's serving phase: the whole life, or
  // the greeting's; any other has the whole life's alone.
  const greetTimeout = options.greetTimeout ?? 0;
  const serveTimeout = timeout || greetTimeout;
  const now = options.now ?? (() => performance.now());
  const handshaking = createSlotList();
  const serving = createSlotList();
  const lingering = createSlotList();
  // A quarter of the shortest deadline, within 10 to 250 ms: a deadline is
  // met to within that much, at a cost of at most 100 wake-ups a second.
  const sweepEvery = Math.min(
    250,
    Math.max(
      10,
      Math.min(
        serveTimeout || Infinity,
        linger || Infinity,
        handshake || Infinity,
        pause || Infinity,
      ) / 4,
    ),
  );
  let sweeper: ReturnType<typeof setInterval> | undefined;
  const pauses = pause > 0 ? createPauseQueue(pause) : undefined;

  function release(slot: Slot): boolean {
    if (!unlinkSlot(slot)) return false;
    closeQuietly(slot.conn);
    onRelease();
    return true;
  }

  function sweep() {
    const time = now();
    while (handshaking.head && handshaking.head.deadline <= time) {
      release(handshaking.head);
    }
    while (serving.head && serving.head.deadline <= time) {
      release(serving.head);
    }
    while (lingering.head && lingering.head.deadline <= time) {
      release(lingering.head);
    }
    pauses?.sweep(time);
    if (
      handshaking.size + serving.size + lingering.size === 0 && !pauses?.size
    ) stop();
  }

  /** A new slot at the tail of `list`, due in `after` ms (0: never). */
  function addTo(list: SlotList, conn: Conn, after: number): Slot {
    const slot: Slot = {
      conn,
      deadline: after > 0 ? now() + after : Infinity,
      client: undefined,
      list: undefined,
      prev: undefined,
      next: undefined,
    };
    appendSlot(list, slot);
    if (after > 0) sweeper ??= setInterval(sweep, sweepEvery);
    return slot;
  }

  function stop() {
    clearInterval(sweeper);
    sweeper = undefined;
  }

  return {
    handshaking,
    serving,
    lingering,
    get size() {
      return handshaking.size + serving.size + lingering.size;
    },
    boundsGreeting: timeout === 0 && greetTimeout > 0,
    lingers: linger > 0,
    add: (conn, greeting) =>
      addTo(serving, conn, greeting ? serveTimeout : timeout),
    addHandshaking: (conn) => addTo(handshaking, conn, handshake),
    established(slot, acceptedAt, greeting) {
      if (!slot.list) return false;
      slot.deadline = timeout > 0
        ? acceptedAt + timeout
        : greeting && greetTimeout > 0
        ? now() + greetTimeout
        : Infinity;
      // Only the connections accepted during the handshake come after it.
      insertSlot(serving, slot);
      if (slot.deadline < Infinity) sweeper ??= setInterval(sweep, sweepEvery);
      return true;
    },
    unbound(slot) {
      if (timeout > 0 || !slot.list || slot.deadline === Infinity) return;
      slot.deadline = Infinity;
      appendSlot(slot.list, slot);
    },
    linger(slot) {
      if (!slot.list) return false;
      // The greeting's own deadline ends with it; the whole life's does not.
      slot.deadline = timeout > 0
        ? Math.min(slot.deadline, now() + linger)
        : now() + linger;
      insertSlot(lingering, slot);
      sweeper ??= setInterval(sweep, sweepEvery);
      return true;
    },
    pause(wake) {
      if (!pauses) throw new TypeError("This table has no greeting pause");
      sweeper ??= setInterval(sweep, sweepEvery);
      return pauses.add(now(), wake);
    },
    cancelPause: (entry) => pauses?.cancel(entry),
    release,
    releaseAll() {
      while (handshaking.head) release(handshaking.head);
      while (serving.head) release(serving.head);
      while (lingering.head) release(lingering.head);
    },
    sweep,
    stop,
  };
}
