/**
 * The systemd notification protocol (`sd_notify(3)`): tell the service
 * manager that greeter is ready, reloading or stopping, with a status line.
 *
 * Each notification is one datagram to the `AF_UNIX`/`SOCK_DGRAM` socket
 * named by `$NOTIFY_SOCKET`, sent by greeter's own process: the kernel
 * attaches the sender's PID, which is how systemd tells the main process's
 * messages from others (`NotifyAccess=main`). That rules out running the
 * `systemd-notify` tool, whose PID is not greeter's.
 *
 * Deno can send such a datagram only with `Deno.listenDatagram({ transport:
 * "unixpacket" })`, which needs `--unstable-net` (without it the function
 * does not exist) and `--allow-net` for the socket it binds; sending to the
 * path needs write permission for it, and reading `$NOTIFY_SOCKET` needs
 * `--allow-env=NOTIFY_SOCKET`. `node:dgram` has no Unix sockets, and a
 * `node:net` stream cannot reach a datagram socket. When any of this is
 * missing, a notification fails quietly: it is counted, its error kept, and
 * `false` returned. Nothing here ever throws or rejects.
 *
 * @module
 */

import { escapeControl } from "../net/escape.ts";
import { readEnv } from "./socket_activation.ts";
import { attempt } from "../net/value_error.ts";

/** The largest datagram systemd reads (`NOTIFY_BUFFER_MAX`, one pipe buffer). */
export const MAX_NOTIFICATION_BYTES = 4096;

/** The longest `STATUS=` text sent, in UTF-16 code units; longer is cut. */
const MAX_STATUS = 1024;

/** The part of `Deno.DatagramConn` used here. */
export interface NotifySocket {
  /** Sends one datagram to `addr`. */
  send(data: Uint8Array, addr: UnixPacketAddr): Promise<number>;
  /** Closes the socket. */
  close(): void;
}

type UnixPacketAddr = { transport: "unixpacket"; path: string };

/** Options for {@linkcode createSystemdNotifier}. */
export interface SystemdNotifierOptions {
  /**
   * The notification socket: a path, or `@name` for the abstract namespace.
   * Defaults to `$NOTIFY_SOCKET`; empty or unset turns notifications off.
   */
  socket?: string;
  /** Opens the sending socket; defaults to `Deno.listenDatagram`. For tests. */
  open?: (options: UnixPacketAddr) => NotifySocket;
  /** The `MONOTONIC_USEC` for `RELOADING=1`; defaults to {@linkcode monotonicUsec}. */
  monotonicUsec?: () => bigint | undefined;
}

/** `Deno.listenDatagram`, which exists only with `--unstable-net`. */
function denoOpen(options: UnixPacketAddr): NotifySocket {
  const { listenDatagram: listen } = Deno as {
    listenDatagram?: (o: UnixPacketAddr) => NotifySocket;
  };
  if (listen) return listen(options);
  throw new TypeError(
    "Unix datagram sockets are not available: Deno needs --unstable-net",
  );
}

/** A `STATUS=` line from any text: one line, printable, not too long. */
function statusLine(text: string): string {
  const line = escapeControl(text);
  const long = line.length > MAX_STATUS;
  return `STATUS=${long ? `${line.slice(0, MAX_STATUS - 1)}…` : line}`;
}

/**
 * The current `CLOCK_MONOTONIC` time in microseconds, as systemd wants it in
 * `MONOTONIC_USEC=`, or an upper bound of it close enough for that use.
 *
 * Deno offers no absolute monotonic clock: `performance.now()` and
 * `process.hrtime()` count from the start of the process, and
 * `performance.timeOrigin` is wall-clock time. What can be read is
 * `CLOCK_BOOTTIME`: `/proc/uptime` in hundredths of a second, rounded down
 * (read with `--allow-read`), or else `Deno.osUptime()` in whole seconds,
 * rounded up by the kernel (`--allow-sys`). Boot time is monotonic time plus
 * the time spent suspended, so it is never smaller. One hundredth is added
 * to the `/proc/uptime` reading to undo its rounding.
 *
 * The result is therefore never below the true `CLOCK_MONOTONIC` value, and
 * above it by the time the machine spent suspended since boot (zero on most
 * servers) plus at most 10 ms (or 1 s from `Deno.osUptime()`). That is the
 * safe side: systemd only checks that the stamp is not older than the
 * moment it sent SIGHUP, and would ignore a reload notice stamped too early.
 * (A time namespace with different boot and monotonic offsets widens the
 * gap; both are zero outside containers that set them.)
 *
 * @returns Microseconds, or undefined if neither source can be read.
 */
export function monotonicUsec(): bigint | undefined {
  const uptime = attempt(() => Deno.readTextFileSync("/proc/uptime")) ?? "";
  const [, whole, hundredths] = /^(\d+)\.(\d{2}) /.exec(uptime) ?? [];
  if (whole !== undefined) {
    return (BigInt(whole) * 100n + BigInt(hundredths) + 1n) * 10_000n;
  }
  // Else whole seconds, with --allow-sys.
  const seconds = attempt(() => Deno.osUptime()) ?? 0;
  return Number.isSafeInteger(seconds) && seconds > 0
    ? BigInt(seconds) * 1_000_000n
    : undefined;
}

/**
 * Creates a notifier for `$NOTIFY_SOCKET` (or `options.socket`).
 *
 * Notifications go out in the order they were asked for, each on a socket
 * of its own that is closed once it is sent: there is nothing to close, and
 * nothing is left open between a start-up and a reload. The sending socket
 * is bound to an abstract name, so it leaves no file behind.
 *
 * @example Tell systemd that greeter is listening
 * ```ts ignore
 * const notifier = createSystemdNotifier();
 * // ... every listener is open ...
 * await notifier.ready("Listening on 0.0.0.0:8080");
 * ```
 */
export function createSystemdNotifier(options: SystemdNotifierOptions = {}) {
  const socket = options.socket ?? readEnv("NOTIFY_SOCKET");
  const enabled = socket !== undefined && socket !== "";
  const { open = denoOpen, monotonicUsec: stamp = monotonicUsec } = options;
  // Sends run one after another, so systemd sees them in the order asked.
  let queue = Promise.resolve(true);

  async function deliver(state: string): Promise<boolean> {
    let conn: NotifySocket | undefined;
    try {
      const data = new TextEncoder().encode(state);
      if (data.length > MAX_NOTIFICATION_BYTES) {
        const most = `systemd reads at most ${MAX_NOTIFICATION_BYTES}`;
        throw new RangeError(`Notification is ${data.length} bytes; ${most}`);
      }
      const id = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
      conn = open({ transport: "unixpacket", path: `\0greeter-notify-${id}` });
      // The kernel's form of a socket name: `@name` is `\0name`, abstract.
      const path = socket!.replace(/^@/, "\0");
      await conn.send(data, { transport: "unixpacket", path });
      notifier.sent++;
      return true;
    } catch (error) {
      notifier.failed++;
      notifier.lastError = error instanceof Error
        ? error
        : new Error(String(error));
      return false;
    } finally {
      attempt(() => conn?.close()); // Already closed: nothing to release.
    }
  }

  /**
   * Sends `state`, newline-separated `KEY=value` assignments, as they are.
   * Resolves to whether it was delivered.
   */
  function notify(state: string, status?: string): Promise<boolean> {
    if (!enabled) return Promise.resolve(false);
    if (status !== undefined) state += `\n${statusLine(status)}`;
    return queue = queue.then(() => deliver(state));
  }

  const notifier = {
    /** Whether a notification socket is set: when false, every call returns false at once. */
    enabled,
    /** The notification socket as given (`@name` for an abstract one), if any. */
    socket: enabled ? socket : undefined,
    /** Notifications delivered to the socket. */
    sent: 0,
    /** Notifications that failed (not counting those skipped because none is set). */
    failed: 0,
    /** Why the last failed notification failed. */
    lastError: undefined as Error | undefined,
    notify: (state: string) => notify(state),
    /** `READY=1`: start-up, or a reload, is complete. */
    ready: (status?: string) => notify("READY=1", status),
    /**
     * `RELOADING=1` and `MONOTONIC_USEC=` now: a reload has begun. Send
     * `ready` when it is over, whatever its result.
     */
    reloading(status?: string): Promise<boolean> {
      const usec = enabled ? stamp() : undefined;
      const state = usec === undefined ? "" : `\nMONOTONIC_USEC=${usec}`;
      return notify(`RELOADING=1${state}`, status);
    },
    /** `STOPPING=1`: shutdown has begun. */
    stopping: (status?: string) => notify("STOPPING=1", status),
    /** `STATUS=text`: one line for `systemctl status`. */
    status: (text: string) => notify(statusLine(text)),
  };
  return notifier;
}
