/**
 * The tarpit: admitted clients are held and sent a never-ending banner, a
 * little every interval, until they leave. Built for tens of thousands of
 * held clients at Deno's floor of memory per connection:
 *
 * - one timer for every held client: they wait in one queue in the order
 *   they are due (a client's turn comes an interval after its last), and
 *   the timer wakes for the head, giving every client due within 10 ms its
 *   turn (at most 64 at once, so a burst is written in small batches, which
 *   keeps few writes in flight and the garbage they make young);
 * - no buffer per client: every line is a view into one pool made at start
 *   (a greeting template, made per client, is the one exception);
 * - no pending read per client: a client that leaves is seen by the next
 *   write, which fails (at once after a reset; one write later after a
 *   clean close, whose first write draws the reset), and is freed then;
 * - a client whose write is still pending a whole interval later (10 s at
 *   least: under load the server's own writes take a while to complete),
 *   or that takes only part of a line, is freed at once.
 *
 * @module
 */
import type { Admission } from "./admission.ts";
import type { Slot } from "./connection_table.ts";
import type { ConnectionOutcome } from "./stats.ts";
import { MAX_TIMER_MS } from "./wait.ts";

/**
 * What a tarpit sends: `ssh` (endlessh's random printable lines, never
 * starting with `SSH-`, so an SSH client keeps waiting for the version line
 * of RFC 4253 §4.2), `greeting` (the greeting itself, dripped and repeated
 * without end) or `http` (an `HTTP/1.1 200 OK` status line, then header
 * lines without end).
 *
 * @example Usage
 * ```ts
 * import { TARPIT_STYLES, type TarpitStyle } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const style: TarpitStyle = "http";
 * assertEquals(TARPIT_STYLES.includes(style), true);
 * ```
 */
export type TarpitStyle = "ssh" | "greeting" | "http";

/** The tarpit styles, the default first. */
export const TARPIT_STYLES: readonly TarpitStyle[] = [
  "ssh",
  "greeting",
  "http",
];
/** How often a held client is sent more, by default, in milliseconds. */
export const DEFAULT_TARPIT_INTERVAL = 10_000;
/** The longest line sent by default, CRLF included, in bytes. */
export const DEFAULT_TARPIT_LINE_LENGTH = 32;
/** The longest line there may be: RFC 4253 caps SSH's lines at 255 bytes. */
export const MAX_TARPIT_LINE_LENGTH = 255;
/** The shortest line of the http style, CRLF included: `X-a: b` and CRLF. */
export const MIN_HTTP_LINE_LENGTH = 8;
/** The HTTP style's first line. */
const HTTP_STATUS = new TextEncoder().encode("HTTP/1.1 200 OK\r\n");
/** The bytes of the http style's header names: an HTTP token. */
const ALNUM = new TextEncoder().encode("abcdefghijklmnopqrstuvwxyz0123456789");
/** Lines in the shared pool of the ssh and http styles. */
const POOL_SIZE = 1024;
/** Clients due within this many ms of a tick have their turn in it. */
const TICK_SLACK = 10;
/** The most turns in one tick; the rest follow BURST_GAP ms later. */
const MAX_TURNS_PER_TICK = 64;
/** The pause between two ticks of a burst, in ms. */
const BURST_GAP = 5;
/** The shortest wait before a pending write is taken for a blocked client. */
const MIN_BLOCKED_WAIT = 10_000;
/** The most greeting chunks made up front; beyond, views are made per write. */
const MAX_GREETING_CHUNKS = 4096;

/**
 * Serving in tarpit mode; see {@linkcode ServeGreetingOptions.tarpit}.
 *
 * @example Hold SSH scanners, one line every 10 s
 * ```ts
 * import { serveGreeting, type TarpitOptions } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const tarpit: TarpitOptions = { style: "ssh", interval: 10_000 };
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0, tarpit });
 * assertEquals(server.tarpit?.clients, 0);
 * ```
 */
export interface TarpitOptions {
  /**
   * What is sent.
   *
   * @default {"ssh"}
   */
  style?: TarpitStyle;
  /**
   * How often each held client is sent one line (ssh, http) or one chunk
   * of the greeting, in milliseconds.
   *
   * @default {10000}
   */
  interval?: number;
  /**
   * The longest line of the ssh and http styles, CRLF included (3 to 255
   * bytes; 8 at least for http); for the greeting style, the most bytes of
   * the greeting sent per interval.
   *
   * @default {32}
   */
  lineLength?: number;
}

/**
 * What a tarpit has done so far, as {@linkcode GreetingServer.tarpit}
 * shows it.
 *
 * @example Usage
 * ```ts
 * import { serveGreeting, type TarpitStats } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   tarpit: {},
 * });
 * const stats: Readonly<TarpitStats> = server.tarpit!;
 * assertEquals(stats.bytesSent, 0);
 * ```
 */
export interface TarpitStats {
  /** Clients held now. */
  clients: number;
  /** Bytes sent to held clients, in total. */
  bytesSent: number;
}

/** The tarpit options with every default filled in. */
export type ResolvedTarpit = Required<TarpitOptions>;

/** How one held client ended, for the table's owner to record. */
export interface HeldEnd {
  /** The client's slot (already released). */
  slot: Slot;
  outcome: ConnectionOutcome;
  reason: string | undefined;
  /** Bytes sent to it. */
  bytesWritten: number;
  /** The greeting's length (greeting style), else 0. */
  greetingLength: number;
  /** How long it lived, in ms: as long as it was held. */
  duration: number;
  /** How long it was held, in ms. */
  held: number;
}

/** What a tarpit needs from the server it runs in. */
export interface TarpitHost {
  /** True from the start of shutdown. */
  readonly closing: boolean;
  /** Closes the connection and frees its place; false if already done. */
  release(slot: Slot): boolean;
  /** The outcome (and reason) of a failed write. */
  failure(error: unknown): [ConnectionOutcome, string | undefined];
  /** Counts the ending and tells the observers; called once per client. */
  ended(end: HeldEnd): void;
}

/** A tarpit that holds clients; see {@linkcode createTarpit}. */
export interface Tarpit {
  /** Its counters (live). */
  readonly stats: Readonly<TarpitStats>;
  /**
   * Holds an admitted client until it leaves. `greeting` is its greeting
   * (used by the greeting style); `admission` and `host`, when given, are
   * released as it ends.
   */
  hold(
    slot: Slot,
    greeting: Uint8Array,
    admission: Admission | undefined,
    host: string | undefined,
  ): void;
  /** Releases every held client at once (shutdown), as `aborted`. */
  releaseAll(): void;
}

/** One held client: a node of the tarpit's queue. */
class Held {
  sent = 0;
  /** When its pending write was started; -1 when none is. */
  writing = -1;
  done = false;
  prev: Held | undefined = undefined;
  next: Held | undefined = undefined;
  constructor(
    readonly slot: Slot,
    /** When it was held, on the monotonic clock. */
    readonly since: number,
    /** When its next turn is, on the monotonic clock. */
    public due: number,
    /** Its own greeting (a template's), when the greeting style needs it. */
    readonly greeting: Uint8Array | undefined,
    readonly admission: Admission | undefined,
    readonly host: string | undefined,
  ) {}
}

/**
 * The shared pool of the ssh or the http style: `count` random lines, each
 * 3 (http: 8) to `lineLength` bytes with its CRLF, all views into one
 * buffer. An ssh line is printable ASCII not starting with `S` (so never
 * with `SSH-`); an http line is a header `X-name: value`, its name of
 * letters and digits (an HTTP token), its value of printable ASCII without
 * a space.
 */
export function tarpitLines(
  style: "ssh" | "http",
  lineLength: number,
  count = POOL_SIZE,
): Uint8Array[] {
  // A line of length n takes n draws at most: one buffer of them does.
  const random = new Uint8Array(count * lineLength);
  for (let at = 0; at < random.length; at += 65_536) {
    // getRandomValues gives 64 KiB at most per call.
    crypto.getRandomValues(random.subarray(at, at + 65_536));
  }
  let r = 0;
  const draw = (min: number, max: number) =>
    min + random[r++] % (max - min + 1);
  const buffer = new Uint8Array(count * lineLength);
  const min = style === "http" ? MIN_HTTP_LINE_LENGTH : 3;
  return Array.from({ length: count }, (_, n) => {
    const at = n * lineLength;
    const line = buffer.subarray(at, at + draw(min, lineLength));
    const end = line.length - 2;
    if (style === "ssh") {
      for (let i = 0; i < end; i++) line[i] = draw(32, 126);
      if (line[0] === 0x53) line[0] = 0x73; // "S" becomes "s"
    } else {
      // "X-" name ": " value, the name and the value of one byte at least.
      const colon = draw(3, end - 3);
      for (let i = 2; i < end; i++) {
        line[i] = i < colon ? ALNUM[draw(0, ALNUM.length - 1)] : draw(33, 126);
      }
      line.set([0x58, 0x2d]); // X-
      line.set([0x3a, 0x20], colon); // ": "
    }
    line.set([13, 10], end);
    return line;
  });
}

/**
 * Checks the tarpit options and fills in the defaults. `invalid` makes the
 * error for an option out of range (the server's own option errors).
 */
export function resolveTarpit(
  options: TarpitOptions,
  invalid: (
    option: string,
    value: unknown,
    expected: string,
    Kind?: typeof TypeError,
  ) => Error,
): ResolvedTarpit {
  if (typeof options !== "object" || options === null) {
    throw invalid("tarpit", options, "an object", TypeError);
  }
  const {
    style = "ssh",
    interval = DEFAULT_TARPIT_INTERVAL,
    lineLength = DEFAULT_TARPIT_LINE_LENGTH,
  } = options;
  const http = style === "http";
  const min = http ? MIN_HTTP_LINE_LENGTH : 3;
  // Each number's name, value, range and what the range counts.
  const numbers = [
    ["interval", interval, 1, MAX_TIMER_MS, " of milliseconds", ""],
    [
      "lineLength",
      lineLength,
      min,
      MAX_TARPIT_LINE_LENGTH,
      "",
      http ? " for the http style" : "",
    ],
  ] as const;
  for (const [name, value] of numbers) {
    if (typeof value !== "number") {
      throw invalid(`tarpit.${name}`, value, "a number", TypeError);
    }
  }
  if (!TARPIT_STYLES.includes(style)) {
    throw invalid("tarpit.style", style, TARPIT_STYLES.join(", "));
  }
  for (const [name, value, from, to, unit, note] of numbers) {
    if (!Number.isInteger(value) || value < from || value > to) {
      throw invalid(
        `tarpit.${name}`,
        value,
        `a whole number${unit} from ${from} to ${to}${note}`,
      );
    }
  }
  return { style, interval, lineLength };
}

/**
 * Creates a tarpit. Its one timer runs only while a client is held.
 * `greeting` is the shared greeting (for the greeting style's chunks made
 * up front); a client whose greeting is another one (a template's) has its
 * chunks cut as they are sent.
 */
export function createTarpit(
  options: ResolvedTarpit,
  host: TarpitHost,
  greeting: Uint8Array | undefined,
  blockedAfter: number = Math.max(options.interval, MIN_BLOCKED_WAIT),
): Tarpit {
  const { style, interval, lineLength } = options;
  const stats: TarpitStats = { clients: 0, bytesSent: 0 };
  const pool = style === "greeting" ? [] : tarpitLines(style, lineLength);
  let next = 0;
  // The shared greeting's chunks, by offset / lineLength.
  const chunks = style === "greeting" && greeting
    ? Math.ceil(greeting.length / lineLength)
    : 0;
  const shared = chunks > 0 && chunks <= MAX_GREETING_CHUNKS
    ? Array.from(
      { length: chunks },
      (_, i) => greeting!.subarray(i * lineLength, (i + 1) * lineLength),
    )
    : undefined;
  // Every held client in the order it is due: each is due one interval
  // after its last turn, so appending keeps the order.
  let head: Held | undefined;
  let tail: Held | undefined;
  // The one timer, armed for the head's turn while a client is held.
  let timer: ReturnType<typeof setTimeout> | undefined;

  function append(held: Held) {
    held.prev = tail;
    held.next = undefined;
    if (tail) tail.next = held;
    else head = held;
    tail = held;
  }

  function unlink(held: Held) {
    if (held.prev) held.prev.next = held.next;
    else head = held.next;
    if (held.next) held.next.prev = held.prev;
    else tail = held.prev;
    held.prev = held.next = undefined;
  }

  function arm(delay: number) {
    timer = head ? setTimeout(tick, Math.max(0, delay)) : undefined;
  }

  function end(held: Held, outcome: ConnectionOutcome, reason?: string) {
    if (held.done) return;
    held.done = true;
    unlink(held);
    if (--stats.clients === 0) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (held.host !== undefined) held.admission!.release(held.host);
    host.release(held.slot);
    const duration = performance.now() - held.since;
    host.ended({
      slot: held.slot,
      outcome,
      reason,
      bytesWritten: held.sent,
      greetingLength: style === "greeting"
        ? (held.greeting ?? greeting!).length
        : 0,
      duration,
      held: duration,
    });
  }

  /** What `held` is sent next: a shared view, never a copy. */
  function chunkFor(held: Held): Uint8Array {
    if (style !== "greeting") {
      if (style === "http" && held.sent === 0) return HTTP_STATUS;
      const line = pool[next];
      next = (next + 1) % pool.length;
      return line;
    }
    const bytes = held.greeting ?? greeting!;
    const offset = held.sent % bytes.length;
    return !held.greeting && shared
      ? shared[offset / lineLength]
      : bytes.subarray(offset, offset + lineLength);
  }

  function write(held: Held, now: number) {
    const chunk = chunkFor(held);
    held.writing = now;
    held.slot.conn.write(chunk).then(
      (n) => {
        if (held.done) return;
        held.writing = -1;
        held.sent += n;
        stats.bytesSent += n;
        // Part of a line: its buffers are full, it is not reading.
        if (n < chunk.length) end(held, "timed_out", "tarpit_blocked");
      },
      (error) => end(held, ...host.failure(error)),
    );
  }

  /**
   * Gives each client that is due (or nearly: within TICK_SLACK) its turn,
   * at most MAX_TURNS_PER_TICK of them, so that a burst of clients is
   * written in small batches; then sleeps until the next one is due.
   */
  function tick() {
    const now = performance.now();
    let turns = 0;
    while (
      head && head.due <= now + TICK_SLACK && turns++ < MAX_TURNS_PER_TICK
    ) {
      const held = head;
      if (!held.slot.list) {
        // The table closed it: its timeout passed.
        end(held, host.closing ? "aborted" : "timed_out");
        continue;
      }
      if (held.writing < 0) write(held, now);
      else if (now - held.writing >= blockedAfter) {
        // Its last write is still pending: it does not read.
        end(held, "timed_out", "tarpit_blocked");
        continue;
      }
      unlink(held);
      held.due = now + interval;
      append(held);
    }
    arm(
      turns > MAX_TURNS_PER_TICK ? BURST_GAP : head ? head.due - now : 0,
    );
  }

  return {
    stats,
    hold(slot, bytes, admission, admittedHost) {
      const now = performance.now();
      const own = style === "greeting" && bytes !== greeting
        ? bytes
        : undefined;
      const held = new Held(
        slot,
        now,
        now + interval,
        own,
        admission,
        admittedHost,
      );
      stats.clients++;
      append(held);
      if (host.closing) {
        end(held, "aborted");
        return;
      }
      if (style === "greeting" && bytes.length === 0) {
        // Nothing to drip: closed as a greeting of nothing is.
        end(held, "greeted");
        return;
      }
      if (timer === undefined) arm(interval);
    },
    releaseAll() {
      while (head) end(head, "aborted");
    },
  };
}
