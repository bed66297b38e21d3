import { createAdmission, needsAdmission } from "./admission.ts";
import { createIpSet } from "../net/ip_set.ts";
import {
  acceptConnection,
  type ConnectionContext,
  EMPTY,
  type ServerHooks,
} from "./connection.ts";
import { startServerCore } from "./connection_server.ts";
import {
  closeListener,
  type OpenListener,
  openListeners,
} from "./listeners.ts";
import {
  checkReloadable,
  type ReloadOptions,
  resolveOptions,
  type ServeGreetingOptions,
  TLS_HANDSHAKE_TIMEOUT,
} from "./options.ts";
import type { ServerStats } from "./stats.ts";
import type { TarpitStats } from "./tarpit.ts";
import { createTarpit } from "./tarpit_host.ts";
import { DEFAULT_MESSAGE, encodeGreeting } from "../greeting/template.ts";

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
   * @throws {TypeError} For a value of the wrong type.
   * @throws {RangeError} For a value out of its range.
   */
  reload(options: ReloadOptions): void;
  /**
   * Stops accepting, lets in-flight greetings finish (up to the drain
   * timeout), then closes what is left. Safe to call more than once.
   */
  shutdown(): Promise<void>;
}

const DEFAULT_GREETING = encodeGreeting(DEFAULT_MESSAGE);

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
 * {@linkcode serveGreeting} on listeners already open, such as the one
 * connection of inetd mode; the targets in `options` are not used.
 * Internal: not part of the library's face.
 */
export function serveGreetingOn(
  listeners: OpenListener[],
  options: ServeGreetingOptions,
): GreetingServer {
  return serveGreetingWith(options, {}, listeners);
}

/**
 * {@linkcode serveGreeting} with the internal observers of `hooks` (the
 * CLI's metrics take a number per connection there, and no record is made
 * unless `onClose` is given), on `listeners` when given. Internal: not part
 * of the library's face.
 */
export function serveGreetingWith(
  options: ServeGreetingOptions,
  hooks: ServerHooks,
  listeners?: OpenListener[],
): GreetingServer {
  const resolved = resolveOptions(options);
  const { signal } = options;
  signal?.throwIfAborted();
  listeners ??= openListeners(resolved.targets, {
    ...resolved,
    proxy: resolved.proxy !== undefined,
  });
  const greeting = resolved.greeting ?? DEFAULT_GREETING;
  const { state: server, shutdown, finished } = startServerCore(
    {
      acceptors: listeners.map(({ listener }) => listener),
      maxConnections: resolved.maxConnections,
      timeout: resolved.timeout,
      linger: resolved.linger,
      handshake: resolved.proxy?.timeout ?? 0,
      pause: resolved.sensor?.pause ?? 0,
      // Under `timeout: 0` a TLS handshake still has a bound.
      greetTimeout: resolved.tls ? TLS_HANDSHAKE_TIMEOUT : 0,
      drainTimeout: resolved.drainTimeout,
      onAcceptError: options.onAcceptError,
      signal,
      // Held clients are let go at once, not after the drain timeout.
      stopping: () => server.tarpit?.releaseAll(),
      closeAcceptors: () => listeners.map(closeListener),
    },
    (core): ConnectionContext => ({
      core,
      admission: needsAdmission(options) ? createAdmission(options) : undefined,
      greeting,
      refuseMessage: resolved.refuseMessage ?? EMPTY,
      onConnection: options.onConnection,
      onClose: options.onClose,
      onEnded: hooks.onEnded,
      selfProbe: options.selfProbe,
      // The trusted balancers as an IpSet: one search, no closure, per peer.
      proxy: resolved.proxy && createIpSet(resolved.proxy.from),
      sensor: resolved.sensor,
      mask: options.maskAddress,
      tarpit: undefined,
    }),
    acceptConnection,
  );
  const tarpit = resolved.tarpit && createTarpit(
    resolved.tarpit,
    server,
    typeof greeting === "function" ? undefined : greeting,
  );
  server.tarpit = tarpit;

  const addrs = listeners.map(({ listener }) => listener.addr);
  const firstTcp = addrs.find((addr): addr is Deno.NetAddr =>
    addr.transport === "tcp"
  );
  return {
    get addr(): Deno.NetAddr {
      if (!firstTcp) {
        throw new TypeError("This server has no TCP listener: see addrs");
      }
      return firstTcp;
    },
    addrs,
    stats: server.core.stats,
    tarpit: tarpit?.stats,
    get draining() {
      return server.core.closing;
    },
    finished,
    reload(next) {
      checkReloadable(next);
      if (next.tls) {
        // The first may refuse the pair, before anything has changed; the
        // rest take the same pair.
        for (const { tls } of listeners) {
          tls?.setCertificate(next.tls.cert, next.tls.key);
        }
      }
      server.greeting = next.greeting ?? DEFAULT_GREETING;
      server.refuseMessage = next.refuseMessage ?? EMPTY;
      if ("maskAddress" in next) server.mask = next.maskAddress;
      // Limits change only when given, and then start their counts afresh;
      // lists alone are swapped in place, keeping the counts.
      if ("maxPerIp" in next || "ratePerIp" in next) {
        server.admission = needsAdmission(next)
          ? createAdmission(next)
          : undefined;
      } else if ("allow" in next || "deny" in next) {
        const allow = next.allow ?? [];
        const deny = next.deny ?? [];
        if (server.admission) server.admission.setRules(allow, deny);
        else if (allow.length || deny.length) {
          server.admission = createAdmission({ allow, deny });
        }
      }
    },
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
