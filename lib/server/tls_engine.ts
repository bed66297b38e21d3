/**
 * The part of {@linkcode listenTls} that needs node's TLS: loaded on first
 * use only, since loading node's modules costs a server without TLS about
 * 15 ms of start-up and 8 MB of memory.
 *
 * @module
 */
import type { Conn } from "./connection_table.ts";
import { Buffer } from "node:buffer";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { Duplex } from "node:stream";
import { createSecureContext, type SecureContext, TLSSocket } from "node:tls";
export type { SecureContext };

/**
 * One TLS client. A `Deno.TcpConn` has the same members, so code that serves
 * both can take either.
 *
 * Errors: after `close()`, every call rejects with `Deno.errors.BadResource`;
 * a read, write or closeWrite pending when `close()` is called rejects with
 * `Deno.errors.Interrupted`. A write after `closeWrite()` rejects with
 * `Deno.errors.BrokenPipe`. A failed handshake or a reset rejects with the
 * TLS or network error.
 */
export interface TlsConnection {
  /** The client's address. */
  readonly remoteAddr: Deno.Addr;
  /** The server's address of this connection. */
  readonly localAddr: Deno.Addr;
  /**
   * Reads decrypted bytes into `p`: their count, or null when the client has
   * ended. Waits for the handshake.
   */
  read(p: Uint8Array): Promise<number | null>;
  /**
   * Encrypts and sends all of `p`, resolving to its length once the bytes
   * are handed to the socket. Waits for the handshake.
   */
  write(p: Uint8Array): Promise<number>;
  /**
   * Sends the TLS close_notify alert, then ends the TCP write side (FIN).
   * Waits for the handshake and for earlier writes.
   */
  closeWrite(): Promise<void>;
  /**
   * Closes at once, in any state, handshake included: the descriptor is
   * freed now. Closing twice does nothing.
   */
  close(): void;
}

/**
 * Checks that `cert` is a PEM certificate and `key` its PEM private key:
 * `createSecureContext` in Deno takes anything and the error would come at
 * every handshake; this reads both up front instead.
 *
 * @throws {TypeError} When the certificate or the key cannot be read.
 * @throws {RangeError} When the key is not the certificate's.
 */
export function checkPair(cert: string, key: string): void {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (cause) {
    throw new TypeError("The TLS certificate is not a PEM certificate", {
      cause,
    });
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (cause) {
    throw new TypeError("The TLS key is not a PEM private key", { cause });
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new RangeError("The TLS key does not belong to the certificate");
  }
}

/** The secure context of a checked pair. */
export function secureContext(cert: string, key: string): SecureContext {
  checkPair(cert, key);
  return createSecureContext({ cert, key });
}

/** Starts TLS on an accepted TCP connection; the handshake runs on its own. */
export function startTls(
  tcp: Conn,
  context: SecureContext,
): TlsConnection {
  return new Connection(tcp, context);
}

/**
 * Each read allocates this much. Small, because a client that stalls its
 * handshake keeps one read pending for its whole life.
 */
const READ_SIZE = 4096;

// Stream errors are also seen as the socket's `errored`, or as a rejected
// call; a listener must exist so that they are not thrown.
function ignore() {}

/**
 * A client that ends its side before the handshake is done can never finish
 * it, and node:tls in Deno 2.9.6 then leaves writes pending for ever (no
 * error, no close): close it here, once node:tls has read all that came
 * before the end.
 */
function endedInHandshake(this: TcpStream) {
  if (this.tls?.getProtocol() === null) {
    this.tls.destroy(
      new Deno.errors.UnexpectedEof(
        "The client closed before the TLS handshake finished",
      ),
    );
  }
}

/** The TCP connection as the stream node:tls reads and writes. */
class TcpStream extends Duplex {
  readonly tcp: Conn;
  /** The TLS socket on top, once made. */
  tls: TLSSocket | undefined;

  constructor(tcp: Conn) {
    super();
    this.tcp = tcp;
    this.on("error", ignore).once("end", endedInHandshake);
  }

  override _read() {
    const chunk = Buffer.allocUnsafe(READ_SIZE);
    this.tcp.read(chunk).then(
      (n) => this.push(n === null ? null : chunk.subarray(0, n)),
      (error) => this.destroy(error),
    );
  }

  override _write(
    chunk: Buffer,
    _encoding: string,
    done: (error?: Error | null) => void,
  ) {
    writeAll(this.tcp, chunk).then(() => done(), done);
  }

  // node:tls ends its side with close_notify but does not end this stream;
  // Connection.closeWrite does, once the alert is written.
  override _final(done: (error?: Error | null) => void) {
    this.tcp.closeWrite().then(() => done(), done);
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void) {
    try {
      this.tcp.close();
    } catch {
      // Closed already by Connection.close.
    }
    done(error);
  }
}

async function writeAll(tcp: Conn, bytes: Uint8Array) {
  let written = 0;
  while (written < bytes.length) {
    written += await tcp.write(bytes.subarray(written));
  }
}

class Connection implements TlsConnection {
  readonly #stream: TcpStream;
  readonly #tls: TLSSocket;
  /** Decrypted bytes read but not yet returned (they did not fit). */
  #rest: Buffer | undefined;
  #closed = false;

  constructor(tcp: Conn, secureContext: SecureContext) {
    this.#stream = new TcpStream(tcp);
    // The handshake starts now; the socket stays paused until read.
    this.#tls = new TLSSocket(this.#stream, { isServer: true, secureContext });
    this.#tls.on("error", ignore);
    this.#stream.tls = this.#tls;
  }

  get remoteAddr(): Deno.Addr {
    return this.#stream.tcp.remoteAddr;
  }

  get localAddr(): Deno.Addr {
    return this.#stream.tcp.localAddr;
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (this.#closed) throw closedError();
    const tls = this.#tls;
    while (true) {
      const chunk: Buffer | null = this.#rest ?? tls.read();
      this.#rest = undefined;
      if (chunk !== null) {
        const n = Math.min(p.length, chunk.length);
        p.set(chunk.subarray(0, n));
        if (n < chunk.length) this.#rest = chunk.subarray(n);
        return n;
      }
      if (tls.readableEnded) return null;
      if (tls.destroyed) {
        if (this.#closed) throw interruptedError();
        if (tls.errored) throw tls.errored;
        return null;
      }
      await this.#readableOrClosed();
    }
  }

  #readableOrClosed(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    const tls = this.#tls;
    const wake = () => {
      tls.off("readable", wake).off("end", wake).off("close", wake);
      resolve();
    };
    tls.on("readable", wake).on("end", wake).on("close", wake);
    return promise;
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(closedError());
    if (this.#tls.destroyed) return Promise.reject(this.#endedError());
    if (this.#tls.writableEnded) {
      return Promise.reject(
        new Deno.errors.BrokenPipe("The connection's write side is closed"),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    const tls = this.#tls;
    const onClose = () => reject(this.#endedError());
    tls.once("close", onClose);
    tls.write(p, (error) => {
      tls.off("close", onClose);
      if (error) reject(this.#failure(error));
      else resolve(p.length);
    });
    return promise;
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    if (this.#tls.destroyed) return Promise.reject(this.#endedError());
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const tls = this.#tls;
    const stream = this.#stream;
    const onClose = () => reject(this.#endedError());
    tls.once("close", onClose);
    // The close_notify alert is written to the stream before the TLS socket
    // finishes; the stream then ends after it, which sends the FIN.
    tls.end((error?: Error | null) => {
      if (error) return reject(this.#failure(error));
      stream.end((error?: Error | null) => {
        tls.off("close", onClose);
        if (error) reject(this.#failure(error));
        else resolve();
      });
    });
    return promise;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#tls.destroy();
    // Directly, not through node:tls: the descriptor goes now, whatever the
    // TLS state.
    try {
      this.#stream.tcp.close();
    } catch {
      // Closed already, when the TLS socket closed its stream.
    }
  }

  /**
   * What a failed write or closeWrite rejects with: the reason the socket
   * failed rather than node's "write ECANCELED" for the writes it dropped.
   */
  #failure(error: Error): Error {
    return this.#closed ? interruptedError() : this.#tls.errored ?? error;
  }

  /** Why a pending write or closeWrite cannot finish: the socket closed. */
  #endedError(): Error {
    if (this.#closed) return interruptedError();
    return this.#tls.errored ??
      new Deno.errors.BrokenPipe("The connection closed");
  }
}

function closedError() {
  return new Deno.errors.BadResource("The connection is closed");
}

function interruptedError() {
  return new Deno.errors.Interrupted("The connection was closed");
}
