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
 * A held client's end is counted and told to the observers as the server's
 * connections do theirs (connection.ts); tarpit.ts, which serve_greeting.ts
 * and the connections read, holds the tarpit's face.
 *
 * @module
 */
import { type ConnectionContext, failure, record } from "./connection.ts";
import type { Slot } from "./connection_table.ts";
import type { ConnectionOutcome } from "./stats.ts";
import { MIN_HTTP_LINE_LENGTH } from "./tarpit.ts";
import type { ResolvedTarpit, Tarpit, TarpitStats } from "./tarpit.ts";

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

/** One held client, an entry of the tarpit's queue. */
class Held {
  sent = 0;
  /** When its pending write was started; -1 when none is. */
  writing = -1;
  constructor(
    readonly slot: Slot,
    /** When it was held, on the monotonic clock. */
    readonly since: number,
    /** When its next turn is, on the monotonic clock. */
    public due: number,
    /** Its greeting, in the greeting style (a template's is its own). */
    readonly greeting: Uint8Array | undefined,
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
  // Filler, not secrets: Math.random will do.
  const draw = (min: number, max: number) =>
    min + Math.floor(Math.random() * (max - min + 1));
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
 * Creates the tarpit of `server`, which counts and records each held
 * client's end as its connections do; its one timer runs only while a
 * client is held. `greeting` is the shared greeting, whose chunks (greeting
 * style) are made up front; a client whose greeting is another one (a
 * template's) has its chunks cut as they are sent.
 */
export function createTarpit(
  options: ResolvedTarpit,
  server: ConnectionContext,
  greeting: Uint8Array | undefined,
  blockedAfter: number = Math.max(options.interval, MIN_BLOCKED_WAIT),
): Tarpit {
  const { style, interval, lineLength } = options;
  const { core } = server;
  const stats: TarpitStats = { clients: 0, bytesSent: 0 };
  // The lines of the ssh and http styles; the greeting style's chunks of
  // the shared greeting, by offset / lineLength (none if too many).
  const pool = style !== "greeting"
    ? tarpitLines(style, lineLength)
    : greeting && greeting.length <= MAX_GREETING_CHUNKS * lineLength
    ? Array.from(
      { length: Math.ceil(greeting.length / lineLength) },
      (_, i) => greeting.subarray(i * lineLength, (i + 1) * lineLength),
    )
    : [];
  let next = 0;
  // Every held client, by its slot, in the order it is due: each is due one
  // interval after its last turn, so moving it to the end keeps the order.
  const queue = new Map<Slot, Held>();
  // The one timer, armed for the head's turn while a client is held.
  let timer: ReturnType<typeof setTimeout> | undefined;

  /** Sets the timer for `delay` ms from now, or none when no one is held. */
  function arm(delay: number) {
    clearTimeout(timer);
    timer = queue.size ? setTimeout(tick, Math.max(0, delay)) : undefined;
  }

  function end(held: Held, outcome: ConnectionOutcome, reason?: string) {
    if (!queue.delete(held.slot)) return;
    // The last one gone: the queue is empty, and the timer stops.
    if (--stats.clients === 0) arm(0);
    const { slot } = held;
    if (slot.host !== undefined) slot.admission!.release(slot.host);
    core.table.release(slot);
    core.stats.outcomes[slot.outcome = outcome]++;
    slot.reason = reason;
    core.stats.bytesWritten += held.sent;
    const duration = performance.now() - held.since;
    try {
      server.onEnded?.(duration, duration);
      server.onClose?.(record(server, slot, {
        bytesWritten: held.sent,
        greetingLength: held.greeting?.length ?? 0,
        duration,
        held: duration,
      }));
    } catch {
      // A failing observer must not stop the server.
    }
  }

  /** What `held` is sent next: a shared view, never a copy. */
  function chunkFor(held: Held): Uint8Array {
    const bytes = held.greeting;
    if (bytes) {
      const offset = held.sent % bytes.length;
      return bytes === greeting && pool.length > 0
        ? pool[offset / lineLength]
        : bytes.subarray(offset, offset + lineLength);
    }
    if (style === "http" && held.sent === 0) return HTTP_STATUS;
    next = (next + 1) % pool.length;
    return pool[next];
  }

  function write(held: Held, now: number) {
    const chunk = chunkFor(held);
    held.writing = now;
    held.slot.conn.write(chunk).then(
      (n) => {
        if (!queue.has(held.slot)) return;
        held.writing = -1;
        held.sent += n;
        stats.bytesSent += n;
        // Part of a line: its buffers are full, it is not reading.
        if (n < chunk.length) end(held, "timed_out", "tarpit_blocked");
      },
      (error) => end(held, ...failure(core, error)),
    );
  }

  /**
   * Gives each client that is due (or nearly: within TICK_SLACK) its turn,
   * at most MAX_TURNS_PER_TICK of them, so that a burst of clients is
   * written in small batches; then sleeps until the next one is due.
   */
  function tick() {
    const now = performance.now();
    const until = now + TICK_SLACK;
    let turns = 0;
    for (const held of queue.values()) {
      if (held.due > until || turns++ >= MAX_TURNS_PER_TICK) break;
      if (held.writing >= 0 && now - held.writing >= blockedAfter) {
        // Its last write is still pending: it does not read.
        end(held, "timed_out", "tarpit_blocked");
      } else {
        queue.delete(held.slot);
        held.due = now + interval;
        queue.set(held.slot, held);
        if (held.writing < 0) write(held, now);
      }
    }
    const [head] = queue.values();
    arm(turns > MAX_TURNS_PER_TICK ? BURST_GAP : head ? head.due - now : 0);
  }

  return {
    stats,
    hold(slot, bytes) {
      const now = performance.now();
      const own = style === "greeting" ? bytes : undefined;
      const held = new Held(slot, now, now + interval, own);
      stats.clients++;
      queue.set(slot, held);
      if (core.closing) end(held, "aborted");
      // Nothing to drip: closed as a greeting of nothing is.
      else if (own?.length === 0) end(held, "greeted");
      else if (timer === undefined) arm(interval);
    },
    releaseAll() {
      for (const held of queue.values()) end(held, "aborted");
    },
    released(slot) {
      const held = queue.get(slot);
      if (held) end(held, core.closing ? "aborted" : "timed_out");
    },
  };
}
