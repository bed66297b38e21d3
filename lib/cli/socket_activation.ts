/**
 * systemd's socket activation protocol, as `sd_listen_fds` reads it: the
 * service manager binds the ports and passes the listening sockets from
 * descriptor 3 on, saying how many in `LISTEN_FDS`, for which process in
 * `LISTEN_PID`, and their names in `LISTEN_FDNAMES` (colon-separated).
 *
 * @module
 */
import type { LogFormat } from "../observe/log_format.ts";
import { quote } from "../net/escape.ts";
import { attempt } from "../net/value_error.ts";
import { UsageError } from "./flags.ts";
import { warn } from "./warn.ts";

/**
 * Whether `variable` may be read; asked first, for a `deno run` in a
 * terminal would otherwise prompt.
 */
export function mayRead(variable: string): boolean {
  return attempt(() =>
    Deno.permissions.querySync({ name: "env", variable }).state === "granted"
  ) ?? false;
}

/** `variable`'s value, or undefined when it is unset or may not be read. */
export function readEnv(variable: string): string | undefined {
  return mayRead(variable) ? Deno.env.get(variable) : undefined;
}

/** The variables of the protocol; unset once read, as sd_listen_fds does. */
export const LISTEN_VARIABLES = [
  "LISTEN_FDS",
  "LISTEN_PID",
  "LISTEN_FDNAMES",
] as const;

/** The first passed descriptor (`SD_LISTEN_FDS_START`). */
export const LISTEN_FDS_START = 3;

/** The most sockets greeter takes from a service manager. */
const MAX_PASSED = 1024;

/** The name that routes a passed socket to the metrics endpoint. */
export const METRICS_FDNAME = "metrics";

/**
 * Reads the protocol's variables. Without `forced`, sockets are taken only
 * when `LISTEN_PID` is `pid` (otherwise they were meant for another process:
 * `warn` is told, and none is taken); with it, `LISTEN_FDS` must say some
 * were passed and `LISTEN_PID`, if set, must be `pid`.
 *
 * @returns The sockets, or undefined when none is for this process.
 * @throws {UsageError} For a value that is not what the protocol allows.
 */
export function readPassedSockets(
  env: Record<string, string | undefined>,
  pid: number,
  forced: boolean,
  warn: (text: string) => void = () => {},
): { greeting: number[]; metrics?: number } | undefined {
  const { LISTEN_FDS: fds, LISTEN_PID: owner, LISTEN_FDNAMES: names } = env;
  const flag = "--socket-activation";
  // No socket for greeter: an error only when it was asked for.
  const none = (why: string): undefined => {
    if (forced) throw new UsageError(`${flag}: ${why}`);
  };
  if (fds === undefined) {
    return none(
      "no socket was passed (LISTEN_FDS is not set); start greeter from a " +
        `systemd .socket unit or systemd-socket-activate, or drop ${flag}`,
    );
  }
  if (owner !== undefined && !/^[1-9]\d*$/.test(owner)) {
    throw new UsageError(
      `Invalid LISTEN_PID ${quote(owner)}: ` +
        "expected the process id the sockets are for",
    );
  }
  if (owner === undefined ? !forced : Number(owner) !== pid) {
    const whose = owner === undefined
      ? "LISTEN_PID is not set"
      : `LISTEN_PID is ${owner}, not greeter's process ${pid}`;
    none(
      `the sockets in LISTEN_FDS are not for greeter (${whose}); start ` +
        "greeter directly from the service manager, with exec in any " +
        "wrapper script",
    );
    warn(
      `LISTEN_FDS is ignored: ${whose} (the sockets are ` +
        "another process's, as sd_listen_fds decides)",
    );
    return undefined;
  }
  if (!/^\d+$/.test(fds) || Number(fds) > MAX_PASSED) {
    throw new UsageError(
      `Invalid LISTEN_FDS ${quote(fds)}: expected the number of sockets ` +
        `passed from descriptor 3 (0 to ${MAX_PASSED})`,
    );
  }
  const count = Number(fds);
  if (count === 0) return none("LISTEN_FDS is 0: no socket was passed");
  const list = names?.split(":") ?? [];
  if (names !== undefined && list.length !== count) {
    throw new UsageError(
      `Invalid LISTEN_FDNAMES ${quote(names)}: ${list.length} name${
        list.length === 1 ? "" : "s"
      } for ${count} socket${count === 1 ? "" : "s"} (LISTEN_FDS); give ` +
        "one name per socket, separated by colons",
    );
  }
  const passed = Array.from({ length: count }, (_, i) => LISTEN_FDS_START + i);
  const metrics = passed.filter((_, i) => list[i] === METRICS_FDNAME);
  const greeting = passed.filter((_, i) => list[i] !== METRICS_FDNAME);
  if (metrics.length > 1) {
    throw new UsageError(
      `LISTEN_FDNAMES names two sockets "${METRICS_FDNAME}" (descriptors ` +
        `${metrics[0]} and ${metrics[1]}): pass one metrics socket`,
    );
  }
  if (greeting.length === 0) {
    throw new UsageError(
      `The only socket passed is named "${METRICS_FDNAME}" ` +
        "(LISTEN_FDNAMES): pass one more for the greetings",
    );
  }
  return metrics.length ? { greeting, metrics: metrics[0] } : { greeting };
}

/**
 * Takes the sockets passed to this process, if any, and unsets the
 * variables so that no child or worker takes them too. Where the variables
 * may not be read (no `--allow-env` for them), nothing is taken, unless
 * `forced`: then that is the error.
 *
 * @throws {UsageError} See {@linkcode readPassedSockets}.
 */
export function takePassedSockets(
  forced: boolean,
  format: LogFormat = "text",
): ReturnType<typeof readPassedSockets> {
  if (!LISTEN_VARIABLES.every(mayRead)) {
    if (!forced) return undefined;
    throw new UsageError(
      "--socket-activation needs to read the environment: run deno with " +
        `--allow-env=${LISTEN_VARIABLES.join(",")}`,
    );
  }
  const env = Object.fromEntries(
    LISTEN_VARIABLES.map((name) => [name, Deno.env.get(name)]),
  );
  const passed = readPassedSockets(
    env,
    Deno.pid,
    forced,
    (text) => warn(text, format),
  );
  for (const variable of LISTEN_VARIABLES) Deno.env.delete(variable);
  return passed;
}
