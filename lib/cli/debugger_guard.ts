/**
 * Keeps Deno's SIGUSR1 debugger shut. Under `deno run` (and `deno install`),
 * Deno 2.9.2 and later open the V8 inspector on 127.0.0.1:9229 when the
 * process gets SIGUSR1 (denoland/deno#35738), and any local user who
 * connects to it can run code inside greeter. Closing it afterwards is too
 * late: an attacker polling the port attaches within a millisecond. Deno
 * only binds that one address, so greeter holds it for as long as it runs:
 * the inspector then fails to bind and never opens. Compiled binaries have
 * no such handler and need nothing.
 *
 * @module
 */
import { ExitError } from "./flags.ts";
import { attempt } from "../net/value_error.ts";

/** Where Deno opens its inspector on SIGUSR1. */
export const INSPECTOR_HOST = "127.0.0.1:9229";

const REMEDY = "or run the compiled binary, which has no SIGUSR1 debugger";

/**
 * True when `reusePort` can be used: Deno exits at once, with no error to
 * catch, when it is asked for without `--unstable-net`, so this checks for
 * another API that flag enables.
 */
export function reusePortAvailable(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram ===
    "function";
}

/** How often a guard that found the address taken tries to take it. */
export const GUARD_RETRY_MS = 50;

/**
 * Binds 127.0.0.1:9229 so that a SIGUSR1 cannot open Deno's debugger, and
 * returns what to dispose of at exit (the socket is never accepted from: a
 * client that connects waits in the backlog and learns nothing). Sharing it
 * with other greeters needs `--unstable-net` (SO_REUSEPORT, which Linux
 * grants only within one user). Returns undefined where nothing needs
 * guarding (Windows, a compiled binary).
 *
 * When another program holds the address, Deno's debugger cannot bind it
 * either, so greeter starts all the same (refusing would let any local user
 * keep greeter down by binding a port): `onTaken` is told once, and greeter
 * takes the address over within {@linkcode GUARD_RETRY_MS} of its release.
 * Only in that window would a SIGUSR1 open the debugger, and only greeter's
 * own user (or root) can send one.
 *
 * @throws {ExitError} With exit code 1 when `--allow-net` does not cover the
 * address: greeter then refuses to start rather than run with the hole open.
 */
export function guardDebuggerPort(
  serving: { hostname: string; port: number } | undefined,
  onTaken: (message: string) => void,
): Disposable | undefined {
  // A `deno compile` binary's runtime has no SIGUSR1 debugger.
  const compiled = /[/\\]deno-compile-/.test(Deno.mainModule);
  if (Deno.build.os === "windows" || compiled) return undefined;
  const granted = (host: string) =>
    Deno.permissions.querySync({ name: "net", host }).state === "granted";
  // Without leave to listen where it serves, greeter fails on that, with
  // the message that names the flag; nothing opens to guard.
  if (serving) {
    const { hostname, port } = serving;
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    if (!granted(`${host}:${port}`)) return undefined;
  }
  const [hostname, port] = INSPECTOR_HOST.split(":");
  if (!granted(INSPECTOR_HOST)) {
    const message = `under deno run, greeter must hold ${INSPECTOR_HOST} ` +
      "so that a SIGUSR1 cannot open Deno's debugger to other local users, " +
      `and --allow-net does not cover it: add ${INSPECTOR_HOST} to ` +
      `--allow-net, ${REMEDY}`;
    throw new ExitError(message, 1);
  }
  const reusePort = reusePortAvailable();
  const hold = (): Deno.Listener | undefined => {
    try {
      return Deno.listen({ hostname, port: Number(port), reusePort });
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) return undefined;
      throw error;
    }
  };
  let held = hold();
  if (held) return held;
  onTaken(
    `${INSPECTOR_HOST} is held by another program (a deno --inspect on the ` +
      "default port, or another greeter without --unstable-net): while it " +
      "is, a SIGUSR1 cannot open Deno's debugger there either, and greeter " +
      "takes the address over as soon as it is free. Run every greeter on " +
      `this host with --unstable-net so that they share it, ${REMEDY}`,
  );
  const retry = setInterval(() => {
    // Not this time (out of descriptors, say): the next tick tries again.
    held = attempt(hold);
    if (held) clearInterval(retry);
  }, GUARD_RETRY_MS);
  Deno.unrefTimer(retry);
  return {
    [Symbol.dispose]() {
      clearInterval(retry);
      held?.close();
    },
  };
}
