/**
 * TLS served over our own TCP accept, so that closing a connection that is
 * still in its handshake really frees its socket.
 *
 * Why not `Deno.listenTls`: in Deno 2.9.6 a `TlsConn` closed before its
 * handshake finished keeps its socket and descriptor open for as long as the
 * client does (200 stalled clients, closed by us: 200 descriptors still open).
 * Why not a `node:tls` server: it accepts on its own, without limit, so the
 * server could not take a place before each accept; and its
 * `handshakeTimeout` closes nothing in Deno 2.9.6.
 *
 * Here `Deno.listen` accepts exactly one TCP connection per `accept()`, and
 * `node:tls` runs the TLS on top of it through a small stream. `close()`
 * closes the TCP connection itself, which frees the descriptor whatever state
 * the TLS is in.
 *
 * @module
 */

import { type Acceptor, closeQuietly, type Conn } from "./connection_table.ts";
import type { SecureContext } from "node:tls";

type Engine = typeof import("./tls_engine.ts");
let engine: Promise<Engine> | undefined;
let loaded: Engine | undefined;

/** node's TLS, loaded once, on first use. */
const loadEngine = () =>
  engine ??= import("./tls_engine.ts").then((module) => loaded = module);

/**
 * Checks that `cert` is a PEM certificate and `key` its PEM private key,
 * with node's crypto: `createSecureContext` in Deno takes anything and the
 * error would come at every handshake.
 *
 * @throws {TypeError} When the certificate or the key cannot be read.
 * @throws {RangeError} When the key is not the certificate's.
 */
export const checkCertificateAndKey = async (
  cert: string,
  key: string,
): Promise<void> => void (await loadEngine()).secureContext(cert, key);

// Every connection a TLS listener gave out, until it is collected, with
// the TLS start of each one a deferred listener gave out.
const tlsStarts = new WeakMap<Conn, (() => Promise<Conn>) | undefined>();

/** True for a connection a TLS listener accepted (deferred or not). */
export const isTlsConnection = (conn: Conn): boolean => tlsStarts.has(conn);

/**
 * Starts TLS on a connection that a `deferred` listener accepted, once what
 * came before the handshake has been read; returns undefined for any other
 * connection. The TCP connection then belongs to the TLS one.
 */
export const startDeferredTls = (conn: Conn): Promise<Conn> | undefined =>
  tlsStarts.get(conn)?.();

/**
 * What {@linkcode serveTlsOn} returns: a `Deno.Listener` of TLS clients.
 * A client's connection rejects every call after `close()` with
 * `Deno.errors.BadResource`, one pending at `close()` with
 * `Deno.errors.Interrupted`, and a failed handshake or a reset with the TLS
 * or network error.
 */
export type TlsListener = ReturnType<typeof serveTlsOn>;

/**
 * Serves TLS with a pair's {@linkcode contextOf} on an open TCP listener: a
 * `deferred` one hands out the plain TCP connection and starts TLS only
 * when {@linkcode startDeferredTls} is called on it, for what comes in
 * clear before the handshake (a PROXY protocol header).
 *
 * @example Greet one TLS client
 * ```ts ignore
 * const context = contextOf(cert, key);
 * const listener = serveTlsOn(Deno.listen({ port: 8443 }), context);
 * const conn = await listener.accept();
 * await conn.write(new TextEncoder().encode("Connection Established\r\n"));
 * await conn.closeWrite();
 * conn.close();
 * ```
 */
export function serveTlsOn(
  tcp: Acceptor,
  context: Promise<SecureContext>,
  deferred = false,
) {
  /** The context to serve with; a bad pair closes the listener for good. */
  const current = () =>
    context.catch((cause) => {
      closeQuietly(tcp); // Or closed by another accept already.
      const message = `Cannot serve TLS: ${(cause as Error).message}`;
      throw new Deno.errors.BadResource(message, { cause });
    });
  return {
    /** The address listened on; its port is the real one when 0 was asked. */
    addr: tcp.addr as Deno.NetAddr,
    /**
     * Serves new connections with another certificate and key (a renewed
     * certificate); connections already accepted keep theirs. Once node's
     * TLS is loaded, the pair is checked in full now.
     *
     * @throws {TypeError} When the certificate or the key cannot be read.
     * @throws {RangeError} When the key is not the certificate's. Nothing
     * changes then.
     */
    setCertificate(cert: string, key: string): void {
      context = loaded
        ? Promise.resolve(loaded.secureContext(cert, key))
        : contextOf(cert, key);
    },
    /**
     * Accepts exactly one TCP connection and starts its handshake, without
     * waiting for it. Errors of the TCP accept (such as one whose `code` is
     * "EMFILE") reach the caller unchanged; after `close()` it rejects with
     * `Deno.errors.BadResource`.
     */
    async accept(): Promise<Conn> {
      await current();
      const conn = await tcp.accept();
      // The certificate of when the handshake starts: a reload while this
      // accept waited counts for its client.
      const start = async () => {
        const tls = loaded!.startTls(conn, await current());
        tlsStarts.set(tls, undefined);
        return tls;
      };
      if (deferred) {
        tlsStarts.set(conn, start);
        return conn;
      }
      try {
        return await start();
      } catch (error) {
        conn.close();
        throw error;
      }
    },
    close: (): void => tcp.close(),
  };
}

/**
 * The secure context of a pair, checked in full once node's TLS is loaded;
 * a bad pair is reported by the `accept()` of {@linkcode serveTlsOn}.
 *
 * @throws {TypeError} When the certificate or the key is not PEM of its kind.
 */
export function contextOf(cert: string, key: string): Promise<SecureContext> {
  // What can be told without node: both look like PEM of the right kind.
  if (!/-----BEGIN CERTIFICATE-----/.test(cert)) {
    throw new TypeError("The TLS certificate is not a PEM certificate");
  }
  if (!/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(key)) {
    throw new TypeError("The TLS key is not a PEM private key");
  }
  const context = loadEngine().then((tls) => tls.secureContext(cert, key));
  context.catch(() => {}); // Reported by accept().
  return context;
}
