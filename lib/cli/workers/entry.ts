/**
 * One greeter worker thread, started by {@linkcode startWorkers} for
 * `--workers N`: serves the greeting with `reusePort`, and sends its log
 * lines and counters to the main thread, which alone writes to stdout.
 *
 * @module
 */
import { explainError } from "../explain.ts";
import { type Run, runServer } from "../run_server.ts";
import type { FromWorker, StartMessage, ToWorker } from "./pool.ts";

/** The worker's global scope: its face is a Worker's, seen from inside. */
const scope = globalThis as unknown as Worker;

/** How often the counters go to the main thread, in milliseconds. */
const STATS_INTERVAL = 250;
/** How long log lines wait to be sent together, in milliseconds. */
const LOG_BATCH_DELAY = 5;
/** Log text sent at once, beyond which it is not held back any longer. */
const LOG_BATCH_SIZE = 64 * 1024;

const post = (message: FromWorker) => scope.postMessage(message);

// Log lines, posted to the main thread in batches as the lines its writer
// takes: one message per burst, never one per connection.
const pending: string[] = [];
let size = 0;
let timer: ReturnType<typeof setTimeout> | undefined;

function flush() {
  clearTimeout(timer);
  timer = undefined;
  size = 0;
  if (pending.length > 0) post({ type: "log", lines: pending.splice(0) });
}

function line(text: string) {
  pending.push(text);
  if ((size += text.length) >= LOG_BATCH_SIZE) flush();
  else timer ??= setTimeout(flush, LOG_BATCH_DELAY);
}

let run: Run | undefined;

/** Sends the run's counters: every STATS_INTERVAL, as an answer, or last. */
const report = (type: "stats" | "answer" | "done", error?: string) =>
  post({ type, snapshot: run!.snapshot(), error });

async function start({ command, prepared, shared }: StartMessage) {
  const running = run = await runServer(command, prepared, line, shared);
  const ticker = setInterval(() => report("stats"), STATS_INTERVAL);
  post({ type: "listening", addrs: running.addrs });
  const error = await running.finished;
  clearInterval(ticker);
  flush();
  report("done", error);
}

// A failure to start is explained, with its exit code, after the lines
// before it; a crash once serving is sent as it is.
function fail(error: unknown, starting = false) {
  if (starting) flush();
  const { message, exitCode } = starting
    ? explainError(error)
    : { message: error instanceof Error ? error.message : String(error) };
  post({ type: "failed", message, exitCode });
}

// An uncaught error is reported to the main thread, which ends this worker
// and shuts the others down; Deno is kept from printing a stack trace.
function crashed(event: Event & { error?: unknown; reason?: unknown }) {
  event.preventDefault();
  fail(event.error ?? event.reason);
}
scope.addEventListener("error", crashed);
scope.addEventListener("unhandledrejection", crashed);

// Requests are answered one at a time, in the order asked: the main thread
// matches each answer to the oldest request.
let answered = Promise.resolve();

scope.onmessage = ({ data }: MessageEvent<ToWorker>) => {
  if (data.type === "start") {
    start(data).catch((error) => fail(error, !run));
  } else if (data.type === "shutdown") {
    // A failure is reported by start(), from `finished`.
    run?.shutdown();
  } else if (run) {
    // A stats request, or a reload: answered with fresh counters.
    const running = run;
    answered = answered.then(async () => {
      const error = data.type === "reload"
        ? await running.swap(data.prepared)
        : undefined;
      report("answer", error);
    });
  }
};
