import type { Admission } from "./admission.ts";
import type { ConnectionOutcome } from "./stats.ts";
import { startTimer, stopTimer } from "./wait.ts";

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
 * A listener as the accept loop takes it: a `Deno.Listener`, a TLS listener
 * or the listener of a passed descriptor, whose connections have the same
 * members a greeting uses.
 */
export interface Acceptor {
  readonly addr: Deno.Addr;
  accept(): Promise<Conn>;
  close(): void;
}

/** A member of a {@linkcode List}: something due at `deadline`. */
interface Linked<N> {
  /** When it is due, on the table's monotonic clock (Infinity: never). */
  deadline: number;
  /** The list it is in, if any; none once it is released. */
  list: List<N> | undefined;
  /** The neighbour towards the head. */
  prev: N | undefined;
  /** The neighbour towards the tail. */
  next: N | undefined;
}

/**
 * A doubly linked list in deadline order. Every member of a list gets the
 * same timeout when it is appended, so appending keeps the order and the
 * expired ones are always at the head: sweeping costs only what expired.
 * Unlike a Set or Map of connections, it holds no large table that the
 * garbage collector must keep rescanning and promoting under load.
 */
class List<N> {
  /** The member with the earliest deadline. */
  head: N | undefined;
  /** The member appended last. */
  tail: N | undefined;
  /**
   * The member with the latest finite deadline: the members after it are
   * due never (held tarpit clients, lingering without a timeout), and a
   * new finite deadline is placed without walking past them.
   */
  lastFinite: N | undefined;
  /** How many members are in the list. */
  size = 0;
}

/**
 * One open connection and when it must be closed. A slot is in at most one
 * list at a time.
 */
export interface Slot extends Linked<Slot> {
  /** The connection. */
  conn: Conn;
  /**
   * The client a PROXY protocol header named, when it is not the peer;
   * undefined otherwise (the client is `conn.remoteAddr`).
   */
  client: Deno.Addr | undefined;
  /**
   * How it ended: decided before serving (refused, failed template), or
   * once served.
   */
  outcome?: ConnectionOutcome;
  /**
   * Why, for a refusal or an error; `evicted` marks a metrics connection
   * released while still reading its request, to make room for a new one.
   */
  reason?: string;
  /** The admission that admitted it (even if a reload replaced it since). */
  admission?: Admission;
  /** Its host in `admission`, when it holds a per-IP place there. */
  host?: string;
}

/** A greeting pause: `wake` is called once it has passed. */
export interface PauseEntry extends Linked<PauseEntry> {
  wake: () => void;
}

/** Takes `node` out of its list; false if it was in none. */
function unlink<N extends Linked<N>>(node: N): boolean {
  const list = node.list;
  if (!list) return false;
  // The one before a finite deadline is finite too (or none).
  if (list.lastFinite === node) list.lastFinite = node.prev;
  if (node.prev) node.prev.next = node.next;
  else list.head = node.next;
  if (node.next) node.next.prev = node.prev;
  else list.tail = node.prev;
  node.list = node.prev = node.next = undefined;
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
   * header), in ms; 0 when nothing does (no connection is added
   * handshaking then).
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
  onRelease: (slot: Slot) => void;
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
export type ConnectionTable = ReturnType<typeof createConnectionTable>;

/**
 * Writes all of `bytes` to `conn`, however many writes it takes. (A
 * greeting's own write counts what was written if it fails: connection.ts.)
 */
export async function writeAll(conn: Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** Closes `it`, if it is not closed already (by the runtime or the peer). */
export function closeQuietly(it: { close(): void }): void {
  try {
    it.close();
  } catch {
    // Closed already.
  }
}

/** Creates an empty table. */
export function createConnectionTable(options: ConnectionTableOptions) {
  const { timeout, linger, onRelease, handshake = 0, pause = 0 } = options;
  // The deadline of a TLS connection's serving phase: the whole life, or
  // the greeting's; any other has the whole life's alone.
  const greetTimeout = options.greetTimeout ?? 0;
  const serveTimeout = timeout || greetTimeout;
  const now = options.now ?? (() => performance.now());
  // In the order a connection goes through them.
  const slotLists = [new List<Slot>(), new List<Slot>(), new List<Slot>()];
  const [handshaking, serving, lingering] = slotLists;
  const pauses = new List<PauseEntry>();
  // A quarter of the shortest deadline, within 10 to 250 ms: a deadline is
  // met to within that much, at a cost of at most 100 wake-ups a second.
  const shortest = Math.min(
    ...[serveTimeout, linger, handshake, pause].map((ms) => ms || Infinity),
  );
  const sweepEvery = Math.min(250, Math.max(10, shortest / 4));
  let sweeper: AbortSignal | undefined;

  /**
   * Puts `node` into `list` in deadline order, taking it out of its old list.
   * A deadline of never goes to the tail; a finite one is looked for back
   * from the latest finite deadline, where a new one almost always belongs,
   * so it is as cheap as appending unless the deadline is earlier than most.
   * A finite deadline arms the sweep.
   */
  function insert<N extends Linked<N>>(list: List<N>, node: N): void {
    // Out first, so the scan below never finds the node itself.
    unlink(node);
    const finite = node.deadline !== Infinity;
    let after = finite ? list.lastFinite : list.tail;
    while (after && after.deadline > node.deadline) after = after.prev;
    if (finite && after === list.lastFinite) list.lastFinite = node;
    node.list = list;
    node.prev = after;
    node.next = after ? after.next : list.head;
    if (after) after.next = node;
    else list.head = node;
    if (node.next) node.next.prev = node;
    else list.tail = node;
    list.size++;
    if (finite) sweeper ??= startTimer(sweepEvery, sweep);
  }
  const open = () => handshaking.size + serving.size + lingering.size;

  function release(slot: Slot): boolean {
    if (!unlink(slot)) return false;
    closeQuietly(slot.conn);
    onRelease(slot);
    return true;
  }

  function sweep() {
    const time = now();
    for (const list of slotLists) {
      while (list.head && list.head.deadline <= time) release(list.head);
    }
    while (pauses.head && pauses.head.deadline <= time) {
      const entry = pauses.head;
      unlink(entry);
      entry.wake();
    }
    // The next sweep, if this one was armed and anything is still open.
    const again = sweeper !== undefined && open() + pauses.size > 0;
    stop();
    if (again) sweeper = startTimer(sweepEvery, sweep);
  }

  /** A new slot at the tail of `list`, due in `after` ms (0: never). */
  function addTo(list: List<Slot>, conn: Conn, after: number): Slot {
    const slot: Slot = {
      conn,
      deadline: after > 0 ? now() + after : Infinity,
      client: undefined,
      list: undefined,
      prev: undefined,
      next: undefined,
      outcome: undefined,
      reason: undefined,
      admission: undefined,
      host: undefined,
    };
    insert(list, slot);
    return slot;
  }

  function stop() {
    sweeper = stopTimer(sweeper);
  }

  return {
    /** Connections whose PROXY header is awaited, in deadline order. */
    handshaking,
    /** Connections being greeted (TLS handshake included), in deadline order. */
    serving,
    /** Greeted connections waiting for their client to close. */
    lingering,
    /** How many connections are open. */
    get size(): number {
      return open();
    },
    /** True when `greetTimeout` bounds some connections (TLS ones). */
    boundsGreeting: timeout === 0 && greetTimeout > 0,
    /** True when greeted connections linger (`linger` above 0). */
    lingers: linger > 0,
    /**
     * Adds an accepted connection, with the table's timeout as its deadline;
     * `greeting` (a TLS connection) has `greetTimeout` when there is none.
     */
    add: (conn: Conn, greeting?: boolean): Slot =>
      addTo(serving, conn, greeting ? serveTimeout : timeout),
    /**
     * Adds an accepted connection that must first send a header, with the
     * handshake timeout as its deadline; then `established`.
     */
    addHandshaking: (conn: Conn): Slot => addTo(handshaking, conn, handshake),
    /**
     * Moves a connection whose header has come to the serving list, with the
     * timeout counted from its accept; false if it was already released.
     */
    established(slot: Slot, greeting?: boolean): boolean {
      if (!slot.list) return false;
      // As `add` would, but the whole life counts from the accept, which
      // was a handshake timeout before the handshake's deadline.
      const after = greeting ? serveTimeout : timeout;
      slot.deadline = after > 0
        ? (timeout > 0 ? slot.deadline - handshake : now()) + after
        : Infinity;
      // Only the connections accepted during the handshake come after it.
      insert(serving, slot);
      return true;
    },
    /**
     * Takes the greeting's deadline off a connection that has no whole-life
     * one (a tarpit holds it from then on); a whole-life timeout stays.
     */
    unbound(slot: Slot): void {
      if (timeout > 0 || !slot.list || slot.deadline === Infinity) return;
      slot.deadline = Infinity;
      insert(slot.list, slot);
    },
    /**
     * Moves a greeted connection to the lingering list, with a deadline no
     * later than its own; false if it was already released.
     */
    linger(slot: Slot): boolean {
      if (!slot.list) return false;
      // The greeting's own deadline ends with it; the whole life's does not.
      slot.deadline = timeout > 0
        ? Math.min(slot.deadline, now() + linger)
        : now() + linger;
      insert(lingering, slot);
      return true;
    },
    /**
     * Starts a greeting pause: `wake` is called by the sweep once the pause
     * has passed, unless `cancelPause` came first. Only for a table with a
     * `pause`.
     */
    pause(wake: () => void): PauseEntry {
      if (pause <= 0) throw new TypeError("This table has no greeting pause");
      const entry: PauseEntry = {
        deadline: now() + pause,
        wake,
        list: undefined,
        prev: undefined,
        next: undefined,
      };
      insert(pauses, entry);
      return entry;
    },
    /** Ends a pause without waking it. */
    cancelPause: (entry: PauseEntry): void => void unlink(entry),
    /**
     * Closes the connection and frees its place, exactly once: true the first
     * time, false after. A pending read or write on it then fails.
     */
    release,
    /** Releases every open connection. */
    releaseAll(): void {
      for (const list of slotLists) while (list.head) release(list.head);
    },
    /** Releases the connections whose deadline has passed. */
    sweep,
    /** Stops the sweep timer (at shutdown). */
    stop,
  };
}
