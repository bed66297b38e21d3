/**
 * What crosses postMessage between the main thread and the workers of
 * `--workers`, typed once for both sides.
 *
 * @module
 */
import type { Prepared } from "../setup.ts";
import type { ServeCommand } from "../commands/serve.ts";
import type { ServerStats } from "../../server/stats.ts";

/** A worker's counters, as sent to the main thread. */
export interface WorkerSnapshot {
  /** Its server's counters. */
  stats: ServerStats;
  /** Its connection duration histogram. */
  histogram: { counts: number[]; sumMs: number; count: number };
  /** Connection lines its flood limiter left out. */
  suppressed: number;
}

/** Tells a worker to listen: the first one with the command's ports. */
export interface StartMessage {
  type: "start";
  /** The serving command: its log and its flags' words. */
  command: ServeCommand;
  /** The configuration the main thread prepared: no worker reads a file. */
  prepared: Prepared;
  /** The real port of each listen target, when the first worker chose them. */
  ports?: number[];
  /** The main thread's health probe cell (shared memory). */
  selfProbe: Int32Array;
  /** Warnings said once per process (see `SAID_ONCE`). */
  saidOnce: Int32Array;
}

/** What the main thread sends a worker. */
export type ToWorker =
  | StartMessage
  | { type: "stats"; request: number }
  | { type: "reload"; request: number; prepared: Prepared }
  | { type: "shutdown" };

/** What a worker sends the main thread. */
export type FromWorker =
  | { type: "listening"; addrs: Deno.Addr[] }
  | { type: "failed"; message: string; exitCode: number }
  | { type: "crashed"; message: string }
  | { type: "log"; lines: string[] }
  | { type: "stats"; snapshot: WorkerSnapshot; request?: number }
  | { type: "reloaded"; request: number; error?: string }
  | { type: "done"; snapshot: WorkerSnapshot; error?: string };
