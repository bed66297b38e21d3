import type { AdmissionOptions } from "./admission.ts";
import type { Cidr } from "../net/ip.ts";
import type { ConnectionOutcome } from "./stats.ts";
import type { GreetingSource } from "../greeting/template.ts";
import type { TarpitOptions } from "./tarpit.ts";
import type { Probe } from "../net/probe.ts";
import type { AddressMask } from "../net/address_privacy.ts";

/** The most bytes `capture` keeps of one connection. */
export const MAX_CAPTURE = 4096;
/** What a server senses; see `greetPause`, `earlyTalkers` and `capture`. */
export type SensorOptions = NonNullable<ReturnType<typeof sensorOf>>;

/** The most any count option takes: connections, per address, per second. */
export const MAX_COUNT = 1_000_000_000;
/** The default TCP port. */
export const DEFAULT_PORT = 8080;
/** The default address to listen on: every IPv4 interface. */
export const DEFAULT_HOSTNAME = "0.0.0.0";
/** How long shutdown waits for in-flight greetings, in milliseconds. */
export const DEFAULT_DRAIN_TIMEOUT = 5_000;
/** How many connections are served at once before accepting pauses. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** The longest a connection may live, in milliseconds. */
export const DEFAULT_TIMEOUT = 10_000;
/** How long to wait for the client to close after the greeting, in ms. */
export const DEFAULT_LINGER = 2_000;
/**
 * The listen queue asked for by default. Linux and the BSDs silently cap it
 * at `net.core.somaxconn` (`kern.ipc.somaxconn`), so this asks for the most
 * the kernel allows: a burst of clients waits in the queue instead of being
 * dropped. (511, the old default, left thousands of a 10,000 burst unserved.)
 */
export const DEFAULT_BACKLOG = 65_535;

/**
 * Certificate and key, in PEM, for serving the greeting over TLS.
 *
 * @example Usage
 * ```ts
 * import { ListenError, serveGreeting, type TlsOptions } from "../../mod.ts";
 * import { assertThrows } from "@std/assert";
 *
 * // Real PEM text usually comes from files, such as with Deno.readTextFile.
 * // A pair that is not PEM is refused before anything listens.
 * const tls: TlsOptions = { cert: "not a certificate", key: "not a key" };
 * assertThrows(
 *   () => serveGreeting({ hostname: "127.0.0.1", port: 0, tls }),
 *   ListenError,
 * );
 * ```
 */
export interface TlsOptions {
  /** The certificate chain, PEM. */
  cert: string;
  /** The private key, PEM. */
  key: string;
}

/**
 * One address to listen on: TCP (optionally TLS), or a Unix socket.
 *
 * @example Usage
 * ```ts
 * import { type ListenTarget, serveGreeting } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const listen: ListenTarget[] = [
 *   { hostname: "127.0.0.1", port: 0 },
 *   { transport: "tcp", hostname: "127.0.0.1", port: 0 },
 * ];
 * await using server = serveGreeting({ listen });
 * assertEquals(server.addrs.length, 2);
 * ```
 */
export type ListenTarget =
  | {
    transport?: "tcp";
    /** @default {"0.0.0.0"} */
    hostname?: string;
    /** @default {8080} */
    port?: number;
    /** Serve over TLS with this certificate and key. */
    tls?: TlsOptions;
  }
  | {
    transport: "unix";
    /** The socket's path. */
    path: string;
  }
  | {
    /**
     * A listening TCP or Unix stream socket that is already open, such as
     * one systemd passes (socket activation: descriptors from 3).
     */
    transport: "fd";
    /** The descriptor. */
    fd: number;
    /** Serve over TLS with this certificate and key (TCP sockets). */
    tls?: TlsOptions;
  };

/**
 * Serving behind a load balancer that speaks the PROXY protocol (v1 or v2,
 * told apart by their first bytes): each connection starts with a header
 * naming the real client, which is then the address that access rules,
 * limits, templates and logs see.
 *
 * @example Trust headers from the balancers on 10.0.0.0/8 only
 * ```ts
 * import { parseCidr, serveGreeting } from "../../mod.ts";
 *
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   proxyProtocol: { from: [parseCidr("10.0.0.0/8")] },
 * });
 * ```
 */
export interface ProxyProtocolOptions {
  /**
   * The peers that may send a header: the load balancers. A connection from
   * any other peer is refused (`proxy_untrusted`), as is one whose header is
   * missing, malformed, too long or late (`proxy_header`).
   */
  from: Cidr[];
  /**
   * How long the header may take to arrive, in milliseconds; never more
   * than `timeout`.
   *
   * @default {3000}
   */
  timeout?: number;
}

/** The default wait for a PROXY protocol header, in milliseconds. */
export const DEFAULT_PROXY_TIMEOUT = 3_000;

/**
 * The longest a TLS client may take to finish its handshake and take its
 * greeting, in ms, when `timeout` is 0 (no limit on the whole life): a
 * client that never sends its ClientHello cannot hold a place for ever.
 */
export const TLS_HANDSHAKE_TIMEOUT = 10_000;

/**
 * What happened to one connection; see {@linkcode ServeGreetingOptions.onClose}.
 *
 * @example Usage
 * ```ts
 * import {
 *   type ConnectionRecord,
 *   fetchGreeting,
 *   serveGreeting,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const closed = Promise.withResolvers<ConnectionRecord>();
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onClose: (record) => closed.resolve(record),
 * });
 * await fetchGreeting({ hostname: "127.0.0.1", port: server.addr.port });
 * const record = await closed.promise;
 * assertEquals(record.outcome, "greeted");
 * assertEquals(record.bytesWritten, record.greetingLength);
 * ```
 */
export interface ConnectionRecord {
  /**
   * The client's address (a Unix socket's clients have no path); behind a
   * PROXY protocol balancer, the client its header named.
   */
  remoteAddr: Deno.Addr;
  /**
   * The direct peer, when it is not the client: the load balancer that sent
   * a PROXY protocol header.
   */
  peerAddr?: Deno.Addr;
  /** The address the client reached. */
  localAddr: Deno.Addr;
  /** How the connection ended. */
  outcome: ConnectionOutcome;
  /** Why it was refused, or the error's kind. */
  reason?: string;
  /** Bytes of the greeting (or refuse message) written. */
  bytesWritten: number;
  /** Bytes there were to write. */
  greetingLength: number;
  /** When it was accepted, in milliseconds since the epoch. */
  startTime: number;
  /** How long it lived, in milliseconds (from a monotonic clock). */
  duration: number;
  /**
   * With `greetPause` or `capture`: true if the client sent something
   * during the greeting pause (an early talker).
   */
  earlyTalker?: boolean;
  /**
   * With `greetPause` or `capture`: what the client's first bytes looked
   * like; absent if it sent nothing.
   */
  probe?: Probe;
  /**
   * With `capture`: the first bytes the client sent (at most `capture`),
   * before or after the greeting; empty if it sent nothing.
   */
  captured?: Uint8Array;
  /** In tarpit mode, how long the tarpit held it, in milliseconds. */
  held?: number;
}

/**
 * Why an accept failed: `client` (one connection's own failure, such as a
 * client that reset before it was accepted: the server goes on at once),
 * `exhausted` (out of descriptors or memory: the server waits for a
 * connection to end, or backs off) or `other` (unexpected: retried after a
 * back-off).
 *
 * @example Usage
 * ```ts
 * import { type AcceptErrorKind, serveGreeting } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const failures: AcceptErrorKind[] = [];
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onAcceptError: (_error, kind) => failures.push(kind),
 * });
 * assertEquals(failures, []);
 * assertEquals(server.stats.acceptErrors, {});
 * ```
 */
export type AcceptErrorKind = "client" | "exhausted" | "other";

/**
 * Options for {@linkcode serveGreeting}.
 *
 * @example Usage
 * ```ts
 * import {
 *   encodeGreeting,
 *   serveGreeting,
 *   type ServeGreetingOptions,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const options: ServeGreetingOptions = {
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   greeting: encodeGreeting("Hello"),
 *   maxConnections: 100,
 *   timeout: 1_000,
 * };
 * await using server = serveGreeting(options);
 * assertEquals(server.addr.hostname, "127.0.0.1");
 * ```
 */
export interface ServeGreetingOptions extends AdmissionOptions {
  /**
   * The address to listen on; `::` serves IPv6 and IPv4 clients. Ignored
   * when `listen` is given.
   *
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * The TCP port to listen on; 0 picks a free one (see
   * {@linkcode GreetingServer.addr}). Ignored when `listen` is given.
   *
   * @default {8080}
   */
  port?: number;
  /** Serve over TLS. Ignored when `listen` is given. */
  tls?: TlsOptions;
  /**
   * Several addresses to listen on, served by one process. If any cannot be
   * listened on, none is: the ones already open are closed again.
   */
  listen?: ListenTarget[];
  /**
   * Set `SO_REUSEPORT` on TCP listeners, so several processes or workers can
   * share a port (Linux spreads connections across them). Needs Deno's
   * `--unstable-net`.
   */
  reusePort?: boolean;
  /**
   * The exact bytes sent to every client, usually from
   * {@linkcode encodeGreeting}, encoded once and never copied per
   * connection; or a function that makes them per connection.
   *
   * @default {encodeGreeting("Connection Established")}
   */
  greeting?: GreetingSource;
  /** Sent instead of the greeting to refused clients; by default they are closed. */
  refuseMessage?: Uint8Array;
  /** Aborting it shuts the server down, like {@linkcode GreetingServer.shutdown}. */
  signal?: AbortSignal;
  /**
   * How long shutdown lets in-flight greetings finish before it closes them,
   * in milliseconds.
   *
   * @default {5000}
   */
  drainTimeout?: number;
  /**
   * How many connections are open at once, across every listener. A place
   * is taken before each accept, so the cap is exact; at the cap the server
   * stops accepting, and new clients wait in the kernel's listen queue
   * rather than being refused.
   *
   * @default {10000}
   */
  maxConnections?: number;
  /**
   * The length of the kernel's queue of connections not yet accepted; the
   * kernel caps it at its own limit (`net.core.somaxconn` on Linux).
   *
   * @default {65535}
   */
  backlog?: number;
  /**
   * The longest one connection may live, in milliseconds, TLS handshake
   * included (a client that never reads a large greeting, never finishes
   * its handshake, or never closes); 0 for no limit.
   *
   * @default {10000, or 0 with `tarpit`}
   */
  timeout?: number;
  /**
   * After the greeting, the server shuts down its side and reads and
   * discards until the client closes, for at most this many milliseconds,
   * so a client that sent bytes first still receives the whole greeting
   * rather than a reset. 0 closes at once.
   *
   * @default {2000}
   */
  linger?: number;
  /** Expect a PROXY protocol header from a load balancer on every connection. */
  proxyProtocol?: ProxyProtocolOptions;
  /**
   * Tarpit mode: every admitted client is held and sent a never-ending
   * banner, a little every interval, until it leaves or `timeout` ends it
   * (which then defaults to 0: never). Refused clients are refused as
   * always; shutdown releases held clients at once. See
   * {@linkcode TarpitOptions}.
   */
  tarpit?: TarpitOptions;
  /**
   * Called for every admitted client, before it is greeted, with the direct
   * peer too when a PROXY protocol header named another client. Keep it
   * cheap: it runs on the per-connection path.
   */
  onConnection?: (
    remoteAddr: Deno.Addr,
    localAddr: Deno.Addr,
    peerAddr?: Deno.Addr,
  ) => void;
  /** Called when a connection ends, with what happened to it. */
  onClose?: (record: ConnectionRecord) => void;
  /**
   * Wait this many milliseconds before greeting; a client that sends
   * anything meanwhile is an early talker (see `earlyTalkers`), counted in
   * {@linkcode ServerStats.earlyTalkers} and marked in its record. Scanners
   * and bots speak first; people and line-oriented clients wait. Must be
   * shorter than `timeout`. With a pause or `capture`, the client's first
   * bytes are named too ({@linkcode ConnectionRecord.probe},
   * {@linkcode ServerStats.probes}); 0 greets at once and looks only at
   * what comes while lingering. The waits are ended by the connection
   * table's one sweep, not a timer each.
   *
   * @example Catch a client that talks first
   * ```ts
   * import { type ConnectionRecord, serveGreeting } from "../../mod.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const closed = Promise.withResolvers<ConnectionRecord>();
   * await using server = serveGreeting({
   *   hostname: "127.0.0.1",
   *   port: 0,
   *   greetPause: 200,
   *   onClose: (record) => closed.resolve(record),
   * });
   * const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
   * await conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
   * // Refused: closed without a greeting.
   * assertEquals(await conn.read(new Uint8Array(64)), null);
   * conn.close();
   * const record = await closed.promise;
   * assertEquals(record.earlyTalker, true);
   * assertEquals(record.reason, "early_talker");
   * assertEquals(record.probe?.kind, "http");
   * ```
   */
  greetPause?: number;
  /**
   * What becomes of an early talker (see `greetPause`): `refuse` closes it
   * without a greeting (outcome `refused`, reason `early_talker`; it gets
   * the `refuseMessage` if there is one), `greet` greets it all the same.
   *
   * @default {"refuse"}
   *
   * @example Greet early talkers, but mark them
   * ```ts
   * import { serveGreeting } from "../../mod.ts";
   *
   * await using server = serveGreeting({
   *   hostname: "127.0.0.1",
   *   port: 0,
   *   greetPause: 500,
   *   earlyTalkers: "greet",
   * });
   * ```
   */
  earlyTalkers?: "greet" | "refuse";
  /**
   * Keep the first this many bytes (1 to 4096) a client sends, before or
   * after the greeting, in its record ({@linkcode ConnectionRecord.captured}).
   * What comes after the greeting is read while lingering, so it needs a
   * `linger`. One buffer per connection, no larger than this (and none
   * without it); a client that sends more is read only to linger.
   *
   * @example Record what clients send
   * ```ts
   * import { type ConnectionRecord, serveGreeting } from "../../mod.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const closed = Promise.withResolvers<ConnectionRecord>();
   * await using server = serveGreeting({
   *   hostname: "127.0.0.1",
   *   port: 0,
   *   capture: 16,
   *   onClose: (record) => closed.resolve(record),
   * });
   * const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
   * await conn.read(new Uint8Array(64)); // the greeting
   * await conn.write(new TextEncoder().encode("SSH-2.0-Probe\r\n"));
   * conn.close();
   * const record = await closed.promise;
   * assertEquals(new TextDecoder().decode(record.captured), "SSH-2.0-Probe\r\n");
   * assertEquals(record.probe?.kind, "ssh");
   * ```
   */
  capture?: number;
  /**
   * How `onConnection`, `onClose` and so the logs see a client's address,
   * made by {@linkcode createAddressMask}: cut to its network, or replaced
   * by a keyed pseudonym, without its port. Access rules, limits and
   * greeting templates still see the real address.
   *
   * @example Log networks, not addresses
   * ```ts
   * import {
   *   type ConnectionRecord,
   *   createAddressMask,
   *   fetchGreeting,
   *   serveGreeting,
   * } from "../../mod.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const closed = Promise.withResolvers<ConnectionRecord>();
   * await using server = serveGreeting({
   *   hostname: "127.0.0.1",
   *   port: 0,
   *   maskAddress: await createAddressMask({ mode: "truncate" }),
   *   onClose: (record) => closed.resolve(record),
   * });
   * await fetchGreeting({ hostname: "127.0.0.1", port: server.addr.port });
   * const { remoteAddr } = await closed.promise;
   * assertEquals(remoteAddr, {
   *   transport: "tcp",
   *   hostname: "127.0.0.0/24",
   *   port: 0,
   * });
   * ```
   */
  maskAddress?: AddressMask;
  /**
   * A shared cell (`Int32Array` of one, on a `SharedArrayBuffer`) that
   * holds the source port of the server's own health probe while one is in
   * flight, and 0 otherwise (see `probeAddress`). The connection from that
   * port, whose source address is the address it reached, is the probe: it
   * is closed at once and the cell set to 0, and it is never counted,
   * logged or given to `onConnection` or `onClose`. Any thread's server may
   * take it, so workers share the one cell.
   */
  selfProbe?: Int32Array;
  /**
   * Called when an accept fails; the server has counted it in
   * {@linkcode ServerStats.acceptErrors} under `code` (such as `"EMFILE"`)
   * and goes on.
   */
  onAcceptError?: (error: unknown, kind: AcceptErrorKind, code: string) => void;
}

/**
 * What {@linkcode GreetingServer.reload} can replace while the server runs:
 * the greeting and the refuse message (back to their defaults when not
 * given), who may connect (only when one of those options is given), the
 * address mask (when `maskAddress` is given, even as undefined), and the
 * certificate and key of every TLS listener (when `tls` is given: new
 * connections get the new certificate).
 *
 * @example Swap the greeting of a running server
 * ```ts
 * import {
 *   encodeGreeting,
 *   fetchGreeting,
 *   type ReloadOptions,
 *   serveGreeting,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
 * const next: ReloadOptions = { greeting: encodeGreeting("Hello again") };
 * server.reload(next);
 * const bytes = await fetchGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * assertEquals(new TextDecoder().decode(bytes), "Hello again\r\n");
 * ```
 */
export type ReloadOptions = Pick<
  ServeGreetingOptions,
  "greeting" | "refuseMessage" | keyof AdmissionOptions | "tls" | "maskAddress"
>;

/**
 * The greeting pause and capture, when asked for, each checked already in
 * its own range; checked here against `timeout` and each other.
 *
 * @throws {RangeError} When they do not go together.
 */
export function sensorOf(options: ServeGreetingOptions, timeout: number) {
  const { greetPause, earlyTalkers, capture } = options;
  if (greetPause !== undefined && timeout > 0 && greetPause >= timeout) {
    const expected = `less than the timeout (${timeout})`;
    throw invalid("greetPause", greetPause, expected);
  }
  if (earlyTalkers !== undefined && greetPause === undefined) {
    throw invalid("earlyTalkers", earlyTalkers, "a greetPause to go with");
  }
  if (greetPause === undefined && capture === undefined) return undefined;
  if (options.tarpit !== undefined) {
    const option = greetPause !== undefined ? "greetPause" : "capture";
    const expected = "no tarpit (a tarpit never greets)";
    throw invalid(option, greetPause ?? capture, expected);
  }
  return {
    /** How long to wait before greeting, in ms; 0 greets at once. */
    pause: greetPause ?? 0,
    /** Whether an early talker is still greeted (else it is refused). */
    greetEarly: earlyTalkers === "greet",
    /** How many of the first bytes are kept; 0 keeps none. */
    capture: capture ?? 0,
  };
}

/** An option's value is out of its range; says which option and value. */
export function invalid(
  option: string,
  value: unknown,
  expected: string,
  Kind: typeof RangeError | typeof TypeError = RangeError,
): Error {
  const shown = typeof value === "string"
    ? JSON.stringify(value)
    : typeof value === "number" || typeof value === "boolean" || value === null
    ? String(value)
    : `a value of type ${typeof value}`;
  return Object.assign(
    new Kind(`Invalid ${option} option: expected ${expected}, got ${shown}`),
    { option, value },
  );
}

/**
 * Checks that option `option` is a whole number from `min` to `max`.
 *
 * @throws {TypeError} For a value that is not a number.
 * @throws {RangeError} For one out of the range.
 */
export function checkInteger(
  option: string,
  value: unknown,
  min: number,
  max: number,
): void {
  if (typeof value !== "number") {
    throw invalid(option, value, "a number", TypeError);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(option, value, `a whole number from ${min} to ${max}`);
  }
}
