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
  DURATION_BUCKETS,
  type DurationHistogram,
} from "../../observe/metrics.ts";
import { createServerStats, type ServerStats } from "../../server/stats.ts";
import type { ProbeKind } from "../../net/probe.ts";
import type { FromWorker, ToWorker, WorkerSnapshot } from "./protocol.ts";
import { waitAtMost } from "../../server/wait.ts";
import { SELF_PROBE } from "../run_server.ts";
import type { Prepared } from "../setup.ts";
import { ExitError } from "../flags.ts";

export type {
  FromWorker,
  StartMessage,
  ToWorker,
  WorkerSnapshot,
} from "./protocol.ts";

/** The message for a Deno run without `--unstable-net`. */
export const UNSTABLE_NET_MESSAGE = "--workers needs deno run --unstable-net";

/**
 * True when `reusePort` can be used: Deno ends the whole process, with no
 * error to catch, when it is asked for without `--unstable-net`, so this
 * checks for another API that flag enables.
 */
export function reusePortAvailable(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram ===
    "function";
}

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

/** Running workers, as returned by {@linkcode startWorkers}. */
export interface WorkerGroup {
  /** Every address they listen on, in the order given. */
  readonly addrs: Deno.Addr[];
  /** True from the start of shutdown. */
  readonly draining: boolean;
  /** Every worker's latest counters, summed. */
  stats(): ServerStats;
  /** Every worker's latest duration histogram, summed (read-only). */
  histogram(): DurationHistogram;
  /** Connection lines left out by the workers' flood limiters. */
  suppressed(): number;
  /** Connections accepted by each worker, by index. */
  accepted(): number[];
  /** Resolves once every running worker has sent fresh counters. */
  refresh(): Promise<void>;
  /**
   * Tells every worker to swap in `prepared` (what the main thread read
   * and checked); resolves to undefined, or to the first worker's one-line
   * failure.
   */
  reload(prepared: Prepared): Promise<string | undefined>;
  /** Tells every worker to shut down; safe to call more than once. */
  shutdown(): void;
  /**
   * Resolves once every worker has stopped and been terminated: to
   * undefined, or to a line saying which worker failed and how.
   */
  readonly finished: Promise<string | undefined>;
}

interface Member {
  index: number;
  worker: Worker;
  snapshot?: WorkerSnapshot;
  /** The last stats request it answered. */
  answered: number;
  done: boolean;
  /** Settles when it listens, or fails to. */
  ready: PromiseWithResolvers<Deno.Addr[]>;
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

/** Sums worker counters; `startTime` is the group's. */
export function sumStats(
  snapshots: readonly ServerStats[],
  startTime: number,
): ServerStats {
  const total = createServerStats();
  total.startTime = startTime;
  for (const stats of snapshots) {
    total.accepted += stats.accepted;
    total.exhausted ||= stats.exhausted;
    total.active += stats.active;
    total.pausedAtLimit += stats.pausedAtLimit;
    total.bytesWritten += stats.bytesWritten;
    for (
      const key of Object.keys(
        total.outcomes,
      ) as (keyof ServerStats["outcomes"])[]
    ) {
      total.outcomes[key] += stats.outcomes[key];
    }
    for (
      const key of Object.keys(
        total.refused,
      ) as (keyof ServerStats["refused"])[]
    ) {
      total.refused[key] += stats.refused[key];
    }
    total.earlyTalkers += stats.earlyTalkers ?? 0;
    for (const key of Object.keys(total.probes) as ProbeKind[]) {
      total.probes[key] += stats.probes?.[key] ?? 0;
    }
    for (const [code, count] of Object.entries(stats.acceptErrors)) {
      total.acceptErrors[code] = (total.acceptErrors[code] ?? 0) + count;
    }
  }
  return total;
}

/** Renders the per-worker counter, in the format of renderMetrics. */
export function renderWorkerMetrics(accepted: readonly number[]): string {
  const name = "greeter_worker_connections_accepted_total";
  return [
    `# HELP ${name} Connections accepted, by worker thread (--workers).`,
    `# TYPE ${name} counter`,
    ...accepted.map((count, i) => `${name}{worker="${i}"} ${count}`),
  ].join("\n") + "\n";
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
): Promise<WorkerGroup> {
  const { count, onLines, stopGrace = 5_000, entry } = options;
  // The greeting a function, which cannot be cloned: each worker makes it.
  const posted = { ...prepared, greeting: undefined };
  const drainTimeout = command.options.drainTimeout!;
  checkReadable(entry ?? ENTRY);
  const startTime = Date.now();
  let started = false;
  let draining = false;
  let failure: string | undefined;
  let requests = 0;
  let refreshed: (() => void) | undefined;
  let stopTimer: ReturnType<typeof setTimeout> | undefined;
  const finished = Promise.withResolvers<string | undefined>();

  const members: Member[] = Array.from({ length: count }, (_, index) => {
    const member: Member = {
      index,
      worker: new Worker(entry ?? ENTRY, { type: "module" }),
      answered: 0,
      done: false,
      ready: Promise.withResolvers(),
    };
    // Nothing awaits the later ones until the first listens.
    member.ready.promise.catch(() => {});
    member.worker.onmessage = (event: MessageEvent<FromWorker>) =>
      receive(member, event.data);
    member.worker.onerror = (event) => {
      event.preventDefault();
      receive(member, { type: "crashed", message: event.message });
    };
    member.worker.onmessageerror = () =>
      receive(member, { type: "crashed", message: "unreadable message" });
    return member;
  });

  // Reloads in progress, by request number: the answers still awaited.
  let reloads = 0;
  const reloading = new Map<
    number,
    { waiting: Set<Member>; error?: string; done: () => void }
  >();

  function answerReload(member: Member, request: number, error?: string) {
    const pending = reloading.get(request);
    if (!pending || !pending.waiting.delete(member)) return;
    if (error !== undefined) {
      pending.error ??= `worker ${member.index}: ${error}`;
    }
    if (pending.waiting.size === 0) pending.done();
  }

  function post(member: Member, message: ToWorker) {
    if (!member.done) member.worker.postMessage(message);
  }

  function checkRefreshed() {
    if (members.every((m) => m.done || m.answered >= requests)) {
      refreshed?.();
      refreshed = undefined;
    }
  }

  function checkFinished() {
    checkRefreshed();
    if (!members.every((m) => m.done)) return;
    clearTimeout(stopTimer);
    for (const member of members) member.worker.terminate();
    finished.resolve(failure);
  }

  function end(member: Member, error?: string) {
    if (member.done) return;
    member.done = true;
    if (error !== undefined) {
      failure ??= `worker ${member.index} ${error}`;
      member.worker.terminate();
      shutdown();
    }
    checkFinished();
  }

  function receive(member: Member, message: FromWorker) {
    switch (message.type) {
      case "listening":
        member.ready.resolve(message.addrs);
        break;
      case "failed":
        member.ready.reject(
          new ExitError(message.message, message.exitCode),
        );
        break;
      case "crashed":
        if (!started) {
          member.ready.reject(
            new ExitError(
              `worker ${member.index} failed: ${message.message}`,
              1,
            ),
          );
        } else {
          end(member, `failed: ${message.message}`);
        }
        break;
      case "log":
        onLines(message.lines);
        break;
      case "stats":
        member.snapshot = message.snapshot;
        if (message.request !== undefined) {
          member.answered = message.request;
          checkRefreshed();
        }
        break;
      case "reloaded":
        answerReload(member, message.request, message.error);
        break;
      case "done":
        member.snapshot = message.snapshot;
        for (const request of reloading.keys()) {
          answerReload(member, request, "stopped during the reload");
        }
        end(
          member,
          message.error === undefined ? undefined : `stopped: ${message.error}`,
        );
        break;
    }
  }

  function shutdown() {
    if (draining) return;
    draining = true;
    for (const member of members) post(member, { type: "shutdown" });
    stopTimer = setTimeout(() => {
      for (const member of members) {
        end(
          member,
          `did not stop within ${drainTimeout + stopGrace} ms`,
        );
      }
    }, drainTimeout + stopGrace);
  }

  const [first, ...rest] = members;
  try {
    first.worker.postMessage(
      {
        type: "start",
        command,
        prepared: posted,
        selfProbe: SELF_PROBE,
      } satisfies ToWorker,
    );
    const addrs = await first.ready.promise;
    const ports = addrs.map((addr) => addr.transport === "tcp" ? addr.port : 0);
    for (const member of rest) {
      member.worker.postMessage(
        {
          type: "start",
          command,
          prepared: posted,
          ports,
          selfProbe: SELF_PROBE,
        } satisfies ToWorker,
      );
    }
    await Promise.all(rest.map((member) => member.ready.promise));
    started = true;
    return {
      addrs,
      async reload(next) {
        const prepared = { ...next, greeting: undefined };
        const request = ++reloads;
        const { promise, resolve } = Promise.withResolvers<void>();
        const pending: {
          waiting: Set<Member>;
          error?: string;
          done: () => void;
        } = {
          waiting: new Set(members.filter((m) => !m.done)),
          done: resolve,
        };
        reloading.set(request, pending);
        for (const member of pending.waiting) {
          post(member, { type: "reload", request, prepared });
        }
        if (pending.waiting.size === 0) resolve();
        await waitAtMost(promise, RELOAD_TIMEOUT);
        reloading.delete(request);
        return pending.error ??
          (pending.waiting.size > 0
            ? `${pending.waiting.size} worker(s) did not reload within ${RELOAD_TIMEOUT} ms`
            : undefined);
      },
      get draining() {
        return draining;
      },
      stats: () =>
        sumStats(
          members.flatMap((m) => m.snapshot ? [m.snapshot.stats] : []),
          startTime,
        ),
      histogram() {
        const counts = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
        let sumMs = 0;
        let total = 0;
        for (const { snapshot } of members) {
          if (!snapshot) continue;
          snapshot.histogram.counts.forEach((n, i) => counts[i] += n);
          sumMs += snapshot.histogram.sumMs;
          total += snapshot.histogram.count;
        }
        return {
          observe() {
            throw new TypeError("The workers' summed histogram is read-only");
          },
          bounds: DURATION_BUCKETS,
          counts,
          sumMs,
          count: total,
        };
      },
      suppressed: () =>
        members.reduce((sum, m) => sum + (m.snapshot?.suppressed ?? 0), 0),
      accepted: () => members.map((m) => m.snapshot?.stats.accepted ?? 0),
      refresh() {
        const request = ++requests;
        const done = new Promise<void>((resolve) => {
          const previous = refreshed;
          refreshed = () => {
            previous?.();
            resolve();
          };
        });
        for (const member of members) {
          post(member, { type: "stats", request });
        }
        checkRefreshed();
        let timer: ReturnType<typeof setTimeout> | undefined;
        return Promise.race([
          done,
          new Promise<void>((resolve) =>
            timer = setTimeout(resolve, REFRESH_TIMEOUT)
          ),
        ]).finally(() => clearTimeout(timer));
      },
      shutdown,
      finished: finished.promise,
    };
  } catch (error) {
    for (const member of members) member.worker.terminate();
    throw error;
  }
}
