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
import { DURATION_BUCKETS, renderMetrics } from "../../observe/metrics.ts";
import { createServerStats } from "../../server/stats.ts";
import { exposition, families } from "../../observe/prometheus.ts";
import type { FromWorker, ToWorker, WorkerSnapshot } from "./protocol.ts";
import { waitAtMost } from "../../server/wait.ts";
import { SAID_ONCE, SELF_PROBE, type Serving } from "../run_server.ts";
import type { Prepared } from "../setup.ts";
import { ExitError } from "../flags.ts";

/** The pool's own family: connections by worker thread. */
const WORKER_FAMILIES = families(`
counter greeter_worker_connections_accepted_total Connections accepted, by worker thread (--workers).
`);

/** Options for {@linkcode startWorkers}. */
export interface StartWorkersOptions {
  /** How many workers. */
  count: number;
  /** Receives each batch of log lines, as the line writer takes them. */
  onLines: (lines: string[]) => void;
  /** How long a worker may take to stop past the drain timeout, in ms. */
  stopGrace?: number;
  /** The worker module; only tests replace ./entry.ts. */
  entry?: URL;
}

interface Member {
  index: number;
  worker: Worker;
  snapshot?: WorkerSnapshot;
  done: boolean;
  /** Settles when it listens, or fails to. */
  ready: PromiseWithResolvers<Deno.Addr[]>;
}

/** A request in progress (stats or reload): the workers yet to answer. */
interface Asking {
  waiting: Set<Member>;
  error?: string;
  done: () => void;
}

const REFRESH_TIMEOUT = 1_000;
/** How long a reload may take in every worker, in ms. */
const RELOAD_TIMEOUT = 10_000;

/** The worker module (scripts/compile.ts embeds it with --include). */
const ENTRY = new URL("./entry.ts", import.meta.url);

/**
 * Deno needs read access to a worker's module, where `deno run` itself
 * needs none; without it each worker would fail with a stack trace.
 */
function checkReadable(entry: URL) {
  if (entry.protocol !== "file:") return;
  const { state } = Deno.permissions.querySync({ name: "read", path: entry });
  if (state !== "granted") {
    throw new ExitError(
      `Cannot start the workers: missing permission (read access to ` +
        `"${decodeURIComponent(entry.pathname)}"): run deno again with ` +
        "--allow-read",
      1,
    );
  }
}

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
 * What crosses to the workers of a prepared configuration: all but the
 * greeting, a function postMessage cannot clone, which each makes again.
 */
function posted(prepared: Prepared): Prepared {
  return { ...prepared, greeting: undefined };
}

/**
 * Starts `count` workers serving `command` with `reusePort`: the first
 * listens first (choosing any port 0), the others then listen on the same
 * ports. Resolves once all of them listen.
 *
 * @throws {ExitError} If one cannot start; none is left running.
 */
export async function startWorkers(
  command: ServeCommand,
  prepared: Prepared,
  options: StartWorkersOptions,
): Promise<Serving> {
  const { count, onLines, stopGrace = 5_000, entry = ENTRY } = options;
  checkReadable(entry);
  const startTime = Date.now();
  const stopWithin = command.options.drainTimeout! + stopGrace;
  let started = false;
  let draining = false;
  let failure: string | undefined;
  let stopTimer: ReturnType<typeof setTimeout> | undefined;
  const finished = Promise.withResolvers<string | undefined>();
  // Requests in progress, by number.
  let requests = 0;
  const asked = new Map<number, Asking>();

  const members: Member[] = Array.from({ length: count }, (_, index) => {
    const worker = new Worker(entry, { type: "module" });
    const member: Member = {
      index,
      worker,
      done: false,
      ready: Promise.withResolvers(),
    };
    // Nothing awaits the later ones until the first listens.
    member.ready.promise.catch(() => {});
    worker.onmessage = (event: MessageEvent<FromWorker>) =>
      receive(member, event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      receive(member, { type: "crashed", message: event.message });
    };
    worker.onmessageerror = () =>
      receive(member, { type: "crashed", message: "unreadable message" });
    return member;
  });
  const live = () => members.filter((m) => !m.done);

  function answer(member: Member, request: number, error?: string) {
    const pending = asked.get(request);
    if (!pending?.waiting.delete(member)) return;
    if (error !== undefined) {
      pending.error ??= `worker ${member.index}: ${error}`;
    }
    if (pending.waiting.size === 0) pending.done();
  }

  function post(member: Member, message: ToWorker) {
    if (!member.done) member.worker.postMessage(message);
  }

  /** Asks every running worker, and waits at most `timeout` ms for them. */
  async function ask(message: (request: number) => ToWorker, timeout: number) {
    const request = ++requests;
    const { promise, resolve } = Promise.withResolvers<void>();
    const asking: Asking = { waiting: new Set(live()), done: resolve };
    asked.set(request, asking);
    for (const member of asking.waiting) post(member, message(request));
    if (asking.waiting.size === 0) resolve();
    await waitAtMost(promise, timeout);
    asked.delete(request);
    return asking;
  }

  function end(member: Member, error?: string) {
    if (member.done) return;
    member.done = true;
    if (error !== undefined) {
      failure ??= `worker ${member.index} ${error}`;
      member.worker.terminate();
      shutdown();
    }
    for (const request of asked.keys()) {
      answer(member, request, "stopped during the reload");
    }
    if (live().length > 0) return;
    clearTimeout(stopTimer);
    for (const { worker } of members) worker.terminate();
    finished.resolve(failure);
  }

  function receive(member: Member, message: FromWorker) {
    switch (message.type) {
      case "listening":
        return member.ready.resolve(message.addrs);
      case "failed":
        return member.ready.reject(
          new ExitError(message.message, message.exitCode),
        );
      case "crashed":
        if (started) return end(member, `failed: ${message.message}`);
        return member.ready.reject(
          new ExitError(`worker ${member.index} failed: ${message.message}`, 1),
        );
      case "log":
        return onLines(message.lines);
      case "stats":
        member.snapshot = message.snapshot;
        if (message.request !== undefined) answer(member, message.request);
        return;
      case "reloaded":
        return answer(member, message.request, message.error);
      case "done":
        member.snapshot = message.snapshot;
        return end(
          member,
          message.error === undefined ? undefined : `stopped: ${message.error}`,
        );
    }
  }

  function shutdown() {
    if (draining) return;
    draining = true;
    for (const member of members) post(member, { type: "shutdown" });
    stopTimer = setTimeout(() => {
      for (const member of members) {
        end(member, `did not stop within ${stopWithin} ms`);
      }
    }, stopWithin);
  }

  const start = (member: Member, ports?: number[]) =>
    member.worker.postMessage(
      {
        type: "start",
        command,
        prepared: posted(prepared),
        ports,
        selfProbe: SELF_PROBE,
        saidOnce: SAID_ONCE,
      } satisfies ToWorker,
    );
  const [first, ...rest] = members;
  let addrs: Deno.Addr[];
  try {
    start(first);
    addrs = await first.ready.promise;
    const ports = addrs.map((addr) => addr.transport === "tcp" ? addr.port : 0);
    for (const member of rest) start(member, ports);
    await Promise.all(rest.map((member) => member.ready.promise));
  } catch (error) {
    for (const { worker } of members) worker.terminate();
    throw error;
  }
  started = true;
  const snapshots = () => members.flatMap((m) => m.snapshot ?? []);
  const stats = () => {
    const total = createServerStats();
    for (const { stats } of snapshots()) addInto(total, stats);
    total.startTime = startTime;
    return total;
  };
  const histogram = () => {
    const total = {
      counts: new Array<number>(DURATION_BUCKETS.length + 1).fill(0),
      sumMs: 0,
      count: 0,
    };
    for (const { histogram } of snapshots()) addInto(total, histogram);
    return { ...total, observe() {}, bounds: DURATION_BUCKETS };
  };
  return {
    addrs,
    get draining() {
      return draining;
    },
    get stats() {
      return stats();
    },
    render: (dropped: number) =>
      renderMetrics(stats(), histogram(), {
        draining,
        log: {
          suppressed: snapshots().reduce((sum, s) => sum + s.suppressed, 0),
          dropped,
        },
      }) +
      exposition(WORKER_FAMILIES, {
        greeter_worker_connections_accepted_total: [
          "worker",
          Object.fromEntries(
            members.map((m) => [m.index, m.snapshot?.stats.accepted ?? 0]),
          ),
          members.map((m) => `${m.index}`),
        ],
      }),
    /**
     * Tells every worker to swap in `next` (what the main thread read and
     * checked); resolves to undefined, or to the first worker's failure.
     */
    async swap(next: Prepared) {
      const prepared = posted(next);
      const pending = await ask(
        (request) => ({ type: "reload", request, prepared }),
        RELOAD_TIMEOUT,
      );
      return pending.error ??
        (pending.waiting.size > 0
          ? `${pending.waiting.size} worker(s) did not reload within ${RELOAD_TIMEOUT} ms`
          : undefined);
    },
    /** Resolves once every running worker has sent fresh counters. */
    async refresh() {
      await ask((request) => ({ type: "stats", request }), REFRESH_TIMEOUT);
    },
    /** Tells every worker to shut down; safe to call more than once. */
    shutdown,
    /**
     * Resolves once every worker has stopped and been terminated: to
     * undefined, or to a line saying which worker failed and how.
     */
    finished: finished.promise,
  };
}
