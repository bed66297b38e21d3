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

const PAUSED = Symbol("paused");

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
  readonly #capture: number;

  constructor(options: SensorOptions) {
    this.#capture = options.capture;
  }

  /** True while the next read is still wanted: the probe's, or capture's. */
  get #wanted(): boolean {
    return this.probe === undefined || this.#filled < this.#capture;
  }

  #read(conn: Conn): Promise<number | null> {
    this.#buffer ??= new Uint8Array(Math.max(this.#capture, FIRST_READ));
    return conn.read(this.#buffer.subarray(this.#filled));
  }

  #took(n: number): void {
    if (this.probe === undefined) {
      this.probe = identifyProbe(this.#buffer!.subarray(0, n));
    }
    this.#filled += n;
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
    const { promise, resolve } = Promise.withResolvers<typeof PAUSED>();
    const entry = table.pause(() => resolve(PAUSED));
    let result: number | null | typeof PAUSED;
    try {
      result = await Promise.race([read, promise]);
    } finally {
      table.cancelPause(entry);
    }
    if (result === PAUSED) {
      this.#pending = read;
      return false;
    }
    if (result === null) return false;
    this.#took(result);
    return this.early = true;
  }

  /**
   * Reads what the client sends until it closes: into the probe and the
   * capture while they want it, into `scratch` (discarded) after.
   */
  async linger(conn: Conn, scratch: Uint8Array): Promise<void> {
    if (this.#pending) {
      const n = await this.#pending;
      this.#pending = undefined;
      if (n === null) return;
      this.#took(n);
    }
    while (this.#wanted) {
      const n = await this.#read(conn);
      if (n === null) return;
      this.#took(n);
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
    if (this.#capture > 0) {
      record.captured = this.#buffer
        ? this.#buffer.slice(0, Math.min(this.#filled, this.#capture))
        : new Uint8Array(0);
    }
  }
}
