/**
 * What crosses postMessage between the main thread and the workers of
 * `--workers`, typed once for both sides.
 *
 * @module
 */
import type { Prepared } from "../setup.ts";
import type { ServeCommand } from "../commands/serve.ts";
import type { runServer } from "../run_server.ts";

/** A worker's counters, as sent to the main thread. */
export type WorkerSnapshot = ReturnType<
  ReturnType<typeof runServer>["snapshot"]
>;

/** Tells a worker to listen: the first one with the command's ports. */
export interface StartMessage {
  type: "start";
  /** The serving command: its log and its flags' words. */
  command: ServeCommand;
  /** The configuration the main thread prepared: no worker reads a file. */
  prepared: Prepared;
  /** The real port of each listen target, when the first worker chose them. */
  ports?: number[];
  /** The main thread's shared cells (see `SHARED`). */
  shared: Int32Array;
}

/** What the main thread asks of every worker, each answering with "stats". */
export type Request = { type: "stats" } | {
  type: "reload";
  prepared: Prepared;
};

/** What the main thread sends a worker. */
export type ToWorker =
  | StartMessage
  | Request & { request: number }
  | { type: "shutdown" };

/** What a worker sends the main thread. */
export type FromWorker =
  | { type: "listening"; addrs: Deno.Addr[] }
  | { type: "failed"; message: string; exitCode: number }
  | { type: "crashed"; message: string }
  | { type: "log"; lines: string[] }
  // Its counters: every STATS_INTERVAL (request 0), or a request's answer.
  | { type: "stats"; snapshot: WorkerSnapshot; request: number; error?: string }
  | { type: "done"; snapshot: WorkerSnapshot; error?: string };
