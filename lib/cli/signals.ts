/**
 * The process signals a server acts on, listened for from greeter's first
 * instruction: a signal that comes while greeter starts (reading a large
 * file, say) is kept and acted on once its handler is set, instead of
 * killing the process by the default action.
 *
 * @module
 */

/**
 * The signals a serving greeter handles (none on Windows but SIGINT and
 * SIGBREAK), those that stop it first: handlers are set in this order.
 */
export const SERVER_SIGNALS: readonly Deno.Signal[] =
  Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"];

/** The handler of each signal listened for; undefined while none is set. */
const handlers = new Map<Deno.Signal, (() => void) | undefined>();
const pending = new Set<Deno.Signal>();

function listen(signal: Deno.Signal) {
  if (handlers.has(signal)) return;
  handlers.set(signal, undefined);
  Deno.addSignalListener(signal, () => {
    const handler = handlers.get(signal);
    if (handler) handler();
    else pending.add(signal);
  });
}

/**
 * Starts listening for every server signal now; each one that arrives before
 * {@linkcode onSignal} sets its handler is kept (once) until then.
 */
export function holdSignals(): void {
  for (const signal of SERVER_SIGNALS) listen(signal);
}

/**
 * Sets the one handler of `signal`, running it at once (in a microtask) if
 * the signal came while nobody handled it. Returns the function that
 * removes it; from then on the signal is kept again.
 */
export function onSignal(signal: Deno.Signal, handler: () => void): () => void {
  listen(signal);
  handlers.set(signal, handler);
  if (pending.delete(signal)) queueMicrotask(handler);
  return () => {
    if (handlers.get(signal) === handler) handlers.set(signal, undefined);
  };
}
