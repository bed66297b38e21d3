import { admissionOf } from "./admission.ts";
import type { Conn, Slot } from "./connection_table.ts";
import type { ServerCore } from "./connection_server.ts";
import type {
  ConnectionRecord,
  SensorOptions,
  ServeGreetingOptions,
} from "./options.ts";
import { parseIp } from "../net/ip.ts";
import type { IpSet } from "../net/ip_set.ts";
import { ProxyProtocolError, readProxyHeader } from "../net/proxy_protocol.ts";
import { isTlsConnection, startDeferredTls } from "./tls_listener.ts";
import type { ConnectionOutcome } from "./stats.ts";
import { DEFAULT_GREETING } from "../greeting/template.ts";
import { Sensing } from "./sensor.ts";
import { maskAddress } from "../net/address_privacy.ts";
import type { Tarpit } from "./tarpit.ts";

/** The greeting server's state, shared by its connections. */
export type ConnectionContext = ReturnType<typeof connectionContext>;

/**
 * The state of a greeting server on `core`, from its options: what `proxy`
 * trusts and its `sensor` are worked out from them already.
 */
export function connectionContext(
  core: ServerCore,
  options: ServeGreetingOptions,
  hooks: { onEnded?(duration: number, held: number | undefined): void },
  proxy: IpSet | undefined,
  sensor: SensorOptions | undefined,
) {
  return {
    /** The core it runs on: counters, table, places, shutdown flag. */
    core,
    /** Who may connect; replaced whole by a reload. */
    admission: admissionOf(options),
    /** What clients are sent; replaced by a reload. */
    greeting: options.greeting ?? DEFAULT_GREETING,
    /** What refused clients are sent; replaced by a reload. */
    refuseMessage: options.refuseMessage ?? EMPTY,
    onConnection: options.onConnection,
    onClose: options.onClose,
    /**
     * An internal observer beside the options (the CLI's metrics take a
     * number per connection from it, with no record made): called as each
     * connection ends with how long it lived, in ms, and in tarpit mode how
     * long it was held.
     */
    onEnded: hooks.onEnded,
    /** The health probe's source port while one is in flight, or 0. */
    selfProbe: options.selfProbe,
    /** The PROXY protocol's trusted peers, when a header is expected. */
    proxy,
    /** The greeting pause and capture, when asked for. */
    sensor,
    /** How observers see a client's address; replaced by a reload. */
    mask: options.maskAddress,
    /** In tarpit mode, what holds admitted clients instead of greeting them. */
    tarpit: undefined as Tarpit | undefined,
  };
}

/** The bytes of a refused client's greeting when there is no refuse message. */
export const EMPTY: Uint8Array = new Uint8Array(0);
// Discarded bytes a lingering client sends land here; shared, never read.
const scratch = new Uint8Array(16 * 1024);
// The errors of a client that reset or closed first.
const RESETS = [
  Deno.errors.ConnectionReset,
  Deno.errors.BrokenPipe,
  Deno.errors.ConnectionAborted,
  Deno.errors.NotConnected,
];

/**
 * How a failed read or write ended a connection: the client reset or
 * closed, it was closed here (by its deadline, or by shutdown), or another
 * error (with its code as the reason).
 */
export function failure(
  core: { readonly closing: boolean },
  error: unknown,
): [ConnectionOutcome, string | undefined] {
  if (RESETS.some((type) => error instanceof type)) return ["reset", undefined];
  if (
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted
  ) return [core.closing ? "aborted" : "timed_out", undefined];
  const code = (error as { code?: unknown } | null)?.code;
  const name = error instanceof Error ? error.name : "unknown";
  return ["error", typeof code === "string" ? code : name];
}

/**
 * The address as a {@linkcode Deno.NetAddr}, for greeting templates: a Unix
 * socket's address becomes its path as the host name (empty for a client,
 * whose socket has none), with port 0.
 */
function netAddr(addr: Deno.Addr): Deno.NetAddr {
  if (addr.transport === "tcp" || addr.transport === "udp") return addr;
  const hostname = ("path" in addr ? addr.path : null) ?? "";
  return { transport: "tcp", hostname, port: 0 };
}

/**
 * Takes one accepted connection: admits or refuses it, makes its greeting,
 * and starts serving it. It already holds a place; the table gives the place
 * back when the connection is released.
 */
export function acceptConnection(server: ConnectionContext, conn: Conn): void {
  const { core, selfProbe: probe } = server;
  const { table } = core;
  if (probe !== undefined && probe[0] !== 0 && isSelfProbe(conn, probe[0])) {
    // Not a client: off the queue, closed, and told so.
    Atomics.store(probe, 0, 0);
    table.release(table.add(conn));
    return;
  }
  core.stats.accepted++;
  if (server.proxy) {
    const slot = table.addHandshaking(conn);
    // Nothing in it should throw; if it ever does, the slot is still freed.
    acceptProxied(server, slot).catch(() => table.release(slot));
    return;
  }
  // Only a TLS connection has the greeting's deadline (its handshake).
  const greeting = table.boundsGreeting && isTlsConnection(conn);
  admitAndServe(server, table.add(conn, greeting), conn.remoteAddr);
}

/**
 * True for the health probe: from `port`, and from the very address it
 * reached (the probe binds it), which only this host can be.
 */
function isSelfProbe(conn: Conn, port: number): boolean {
  const remote = conn.remoteAddr as Deno.NetAddr;
  return remote.port === port &&
    remote.hostname === (conn.localAddr as Deno.NetAddr).hostname;
}

/**
 * True if `addr` is an IP address inside one of `blocks`, or a Unix socket
 * peer: who may connect to one is for its file's permissions to say, so a
 * local balancer (HAProxy's `server ... /path send-proxy`) is trusted.
 */
function isFrom(addr: Deno.Addr, blocks: IpSet): boolean {
  if (addr.transport === "unix") return true;
  if (addr.transport !== "tcp") return false;
  const bytes = parseIp(addr.hostname);
  return bytes !== undefined && blocks.has(bytes);
}

/** Counts a refusal and closes the client after `bytes`, unlingered. */
function refuse(
  server: ConnectionContext,
  slot: Slot,
  bytes: Uint8Array,
  reason: keyof ServerCore["stats"]["refused"],
  detail: string = reason,
): void {
  const { stats } = server.core;
  stats.outcomes[slot.outcome = "refused"]++;
  stats.refused[reason]++;
  slot.reason = detail;
  serveConnection(server, slot, bytes);
}

/**
 * Reads the PROXY protocol header of a connection from a trusted peer, then
 * serves the client it names (the peer itself for a `LOCAL` header, the
 * balancer's own health check). A peer that is not trusted, and a header
 * that is missing, malformed, too long or late, are refused without a
 * greeting (no refuse message: the peer is a balancer, not a client).
 */
async function acceptProxied(
  server: ConnectionContext,
  slot: Slot,
): Promise<void> {
  const peer = slot.conn.remoteAddr;
  if (!isFrom(peer, server.proxy!)) {
    return refuse(server, slot, EMPTY, "proxy_untrusted");
  }
  let problem: string | undefined;
  try {
    const header = await readProxyHeader(slot.conn);
    // A datagram client on a stream connection is no client this server
    // has: refused, so that no rule is ever asked about another kind.
    if (header.source && header.source.transport !== "tcp") {
      problem = "proxy_unsupported";
    } else {
      if (header.command === "proxy") slot.client = header.source;
      // TLS behind the balancer starts now, on the same connection, after
      // the header that came in clear (HAProxy's send-proxy).
      const tls = startDeferredTls(slot.conn);
      if (tls) slot.conn = await tls;
    }
  } catch (error) {
    problem = error instanceof ProxyProtocolError
      ? `proxy_${error.reason}`
      : slot.list
      ? "proxy_error"
      : "proxy_timeout";
  }
  // Its deadline may have passed as the header came: nothing to serve.
  problem ??= server.core.table.established(slot, isTlsConnection(slot.conn))
    ? undefined
    : "proxy_timeout";
  if (problem) return refuse(server, slot, EMPTY, "proxy_header", problem);
  admitAndServe(server, slot, slot.client ?? peer, slot.client && peer);
}

/**
 * Admits or refuses the client at `remoteAddr` (the peer, or the client a
 * PROXY header named, with the balancer as `peerAddr`), makes its greeting
 * and serves it.
 */
function admitAndServe(
  server: ConnectionContext,
  slot: Slot,
  remoteAddr: Deno.Addr,
  peerAddr?: Deno.Addr,
): void {
  const { core, admission } = server;
  const conn = slot.conn;
  // Every client with an address meets the rules; only a Unix socket's
  // peer has none.
  const host = admission && "hostname" in remoteAddr
    ? remoteAddr.hostname
    : undefined;
  const refused = host !== undefined &&
    admission!.admit(host, performance.now());
  if (refused) return refuse(server, slot, server.refuseMessage, refused);
  try {
    // The mask is applied only when someone is told.
    server.onConnection?.(
      maskAddress(server.mask, remoteAddr),
      conn.localAddr,
      peerAddr,
    );
  } catch {
    // A failing observer must not stop the server.
  }
  const greeting = server.greeting;
  let bytes = greeting as Uint8Array;
  if (typeof greeting === "function") {
    try {
      bytes = greeting({
        remoteAddr: netAddr(remoteAddr),
        localAddr: netAddr(conn.localAddr),
        count: core.stats.accepted,
      });
      if (!(bytes instanceof Uint8Array)) throw new TypeError("Not bytes");
    } catch {
      // A greeting that cannot be made is an error, not an empty greeting.
      core.stats.outcomes[slot.outcome = "error"]++;
      slot.reason = "template";
      bytes = EMPTY;
    }
  }
  slot.admission = admission;
  slot.host = host;
  if (server.tarpit && !slot.outcome) {
    // Held for as long as the tarpit likes: no greeting's deadline.
    core.table.unbound(slot);
    server.tarpit.hold(slot, bytes);
    return;
  }
  serveConnection(server, slot, bytes);
}

/**
 * Writes `bytes`, then lingers; ends by releasing the slot (and the per-IP
 * place, when it holds one) exactly once, whatever happens. A slot whose
 * outcome is already decided (and counted: a refused client, a failed
 * template) is only sent its bytes and closed, without lingering, so it
 * cannot hold its place for long.
 */
async function serveConnection(
  server: ConnectionContext,
  slot: Slot,
  bytes: Uint8Array,
): Promise<void> {
  const { core, sensor } = server;
  const { stats, table } = core;
  const conn = slot.conn;
  const decided = slot.outcome !== undefined;
  // Only an observer needs the duration.
  const observed = server.onClose !== undefined || server.onEnded !== undefined;
  const start = observed ? performance.now() : 0;
  core.inFlight++;
  let written = 0;
  const sensing = sensor && !decided ? new Sensing(sensor) : undefined;
  try {
    if (sensing && sensor!.pause > 0) {
      if (await sensing.pause(table, conn) && !sensor!.greetEarly) {
        stats.outcomes[slot.outcome = "refused"]++;
        stats.refused[slot.reason = "early_talker"]++;
        bytes = server.refuseMessage;
      }
    }
    while (written < bytes.length) {
      written += await conn.write(
        written === 0 ? bytes : bytes.subarray(written),
      );
    }
    if (!slot.outcome) stats.outcomes[slot.outcome = "greeted"]++;
    if (!decided && table.lingers && written > 0 && slot.list) {
      await conn.closeWrite();
      if (table.linger(slot)) {
        if (sensing) await sensing.linger(conn, scratch);
        else {
          while (await conn.read(scratch) !== null) {
            // Discard what the client sends until it closes.
          }
        }
      }
    }
  } catch (error) {
    // Errors after the greeting was written (while lingering) change
    // nothing: the client has its greeting.
    if (!slot.outcome) {
      [slot.outcome, slot.reason] = failure(core, error);
      stats.outcomes[slot.outcome]++;
    }
  } finally {
    stats.bytesWritten += written;
    sensing?.count(stats);
    if (slot.host !== undefined) slot.admission!.release(slot.host);
    table.release(slot);
  }
  if (observed) {
    const duration = performance.now() - start;
    try {
      server.onEnded?.(duration, undefined);
      server.onClose?.(record(server, slot, {
        bytesWritten: written,
        greetingLength: bytes.length,
        duration,
        held: undefined,
      }, sensing));
    } catch {
      // A failing observer must not stop the server.
    }
  }
  core.handled();
}

/**
 * How one connection ended, as its observers are told, beside the outcome
 * and reason of its slot: `duration` in ms, and in tarpit mode how long it
 * was `held`, in ms.
 */
type Ending = Pick<
  ConnectionRecord,
  "bytesWritten" | "greetingLength" | "duration" | "held"
>;

/**
 * The record of a connection that ended (its slot's outcome set), for
 * `onClose`.
 */
export function record(
  server: Pick<ConnectionContext, "mask">,
  slot: Slot,
  end: Ending,
  sensing?: Sensing,
): ConnectionRecord {
  const conn = slot.conn;
  const record: ConnectionRecord = {
    remoteAddr: maskAddress(server.mask, slot.client ?? conn.remoteAddr),
    localAddr: conn.localAddr,
    outcome: slot.outcome!,
    reason: slot.reason,
    bytesWritten: end.bytesWritten,
    greetingLength: end.greetingLength,
    startTime: Date.now() - end.duration,
    duration: end.duration,
  };
  if (slot.client) record.peerAddr = conn.remoteAddr;
  if (end.held !== undefined) record.held = end.held;
  sensing?.annotate(record);
  return record;
}
