import type { Admission } from "./admission.ts";
import type { ConnectionTable, Slot } from "./connection_table.ts";
import type {
  ConnectionRecord,
  SensorOptions,
  ServeGreetingOptions,
} from "./options.ts";
import { parseIp } from "../net/ip.ts";
import type { IpSet } from "../net/ip_set.ts";
import { ProxyProtocolError, readProxyHeader } from "../net/proxy_protocol.ts";
import { isTlsConnection, startDeferredTls } from "./tls_listener.ts";
import type { ConnectionOutcome, ServerStats } from "./stats.ts";
import type { GreetingSource } from "../greeting/template.ts";
import { Sensing } from "./sensor.ts";
import { type AddressMask, maskAddress } from "../net/address_privacy.ts";
import type { Tarpit } from "./tarpit.ts";

/** What the connections share with the server that accepted them. */
export interface ConnectionContext {
  readonly stats: ServerStats;
  readonly table: ConnectionTable;
  /** Who may connect; replaced whole by a reload. */
  admission: Admission | undefined;
  /** What clients are sent; replaced by a reload. */
  greeting: GreetingSource;
  /** What refused clients are sent; replaced by a reload. */
  refuseMessage: Uint8Array;
  readonly linger: number;
  /** True from the start of shutdown. */
  closing: boolean;
  readonly onConnection: ServeGreetingOptions["onConnection"];
  /** The PROXY protocol's trusted peers, when a header is expected. */
  readonly proxy: { from: IpSet } | undefined;
  readonly onClose: ((record: ConnectionRecord) => void) | undefined;
  /** The health probe's source port while one is in flight, or 0. */
  readonly selfProbe: Int32Array | undefined;
  /**
   * In tarpit mode, what holds admitted clients instead of greeting them
   * (tarpit.ts; set at start).
   */
  tarpit: Pick<Tarpit, "hold"> | undefined;
  /** Connections whose outcome is not counted yet. */
  inFlight: number;
  /** The greeting pause and capture, when asked for. */
  readonly sensor: SensorOptions | undefined;
  /** How observers see a client's address; replaced by a reload. */
  mask: AddressMask | undefined;
  /** Called when `inFlight` drops to 0. */
  settled(): void;
}

/** The bytes of a refused client's greeting when there is no refuse message. */
export const EMPTY: Uint8Array = new Uint8Array(0);
// Discarded bytes a lingering client sends land here; shared, never read.
const scratch = new Uint8Array(16 * 1024);

function isReset(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected;
}

function isClosedByUs(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  return error instanceof Error ? error.name : "unknown";
}

/**
 * How a failed read or write ended a connection: the client reset or
 * closed, it was closed here (by its deadline, or by shutdown), or another
 * error (with its code as the reason).
 */
export function failure(
  server: { readonly closing: boolean },
  error: unknown,
): [ConnectionOutcome, string | undefined] {
  if (isReset(error)) return ["reset", undefined];
  if (isClosedByUs(error)) {
    return [server.closing ? "aborted" : "timed_out", undefined];
  }
  return ["error", errorCode(error)];
}

/**
 * The address as a {@linkcode Deno.NetAddr}, for greeting templates: a Unix
 * socket's address becomes its path as the host name (empty for a client,
 * whose socket has none), with port 0.
 */
function netAddr(addr: Deno.Addr): Deno.NetAddr {
  if (addr.transport === "tcp" || addr.transport === "udp") return addr;
  return {
    transport: "tcp",
    hostname: ("path" in addr ? addr.path : null) ?? "",
    port: 0,
  };
}

/**
 * Takes one accepted connection: admits or refuses it, makes its greeting,
 * and starts serving it. It already holds a place; the table gives the place
 * back when the connection is released.
 */
export function acceptConnection(
  server: ConnectionContext,
  conn: Deno.Conn,
): void {
  const probe = server.selfProbe;
  if (probe !== undefined && probe[0] !== 0 && isSelfProbe(conn, probe[0])) {
    // Not a client: off the queue, closed, and told so.
    Atomics.store(probe, 0, 0);
    server.table.release(server.table.add(conn));
    return;
  }
  server.stats.accepted++;
  if (server.proxy) {
    const slot = server.table.addHandshaking(conn);
    // Nothing in it should throw; if it ever does, the slot is still freed.
    acceptProxied(server, slot, performance.now()).catch(() =>
      server.table.release(slot)
    );
    return;
  }
  const { table } = server;
  // Only a TLS connection has the greeting's deadline (its handshake).
  const greeting = table.boundsGreeting && isTlsConnection(conn);
  admitAndServe(server, table.add(conn, greeting), conn.remoteAddr);
}

/**
 * True for the health probe: from `port`, and from the very address it
 * reached (the probe binds it), which only this host can be.
 */
function isSelfProbe(conn: Deno.Conn, port: number): boolean {
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

/**
 * Reads the PROXY protocol header of a connection from a trusted peer, then
 * serves the client it names (the peer itself for a `LOCAL` header, the
 * balancer's own health check). A peer that is not trusted, and a header
 * that is missing, malformed, too long or late, are refused without a
 * greeting.
 */
async function acceptProxied(
  server: ConnectionContext,
  slot: Slot,
  acceptedAt: number,
): Promise<void> {
  const { stats, table } = server;
  const peer = slot.conn.remoteAddr;
  let refused: "proxy_untrusted" | "proxy_header" | undefined;
  let reason: string | undefined;
  if (!isFrom(peer, server.proxy!.from)) {
    refused = "proxy_untrusted";
  } else {
    try {
      const header = await readProxyHeader(slot.conn);
      if (header.source && header.source.transport !== "tcp") {
        // A datagram client on a stream connection is no client this server
        // has: refused, so that no rule is ever asked about another kind.
        refused = "proxy_header";
        reason = "proxy_unsupported";
      } else if (header.command === "proxy" && header.source) {
        slot.client = header.source;
      }
      // TLS behind the balancer starts now, on the same connection, after
      // the header that came in clear (HAProxy's send-proxy).
      const tls = refused ? undefined : startDeferredTls(slot.conn);
      if (tls) slot.conn = (await tls) as unknown as Deno.Conn;
    } catch (error) {
      refused = "proxy_header";
      reason = error instanceof ProxyProtocolError
        ? `proxy_${error.reason}`
        : slot.list
        ? "proxy_error"
        : "proxy_timeout";
    }
  }
  if (refused) {
    stats.outcomes.refused++;
    stats.refused[refused]++;
    // No refuse message: the peer is a balancer, not a client to talk to.
    serveConnection(server, slot, EMPTY, "refused", reason ?? refused);
    return;
  }
  if (!table.established(slot, acceptedAt, isTlsConnection(slot.conn))) {
    // Its deadline passed as the header came: nothing to serve.
    stats.outcomes.refused++;
    stats.refused.proxy_header++;
    serveConnection(server, slot, EMPTY, "refused", "proxy_timeout");
    return;
  }
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
  const { stats, admission } = server;
  const conn = slot.conn;
  // Every client with an address meets the rules; only a Unix socket's
  // peer has none.
  const admissionHost = admission && "hostname" in remoteAddr
    ? remoteAddr.hostname
    : undefined;
  if (admissionHost !== undefined) {
    const refused = admission!.admit(admissionHost, performance.now());
    if (refused) {
      stats.outcomes.refused++;
      stats.refused[refused]++;
      serveConnection(server, slot, server.refuseMessage, "refused", refused);
      return;
    }
  }
  if (server.onConnection) {
    try {
      server.onConnection(
        maskAddress(server.mask, remoteAddr),
        conn.localAddr,
        peerAddr,
      );
    } catch {
      // A failing observer must not stop the server.
    }
  }
  const greeting = server.greeting;
  let bytes: Uint8Array;
  if (typeof greeting !== "function") {
    bytes = greeting;
  } else {
    try {
      bytes = greeting({
        remoteAddr: netAddr(remoteAddr),
        localAddr: netAddr(conn.localAddr),
        count: stats.accepted,
      });
      if (!(bytes instanceof Uint8Array)) throw new TypeError("Not bytes");
    } catch {
      // A greeting that cannot be made is an error, not an empty greeting.
      stats.outcomes.error++;
      serveConnection(
        server,
        slot,
        EMPTY,
        "error",
        "template",
        admission,
        admissionHost,
      );
      return;
    }
  }
  if (server.tarpit) {
    // Held for as long as the tarpit likes: no greeting's deadline.
    server.table.unbound(slot);
    server.tarpit.hold(slot, bytes, admission, admissionHost);
    return;
  }
  serveConnection(
    server,
    slot,
    bytes,
    undefined,
    undefined,
    admission,
    admissionHost,
  );
}

/**
 * Writes `bytes`, then lingers; ends by releasing the slot (and the per-IP
 * place in `admission`, when `admittedHost` is given) exactly once,
 * whatever happens. The admission is the one that admitted the client, even
 * if a reload has replaced it since.
 * `decided` is an outcome already counted (a refused client, a failed
 * template): such a client is only sent `bytes` and closed, without
 * lingering, so it cannot hold its place for long.
 */
async function serveConnection(
  server: ConnectionContext,
  slot: Slot,
  bytes: Uint8Array,
  decided: ConnectionOutcome | undefined,
  reason: string | undefined,
  admission?: Admission,
  admittedHost?: string,
): Promise<void> {
  const { stats, table } = server;
  const conn = slot.conn;
  // Only a record needs the duration.
  const start = server.onClose ? performance.now() : 0;
  server.inFlight++;
  let outcome = decided;
  let written = 0;
  const sensing = server.sensor && !decided
    ? new Sensing(server.sensor)
    : undefined;
  try {
    if (sensing && server.sensor!.pause > 0) {
      if (
        await sensing.pause(table, conn) && !server.sensor!.greetEarly
      ) {
        stats.outcomes[outcome = decided = "refused"]++;
        stats.refused[reason = "early_talker"]++;
        bytes = server.refuseMessage;
      }
    }
    while (written < bytes.length) {
      written += await conn.write(
        written === 0 ? bytes : bytes.subarray(written),
      );
    }
    if (!outcome) stats.outcomes[outcome = "greeted"]++;
    if (server.linger > 0 && !decided && written > 0 && slot.list) {
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
    if (!outcome) {
      [outcome, reason] = failure(server, error);
      stats.outcomes[outcome]++;
    }
  } finally {
    stats.bytesWritten += written;
    sensing?.count(stats);
    if (admittedHost !== undefined) admission!.release(admittedHost);
    table.release(slot);
  }
  if (server.onClose) {
    const duration = performance.now() - start;
    try {
      const record: ConnectionRecord = {
        remoteAddr: maskAddress(server.mask, slot.client ?? conn.remoteAddr),
        ...(slot.client ? { peerAddr: conn.remoteAddr } : {}),
        localAddr: conn.localAddr,
        outcome: outcome!,
        reason,
        bytesWritten: written,
        greetingLength: bytes.length,
        startTime: Date.now() - duration,
        duration,
      };
      sensing?.annotate(record);
      server.onClose(record);
    } catch {
      // A failing observer must not stop the server.
    }
  }
  if (--server.inFlight === 0) server.settled();
}
