/**
 * The part of {@linkcode listenTls} that needs node's TLS: loaded on first
 * use only, since loading node's modules costs a server without TLS about
 * 15 ms of start-up and 8 MB of memory.
 *
 * @module
 */
import { closeQuietly, type Conn, writeAll } from "./connection_table.ts";
import { NodeConn } from "./node_conn.ts";
import { Buffer } from "node:buffer";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { Duplex } from "node:stream";
import { createSecureContext, type SecureContext, TLSSocket } from "node:tls";

/**
 * The secure context of `cert`, a PEM certificate, and `key`, its PEM
 * private key: `createSecureContext` in Deno takes anything and the error
 * would come at every handshake; this reads both up front instead.
 *
 * @throws {TypeError} When the certificate or the key cannot be read.
 * @throws {RangeError} When the key is not the certificate's.
 */
export function secureContext(cert: string, key: string): SecureContext {
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
  return createSecureContext({ cert, key });
}

/**
 * Starts TLS on an accepted TCP connection; the handshake runs on its own.
 * Reads and writes wait for it; `close()` frees the descriptor whatever the
 * TLS state.
 */
export function startTls(tcp: Conn, secureContext: SecureContext): Conn {
  const stream = new TcpStream(tcp);
  // The handshake starts now; the socket stays paused until read.
  const tls = new TLSSocket(stream, { isServer: true, secureContext });
  stream.tls = tls;
  return new NodeConn(tls, tcp.remoteAddr, tcp.localAddr, stream);
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
  if (this.tls?.getProtocol() !== null) return;
  const why = "The client closed before the TLS handshake finished";
  this.tls.destroy(new Deno.errors.UnexpectedEof(why));
}

/** How a stream tells node that a write, its end or its teardown is done. */
type Done = (error?: Error | null) => void;

/** The TCP connection as the stream node:tls reads and writes. */
class TcpStream extends Duplex {
  /** The TLS socket on top, once made. */
  tls: TLSSocket | undefined;

  constructor(readonly tcp: Conn) {
    super();
    this.on("error", ignore).once("end", endedInHandshake);
  }

  override _read() {
    const chunk = Buffer.allocUnsafe(READ_SIZE);
    this.tcp.read(chunk).then(
      (n) => this.push(n === null ? null : chunk.subarray(0, n)),
      (error) => this.destroy(error),
    );
  }

  override _write(chunk: Buffer, _encoding: string, done: Done) {
    writeAll(this.tcp, chunk).then(() => done(), done);
  }

  // node:tls ends its side with close_notify but does not end this stream;
  // NodeConn.closeWrite does, once the alert is written.
  override _final(done: Done) {
    this.tcp.closeWrite().then(() => done(), done);
  }

  override _destroy(error: Error | null, done: Done) {
    closeQuietly(this.tcp);
    done(error);
  }
}
