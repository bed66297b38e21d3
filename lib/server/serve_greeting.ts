import { admissionOf } from "./admission.ts";
import { createIpSet } from "../net/ip_set.ts";
import { acceptConnection, connectionContext, EMPTY } from "./connection.ts";
import { DEFAULT_GREETING } from "../greeting/template.ts";
import { startServerCore } from "./connection_server.ts";
import { type OpenListener, openListeners } from "./listeners.ts";
import {
  checkInteger,
  DEFAULT_DRAIN_TIMEOUT,
  DEFAULT_LINGER,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_PROXY_TIMEOUT,
  DEFAULT_TIMEOUT,
  invalid,
  type ListenTarget,
  MAX_CAPTURE,
  MAX_COUNT,
  type ReloadOptions,
  sensorOf,
  type ServeGreetingOptions,
  TLS_HANDSHAKE_TIMEOUT,
} from "./options.ts";
import type { ServerStats } from "./stats.ts";
import { resolveTarpit, type TarpitStats } from "./tarpit.ts";
import { createTarpit } from "./tarpit_host.ts";
import { MAX_TIMER_MS } from "./wait.ts";

/**
 * A running greeting server, as returned by {@linkcode serveGreeting}.
 *
 * @example Usage
 * ```ts
 * import { type GreetingServer, serveGreeting } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const server: GreetingServer = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 * });
 * assertEquals(server.draining, false);
 * await server.shutdown();
 * assertEquals(server.draining, true);
 * await server.finished;
 * ```
 */
export interface GreetingServer extends AsyncDisposable {
  /**
   * The first TCP address the server listens on, with the real port if 0 was
   * asked.
   *
   * @throws {TypeError} If the server only listens on Unix sockets.
   */
  readonly addr: Deno.NetAddr;
  /** Every address the server listens on, in the order given. */
  readonly addrs: Deno.Addr[];
  /** Counters of what the server has done so far. */
  readonly stats: Readonly<ServerStats>;
  /** The tarpit's counters, in tarpit mode; undefined otherwise. */
  readonly tarpit: Readonly<TarpitStats> | undefined;
  /** True from the start of shutdown. */
  readonly draining: boolean;
  /** Settles once the server has shut down and every connection is closed. */
  readonly finished: Promise<void>;
  /**
   * Replaces the greeting and the refuse message (their defaults when not
   * given), the allow and deny lists when given (keeping the per-IP counts),
   * the per-IP limits when given (their counts start afresh), the address
   * mask when `maskAddress` is given (undefined: addresses whole) and the
   * TLS certificate, at once and without closing a listener: no client is
   * refused for it. Connections already accepted finish with what they
   * started with. Everything is checked
   * first: on an error nothing changes.
   *
   * @throws {TypeError} For a value of the wrong type, and for `tls` when
   * the server has no TLS listener.
   * @throws {RangeError} For a value out of its range.
   */
  reload(options: ReloadOptions): void;
  /**
   * Stops accepting, lets in-flight greetings finish (up to the drain
   * timeout), then closes what is left. Safe to call more than once.
   */
  shutdown(): Promise<void>;
}

/**
 * Listens and greets every client: writes the greeting, then closes that
 * connection. Nothing a client does stops the server: a client's failure is
 * counted and passed over, only exhaustion makes it wait, and every
 * connection is closed by its deadline.
 *
 * @throws {TypeError} For an option of the wrong type, before anything
 * listens.
 * @throws {RangeError} For an option out of its range, likewise.
 * @throws {ListenError} When an address cannot be listened on; its `cause`
 * is the error of `Deno.listen` (such as `Deno.errors.AddrInUse`) and
 * nothing is left listening.
 *
 * @example Usage
 * ```ts
 * import { encodeGreeting, fetchGreeting, serveGreeting } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   greeting: encodeGreeting("Hello"),
 * });
 * const bytes = await fetchGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * assertEquals(new TextDecoder().decode(bytes), "Hello\r\n");
 * ```
 *
 * @example Tarpit mode: hold SSH scanners with an endless banner
 * ```ts
 * import { serveGreeting } from "../../mod.ts";
 * import { assert, assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   tarpit: { style: "ssh", interval: 20 },
 * });
 * using conn = await Deno.connect({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * // One random line every 20 ms, never the "SSH-" version line.
 * const buffer = new Uint8Array(256);
 * const n = await conn.read(buffer);
 * const text = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
 * assert(text.endsWith("\r\n") && !text.startsWith("SSH-"));
 * assertEquals(server.tarpit?.clients, 1);
 * ```
 */
export function serveGreeting(
  options: ServeGreetingOptions = {},
): GreetingServer {
  return serveGreetingWith(options, {});
}

/**
 * {@linkcode serveGreeting} with the internal observers of `hooks` (the
 * CLI's metrics take a number per connection there, and no record is made
 * unless `onClose` is given), on its `listeners` when given: listeners
 * already open, such as the one connection of inetd mode, when the targets
 * in `options` are not used. Internal: not part of the library's face.
 */
export function serveGreetingWith(
  options: ServeGreetingOptions,
  hooks: Parameters<typeof connectionContext>[2] & {
    listeners?: OpenListener[];
  },
): GreetingServer {
  object("options", options);
  const tarpitOptions = options.tarpit === undefined
    ? undefined
    : resolveTarpit(options.tarpit, invalid);
  check(options, STARTUP);
  const { signal, timeout = tarpitOptions ? 0 : DEFAULT_TIMEOUT } = options;
  const proxy = proxyOf(options, timeout);
  const sensor = sensorOf(options, timeout);
  const targets = targetsOf(options);
  signal?.throwIfAborted();
  const listeners = hooks.listeners ?? openListeners(targets, options);
  const { state: server, shutdown, finished } = startServerCore(
    {
      listeners,
      maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      timeout,
      linger: options.linger ?? DEFAULT_LINGER,
      handshake: proxy?.timeout ?? 0,
      pause: sensor?.pause ?? 0,
      // Under `timeout: 0` a TLS handshake still has a bound.
      greetTimeout: listeners.some((l) => l.tls) ? TLS_HANDSHAKE_TIMEOUT : 0,
      drainTimeout: options.drainTimeout ?? DEFAULT_DRAIN_TIMEOUT,
      onAcceptError: options.onAcceptError,
      signal,
      // Held clients are let go at once, not after the drain timeout.
      stopping: () => server.tarpit?.releaseAll(),
      // A held client the table closed (its timeout) is let go at once.
      released: tarpitOptions && ((slot) => server.tarpit!.released(slot)),
    },
    (core) => connectionContext(core, options, hooks, proxy?.from, sensor),
    acceptConnection,
  );
  server.tarpit = tarpitOptions && createTarpit(
    tarpitOptions,
    server,
    typeof server.greeting === "function" ? undefined : server.greeting,
  );

  const addrs = listeners.map(({ listener }) => listener.addr);
  const firstTcp = addrs.find((a): a is Deno.NetAddr => a.transport === "tcp");
  return {
    get addr(): Deno.NetAddr {
      if (firstTcp) return firstTcp;
      throw new TypeError("This server has no TCP listener: see addrs");
    },
    addrs,
    stats: server.core.stats,
    tarpit: server.tarpit?.stats,
    get draining() {
      return server.core.closing;
    },
    finished,
    reload(next) {
      check(next, RELOADABLE);
      // Not ignored: the caller would believe a certificate was swapped.
      if (next.tls && !listeners.some((l) => l.tls)) {
        const expected = "undefined (this server has no TLS listener)";
        throw invalid("tls", next.tls, expected, TypeError);
      }
      // The first may refuse the pair, before anything has changed; the
      // rest take the same pair.
      for (const { tls } of next.tls ? listeners : []) {
        tls?.setCertificate(next.tls!.cert, next.tls!.key);
      }
      server.greeting = next.greeting ?? DEFAULT_GREETING;
      server.refuseMessage = next.refuseMessage ?? EMPTY;
      if ("maskAddress" in next) server.mask = next.maskAddress;
      // Limits change only when given, and then start their counts afresh;
      // lists alone are swapped in place, keeping the counts.
      const limits = "maxPerIp" in next || "ratePerIp" in next;
      const lists = "allow" in next || "deny" in next;
      if (limits || (lists && !server.admission)) {
        server.admission = admissionOf(next);
      } else if (lists) server.admission!.setRules(next.allow, next.deny);
    },
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}

/** Checks one option's value; its name is `option`. */
type Check = (option: string, value: unknown) => void;

/** A check that `test` passes, else a TypeError expecting `expected`. */
function is(test: (value: unknown) => boolean, expected: string): Check {
  return (option, value) => {
    if (!test(value)) throw invalid(option, value, expected, TypeError);
  };
}

/** A check for a whole number from `min` to `max`. */
const int = (min: number, max: number): Check => (option, value) =>
  checkInteger(option, value, min, max);

const bytes = is((value) => value instanceof Uint8Array, "a Uint8Array");
const fn = is((value) => typeof value === "function", "a function");
const tlsPair = is((value) => {
  const tls = value as Record<string, unknown> | null;
  return typeof tls === "object" && tls !== null &&
    typeof tls.cert === "string" && typeof tls.key === "string";
}, "an object with PEM strings cert and key");
const string = is((value) => typeof value === "string", "a string");
const path = is((v) => typeof v === "string" && v !== "", "a non-empty path");
const object = is((v) => typeof v === "object" && v !== null, "an object");
const ms = int(0, MAX_TIMER_MS);
const portNumber = int(0, 65_535);

const cidr = is((value) => {
  const c = value as { bytes?: unknown; prefix?: number } | null;
  return typeof c === "object" && c !== null &&
    c.bytes instanceof Uint8Array &&
    (c.bytes.length === 4 || c.bytes.length === 16) &&
    Number.isInteger(c.prefix) && c.prefix! >= 0 &&
    c.prefix! <= c.bytes.length * 8;
}, "a block from parseCidr()");

/** A list of CIDR blocks; a bad entry would throw on the first client. */
const cidrs: Check = (option, list) => {
  is(Array.isArray, "an array of CIDR blocks")(option, list);
  (list as unknown[]).forEach((value, i) => cidr(`${option}[${i}]`, value));
};

/** What a reload may replace, checked as at start-up. */
const RELOADABLE: Record<string, Check> = {
  tls: tlsPair,
  // Checked here, where it is used: bytes, or a function making them.
  greeting: (option, value) => {
    if (typeof value !== "function") bytes(option, value);
  },
  refuseMessage: bytes,
  maxPerIp: int(1, MAX_COUNT),
  ratePerIp: (option, rate) => {
    is((value) => typeof value === "number", "a number")(option, rate);
    if (!((rate as number) > 0 && (rate as number) <= MAX_COUNT)) {
      throw invalid(option, rate, `a number above 0, at most ${MAX_COUNT}`);
    }
  },
  allow: cidrs,
  deny: cidrs,
  maskAddress: fn,
};

/**
 * Every option's own range, at start-up, in this order; how they combine is
 * checked after.
 */
const STARTUP: Record<string, Check> = {
  drainTimeout: ms,
  timeout: ms,
  linger: ms,
  maxConnections: int(1, MAX_COUNT),
  backlog: int(1, 65_535),
  ...RELOADABLE,
  signal: is((value) => value instanceof AbortSignal, "an AbortSignal"),
  reusePort: is((value) => typeof value === "boolean", "a boolean"),
  onConnection: fn,
  onClose: fn,
  onAcceptError: fn,
  greetPause: ms,
  earlyTalkers: (option, value) => {
    if (value !== "greet" && value !== "refuse") {
      throw invalid(option, value, '"greet" or "refuse"');
    }
  },
  capture: int(1, MAX_CAPTURE),
  // Then `proxyProtocol`, checked where it is read (proxyOf).
};

/**
 * Checks that `options` is an object (named `at` without its dot, or
 * `options`), then runs each of `checks` on the option of its name that is
 * given, named `at` + its name.
 *
 * @throws {TypeError} For a value of the wrong type.
 * @throws {RangeError} For one out of its range. Either error has the
 * fields `option` (its name) and `value`.
 */
function check(options: unknown, checks: Record<string, Check>, at = ""): void {
  object(at.slice(0, -1) || "options", options);
  for (const option in checks) {
    const value = (options as Record<string, unknown>)[option];
    if (value !== undefined) checks[option](at + option, value);
  }
}

/**
 * The PROXY protocol's trusted peers and header wait, when one is expected;
 * checked after every option of {@linkcode STARTUP}.
 */
function proxyOf({ proxyProtocol }: ServeGreetingOptions, timeout: number) {
  if (proxyProtocol === undefined) return undefined;
  const proxyChecks = { from: cidrs, timeout: int(1, MAX_TIMER_MS) };
  check(proxyProtocol, proxyChecks, "proxyProtocol.");
  const { from, timeout: wait = DEFAULT_PROXY_TIMEOUT } = proxyProtocol;
  const expected = "the load balancers' addresses";
  if (!from?.length) throw invalid("proxyProtocol.from", from, expected);
  return {
    // An IpSet: one search, no closure, per peer.
    from: createIpSet(from),
    timeout: timeout > 0 ? Math.min(wait, timeout) : wait,
  };
}

/** What to listen on: `listen`, each checked, or the one TCP address. */
function targetsOf(options: ServeGreetingOptions): ListenTarget[] {
  const { listen, hostname, port, tls } = options;
  if (listen !== undefined && (!Array.isArray(listen) || listen.length === 0)) {
    throw invalid("listen", listen, "a non-empty array");
  }
  // Each left out is defaulted where it is listened on.
  return (listen ?? [{ hostname, port, tls }]).map((target: unknown, i) => {
    const at = listen ? `listen[${i}].` : "";
    object(at.slice(0, -1), target);
    const t = target as Record<string, unknown>;
    const { transport = "tcp" } = t;
    if (transport === "unix") path(`${at}path`, t.path);
    else if (transport === "fd") ms(`${at}fd`, t.fd);
    else if (transport === "tcp") {
      check(t, { hostname: string, port: portNumber }, at);
    } else throw invalid(`${at}transport`, transport, '"tcp", "unix" or "fd"');
    // A TCP socket or a descriptor may be TLS; a Unix socket is not.
    if (transport !== "unix") check(t, { tls: tlsPair }, at);
    return target as ListenTarget;
  });
}
