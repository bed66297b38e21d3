/**
 * The sensor of one connection (`greetPause`, `capture`): the greeting
 * pause that catches early talkers, the first bytes a client sends, and the
 * name of what they look like. Made only for a server that asks for it, so
 * the others pay nothing.
 *
 * @module
 */
import type { Conn, ConnectionTable } from "./connection_table.ts";
import { identifyProbe, type Probe } from "../net/probe.ts";
import type { ConnectionRecord, SensorOptions } from "./options.ts";
import type { ServerStats } from "./stats.ts";

/** The first read of a sensed connection takes at most this much (a ClientHello). */
const FIRST_READ = 2048;

/** One connection's sensing. */
export class Sensing {
  /** True if the client sent something during the pause. */
  early = false;
  /** What the first bytes looked like, once some came. */
  probe: Probe | undefined;
  /** A read started during the pause and not finished by its end. */
  #pending: Promise<number | null> | undefined;
  #buffer: Uint8Array | undefined;
  #filled = 0;

  constructor(private readonly options: SensorOptions) {}

  #read(conn: Conn): Promise<number | null> {
    this.#buffer ??= new Uint8Array(Math.max(this.options.capture, FIRST_READ));
    return conn.read(this.#buffer.subarray(this.#filled));
  }

  /** Takes what a read put in the buffer; false if it read the end. */
  #took(n: number | null): boolean {
    if (n === null) return false;
    this.probe ??= identifyProbe(this.#buffer!.subarray(0, n));
    this.#filled += n;
    return true;
  }

  /**
   * Waits for the pause to pass or the client to talk, whichever comes
   * first; true if it talked (an early talker). The read goes on after a
   * quiet pause and is finished by {@linkcode Sensing.linger}.
   */
  async pause(table: ConnectionTable, conn: Conn): Promise<boolean> {
    const read = this.#read(conn);
    // Released without a linger, the connection's read fails unheard.
    read.catch(() => {});
    const { promise, resolve } = Promise.withResolvers<void>();
    const entry = table.pause(resolve);
    let n;
    try {
      n = await Promise.race([read, promise]);
    } finally {
      table.cancelPause(entry);
    }
    // Undefined: the pause passed first.
    if (n === undefined) this.#pending = read;
    else this.early = this.#took(n);
    return this.early;
  }

  /**
   * Reads what the client sends until it closes: into the probe and the
   * capture while they want it, into `scratch` (discarded) after.
   */
  async linger(conn: Conn, scratch: Uint8Array): Promise<void> {
    if (this.#pending && !this.#took(await this.#pending)) return;
    while (this.probe === undefined || this.#filled < this.options.capture) {
      if (!this.#took(await this.#read(conn))) return;
    }
    while (await conn.read(scratch) !== null) {
      // Discard the rest until the client closes.
    }
  }

  /** Counts what was sensed. */
  count(stats: ServerStats): void {
    if (this.early) stats.earlyTalkers++;
    if (this.probe) stats.probes[this.probe.kind]++;
  }

  /** Adds what was sensed to the connection's record. */
  annotate(record: ConnectionRecord): void {
    record.earlyTalker = this.early;
    if (this.probe) record.probe = this.probe;
    if (this.options.capture > 0) {
      record.captured = (this.#buffer ?? new Uint8Array(0))
        .slice(0, Math.min(this.#filled, this.options.capture));
    }
  }
}
