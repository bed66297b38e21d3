/**
 * `--workers N`: N Web Workers each serve the greeting on the same ports
 * with `SO_REUSEPORT`, so Linux spreads connections across them. The main
 * thread starts and stops them, writes their log lines to stdout (it alone
 * writes there, so lines from several threads never interleave) and sums
 * their counters for the metrics, SIGUSR2 and the stop line.
 *
 * @module
 */
import type { ServeCommand } from "../commands/serve.ts";
import {
  createDurationHistogram,
  renderMetrics,
} from "../../observe/metrics.ts";
import { createServerStats } from "../../server/stats.ts";
import { expose } from "../../observe/prometheus.ts";
import { waitAtMost } from "../../server/wait.ts";
import { type Run, type Serving, SHARED } from "../run_server.ts";
import type { Prepared } from "../setup.ts";
import { ExitError } from "../flags.ts";
import { explainListen } from "../explain.ts";
import { closeListener, openListeners } from "../../server/listeners.ts";

/** A worker's counters, as sent to the main thread. */
type Counters = ReturnType<Run["snapshot"]>;

/**
 * Tells a worker to listen with `reusePort`: the first one on the command's
 * ports, the others on the real port of each listen target, as the first
 * chose them.
 */
export type StartMessage = {
  type: "start";
  /** The serving command: its log and its flags' words. */
  command: ServeCommand;
  /** The configuration the main thread prepared: no worker reads a file. */
  prepared: Prepared;
  /** The main thread's `SHARED` cells, for runServer. */
  shared: Int32Array;
};

/**
 * What the main thread asks of every worker, each answering with "answer",
 * in the order asked.
 */
type Request = { type: "stats" } | { type: "reload"; prepared: Prepared };

/** What the main thread sends a worker. */
export type ToWorker = StartMessage | Request | { type: "shutdown" };

/** What a worker sends the main thread. */
export type FromWorker =
  | { type: "listening"; addrs: Deno.Addr[] }
  // Could not start (with its exit code), or crashed (without).
  | { type: "failed"; message: string; exitCode?: number }
  | { type: "log"; lines: string[] }
  // Its counters: every STATS_INTERVAL ("stats"), with the answer to a
  // request and a reload's failure, or once it stopped and why it failed.
  | { type: "stats" | "answer" | "done"; snapshot: Counters; error?: string };

interface Member {
  index: number;
  worker: Worker;
  snapshot?: Counters;
  done?: boolean;
  /** Settles when it listens, or fails to. */
  ready: PromiseWithResolvers<Deno.Addr[]>;
  /** Takes the answer to each request it has yet to answer, oldest first. */
  answers: ((error: string | undefined) => void)[];
}

const REFRESH_TIMEOUT = 1_000;
/** How long a reload may take in every worker, in ms. */
const RELOAD_TIMEOUT = 10_000;
/** How long a worker may take to stop past the drain timeout, in ms. */
const STOP_GRACE = 5_000;

/** The worker module (scripts/compile.ts embeds it with --include). */
const ENTRY = new URL("./entry.ts", import.meta.url);

/** Adds every count of `part` into `total`, key by key; flags are or-ed. */
function addInto(into: object, part: object): void {
  const total = into as Record<string, unknown>;
  for (const [key, value] of Object.entries(part)) {
    if (typeof value === "number") {
      total[key] = ((total[key] as number | undefined) ?? 0) + value;
    } else if (typeof value === "boolean") {
      total[key] ||= value;
    } else if (typeof value === "object" && value !== null) {
      addInto(total[key] ??= {}, value);
    }
  }
}

/**
 * Starts `command.workers` workers serving it with `reusePort`: the first
 * listens first (choosing any port 0), the others then listen on the same
 * ports. Resolves once all of them listen.
 *
 * @param onLines Receives each batch of log lines, as the line writer
 * takes them.
 * @param entry The worker module; only tests replace ./entry.ts.
 * @throws {ExitError} If one cannot start; none is left running.
 */
export async function startWorkers(
  command: ServeCommand,
  prepared: Prepared,
  onLines: (lines: string[]) => void,
  entry: URL = ENTRY,
): Promise<Serving> {
  // Deno needs read access to a worker's module, where `deno run` itself
  // needs none; without it each worker would fail with a stack trace.
  const read = entry.protocol === "file:" &&
    Deno.permissions.querySync({ name: "read", path: entry });
  if (read && read.state !== "granted") {
    const path = decodeURIComponent(entry.pathname);
    const message = "Cannot start the workers: missing permission (read " +
      `access to "${path}"): run deno again with --allow-read`;
    throw new ExitError(message, 1);
  }
  // SO_REUSEPORT would let the workers join a port that another server
  // which set it too (another greeter --workers) holds, and take a share of
  // its clients: each given port is taken once without it first, so a port
  // in use is the error it is, as for one thread.
  // Every target is TCP: --workers takes neither --unix nor passed sockets.
  const given = (prepared.options.listen ?? []).flatMap((target) =>
    "port" in target && target.port !== 0
      ? [{ hostname: target.hostname, port: target.port }]
      : []
  );
  try {
    for (const open of openListeners(given, {})) closeListener(open)();
  } catch (error) {
    explainListen(error, command.spelled.host, command.spelled.port);
  }
  const startTime = Date.now();
  const stopWithin = command.options.drainTimeout! + STOP_GRACE;
  let started = false;
  let draining = false;
  let failure: string | undefined;
  let stopTimer: ReturnType<typeof setTimeout> | undefined;
  const finished = Promise.withResolvers<string | undefined>();

  const members = Array.from({ length: command.workers ?? 1 }, (_, index) => {
    const worker = new Worker(entry, { type: "module" });
    const ready = Promise.withResolvers<Deno.Addr[]>();
    // Nothing awaits the later ones until the first listens.
    ready.promise.catch(() => {});
    const member: Member = { index, worker, ready, answers: [] };
    const crashed = (message: string) =>
      receive(member, { type: "failed", message });
    worker.onmessage = (event: MessageEvent<FromWorker>) =>
      receive(member, event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      crashed(event.message);
    };
    worker.onmessageerror = () => crashed("unreadable message");
    return member;
  });
  const live = () => members.filter((m) => !m.done);

  function post(member: Member, message: ToWorker) {
    if (!member.done) member.worker.postMessage(message);
  }

  /**
   * Asks every running worker, and waits at most `timeout` ms for them;
   * resolves to undefined, to the first worker's failure, or to how many
   * did not answer in time (in a reload's words; a refresh reads neither).
   */
  async function ask(message: Request, timeout: number) {
    const waiting = new Set(live());
    let error: string | undefined;
    const answered = [...waiting].map(async (member) => {
      post(member, message);
      const failed = await new Promise<string | undefined>((resolve) =>
        member.answers.push(resolve)
      );
      waiting.delete(member);
      if (failed !== undefined) error ??= `worker ${member.index}: ${failed}`;
    });
    await waitAtMost(Promise.all(answered), timeout);
    if (error !== undefined || waiting.size === 0) return error;
    return `${waiting.size} worker(s) did not reload within ${timeout} ms`;
  }

  function end(member: Member, error?: string) {
    if (member.done) return;
    member.done = true;
    if (error !== undefined) {
      failure ??= `worker ${member.index} ${error}`;
      member.worker.terminate();
      shutdown();
    }
    const stopped = "stopped during the reload";
    for (const answer of member.answers.splice(0)) answer(stopped);
    if (live().length > 0) return;
    clearTimeout(stopTimer);
    for (const { worker } of members) worker.terminate();
    finished.resolve(failure);
  }

  function receive(member: Member, message: FromWorker) {
    if ("snapshot" in message) member.snapshot = message.snapshot;
    switch (message.type) {
      case "listening":
        return member.ready.resolve(message.addrs);
      case "failed": {
        // Only a worker that has not started has an exit code.
        const { message: text, exitCode } = message;
        if (started) return end(member, `failed: ${text}`);
        const error = exitCode === undefined
          ? new ExitError(`worker ${member.index} failed: ${text}`, 1)
          : new ExitError(text, exitCode);
        return member.ready.reject(error);
      }
      case "log":
        return onLines(message.lines);
      case "answer":
        return member.answers.shift()?.(message.error);
      case "done":
        if (message.error === undefined) return end(member);
        return end(member, `stopped: ${message.error}`);
    }
  }

  function shutdown() {
    if (draining) return;
    draining = true;
    for (const member of members) post(member, { type: "shutdown" });
    const late = `did not stop within ${stopWithin} ms`;
    stopTimer = setTimeout(() => {
      for (const member of members) end(member, late);
    }, stopWithin);
  }

  const options = { ...prepared.options, reusePort: true };
  const start = (listen = options.listen): StartMessage => ({
    type: "start",
    command,
    prepared: { ...prepared, options: { ...options, listen } },
    shared: SHARED,
  });
  const [first, ...rest] = members;
  let addrs: Deno.Addr[];
  try {
    post(first, start());
    addrs = await first.ready.promise;
    // Every target is TCP: --workers takes neither --unix nor passed sockets.
    const listen = options.listen?.map((target, i) => ({
      ...target,
      port: (addrs[i] as Deno.NetAddr).port,
    }));
    for (const member of rest) post(member, start(listen));
    await Promise.all(rest.map((member) => member.ready.promise));
  } catch (error) {
    for (const { worker } of members) worker.terminate();
    throw error;
  }
  started = true;
  let refreshing: Promise<unknown> | undefined;
  /** Every worker's last counters, summed. */
  const total = () => {
    const sum = {
      stats: createServerStats(),
      histogram: createDurationHistogram(),
      suppressed: 0,
    };
    for (const { snapshot } of members) if (snapshot) addInto(sum, snapshot);
    sum.stats.startTime = startTime;
    return sum;
  };
  return {
    addrs,
    get draining() {
      return draining;
    },
    get stats() {
      return total().stats;
    },
    render(dropped: number) {
      const { stats, histogram, suppressed } = total();
      const log = { suppressed, dropped };
      const accepted = Object.fromEntries(
        members.map((m) => [m.index, m.snapshot?.stats.accepted ?? 0]),
      );
      const workers = ["worker", accepted, Object.keys(accepted)] as const;
      // The pool's own family: connections by worker thread.
      return renderMetrics(stats, histogram, { draining, log }) + expose`
  counter greeter_worker_connections_accepted_total ${workers} Connections accepted, by worker thread (--workers).
`;
    },
    /**
     * Tells every worker to swap in `next` (what the main thread read and
     * checked); resolves to undefined, or to the first worker's failure.
     */
    swap: (next: Prepared) =>
      ask({ type: "reload", prepared: next }, RELOAD_TIMEOUT),
    /**
     * Resolves once every running worker has sent fresh counters (or after
     * 1 s); scrapes and SIGUSR2s meanwhile share the one request.
     */
    refresh: () =>
      refreshing ??= ask({ type: "stats" }, REFRESH_TIMEOUT).finally(() =>
        refreshing = undefined
      ),
    /** Tells every worker to shut down; safe to call more than once. */
    shutdown,
    /**
     * Resolves once every worker has stopped and been terminated: to
     * undefined, or to a line saying which worker failed and how.
     */
    finished: finished.promise,
  };
}
