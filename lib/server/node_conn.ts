/**
 * The connections of sockets Deno cannot open itself: those passed by a
 * service manager (socket activation) or inherited on stdin (inetd mode).
 * node:net opens them; {@linkcode adoptSocket} turns each into the members of
 * `Deno.Conn` a greeting uses.
 *
 * Only types come from node here: the module is loaded by whoever made the
 * socket, and only then.
 *
 * @module
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Conn } from "./connection_table.ts";

/**
 * The runtime's resource operations, which `Deno.TcpConn` itself uses. They
 * are internal to Deno (`Deno[Deno.internal].core`), as is the handle's
 * `takeStream`: both are checked for, and without them (another Deno than
 * the pinned 2.9.6) every socket stays node's.
 */
interface ResourceOps {
  read(rid: number, p: Uint8Array): Promise<number>;
  write(rid: number, p: Uint8Array): Promise<number>;
  shutdown(rid: number): Promise<void>;
  close(rid: number): void;
}

/** An accepted TCP handle of node's (Deno 2.9's `TCPWrap`). */
export interface TcpHandle {
  getpeername(out: { address?: string; port?: number }): number;
  getsockname(out: { address?: string; port?: number }): number;
  /** Gives the stream to the runtime: its resource id. */
  takeStream(): number;
  close(): void;
}

// The runtime's resource operations, looked for once (null without them).
const core: Partial<ResourceOps> | undefined = Reflect.get(
  Deno,
  Reflect.get(Deno, "internal"),
)?.core;
const names = ["read", "write", "shutdown", "close"] as const;
const ops = names.every((name) => typeof core?.[name] === "function")
  ? core as ResourceOps
  : null;

/** True if TCP handles can be handed to the runtime here (Deno 2.9). */
export const canAdoptHandles = (): boolean => ops !== null;

/**
 * An accepted TCP handle as a connection, served by the runtime as
 * `Deno.TcpConn` is (see {@linkcode adoptSocket}); `remote` and `local`
 * replace what the handle says, when given. The handle is closed, or
 * `socket`, its node socket, destroyed. Needs {@linkcode canAdoptHandles}.
 */
export function adoptHandle(
  handle: TcpHandle,
  remote?: Deno.Addr,
  local?: Deno.Addr,
  socket?: Socket,
): Conn {
  const peer: { address?: string; port?: number } = {};
  const self: typeof peer = {};
  handle.getpeername(peer);
  handle.getsockname(self);
  const rid = handle.takeStream();
  // Node's socket is done with: destroyed, it lets go of its handle (kept,
  // each would hold some 3 KB of heap for good).
  if (socket) socket.destroy();
  else handle.close();
  remote ??= addressOf(peer.address, peer.port);
  local ??= addressOf(self.address, self.port);
  return new ResourceConn(rid, remote, local);
}

/**
 * The socket as a connection. A TCP socket is handed over to the runtime
 * (`takeStream`) and served exactly as `Deno.TcpConn` is, by resource id:
 * nothing of node stays on its path. (node's own stream in Deno 2.9.6 fails
 * a write made just after accept with EPIPE when the client has already
 * ended its side, as many clients do.) Other sockets (Unix) stay node's,
 * through {@linkcode NodeConn}.
 *
 * `remoteAddr` and `localAddr` replace what the socket says, when given.
 */
export function adoptSocket(
  socket: Socket,
  remoteAddr?: Deno.Addr,
  localAddr?: Deno.Addr,
): Conn {
  const handle: Partial<TcpHandle> | undefined = Reflect.get(socket, "_handle");
  return canAdoptHandles() && typeof handle?.takeStream === "function"
    ? adoptHandle(handle as TcpHandle, remoteAddr, localAddr, socket)
    : new NodeConn(socket, remoteAddr, localAddr);
}

/** A stream the runtime holds, by resource id: what `Deno.TcpConn` does. */
class ResourceConn {
  constructor(
    private readonly rid: number,
    readonly remoteAddr: Deno.Addr,
    readonly localAddr: Deno.Addr,
  ) {}

  async read(p: Uint8Array): Promise<number | null> {
    return p.length === 0 ? 0 : await ops!.read(this.rid, p) || null;
  }

  write(p: Uint8Array): Promise<number> {
    return ops!.write(this.rid, p);
  }

  closeWrite(): Promise<void> {
    return ops!.shutdown(this.rid);
  }

  close(): void {
    ops!.close(this.rid);
  }
}

/** The options of a node socket {@linkcode NodeConn} takes (see there). */
export const HALF_OPEN = {
  allowHalfOpen: true,
  readable: true,
  writable: true,
};

/**
 * A node socket (TLS included) as a connection. Errors are Deno's: after
 * `close()` a call rejects with `Deno.errors.BadResource`, one pending at
 * `close()` with `Deno.errors.Interrupted`; a reset is
 * `Deno.errors.ConnectionReset`, a write to a closed peer
 * `Deno.errors.BrokenPipe`; a socket that failed rejects with its error.
 */
export class NodeConn {
  #closed = false;

  /**
   * Takes a socket made with `allowHalfOpen` (its write side ends only at
   * `closeWrite`) and, to read nothing until asked, `pauseOnConnect`.
   * `remoteAddr` and `localAddr` replace what the socket says, when given;
   * under a TLS socket, `below` is the stream it runs on, ended and closed
   * after it.
   */
  constructor(
    private readonly socket: Socket,
    private remote?: Deno.Addr,
    private local?: Deno.Addr,
    private readonly below?: Duplex,
  ) {
    socket.on("error", ignore);
  }

  /** The peer, read from the socket on first use. */
  get remoteAddr(): Deno.Addr {
    const { socket } = this;
    return this.remote ??= addressOf(socket.remoteAddress, socket.remotePort);
  }

  /**
   * This end, read from the socket on first use (only an observer asks:
   * nothing is made for it otherwise).
   */
  get localAddr(): Deno.Addr {
    const { socket } = this;
    return this.local ??= addressOf(socket.localAddress, socket.localPort);
  }

  /** Hands all of `p` to the socket; resolves to its length once written. */
  write(p: Uint8Array): Promise<number> {
    return this.#whileOpen<number>((socket, done) => {
      if (socket.writableEnded) return done(new Deno.errors.BrokenPipe(ENDED));
      socket.write(p, (error) => done(error, p.length));
    });
  }

  /**
   * Ends the write side once earlier writes are out: a TLS socket sends its
   * close_notify alert, then the stream below it ends (FIN).
   */
  closeWrite(): Promise<void> {
    return this.#whileOpen<void>((socket, done) => {
      socket.end(() => this.below ? this.below.end(done) : done());
    });
  }

  /**
   * Runs `start` on the open socket, which calls `done` with an error or
   * the value; the promise rejects if the socket closes first, with why it
   * closed.
   */
  #whileOpen<T>(start: (socket: Socket, done: Done<T>) => void): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    const socket = this.socket;
    if (socket.destroyed) return Promise.reject(this.#failure());
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const onClose = () => reject(this.#failure());
    socket.once("close", onClose);
    start(socket, (error, value) => {
      socket.off("close", onClose);
      if (error) reject(this.#failure(error));
      else resolve(value as T);
    });
    return promise;
  }

  /** Reads into `p`: the count, or null once the peer has ended. */
  async read(p: Uint8Array): Promise<number | null> {
    if (this.#closed) throw closedError();
    const socket = this.socket;
    while (true) {
      const chunk: Uint8Array | null = socket.read();
      if (chunk !== null) {
        const n = Math.min(p.length, chunk.length);
        p.set(chunk.subarray(0, n));
        if (n < chunk.length) socket.unshift(chunk.subarray(n));
        return n;
      }
      if (socket.readableEnded) return null;
      if (socket.destroyed) {
        if (this.#closed || socket.errored) throw this.#failure();
        return null;
      }
      await readableOrClosed(socket);
    }
  }

  /**
   * Closes at once, in any state (a TLS handshake included): the
   * descriptor is freed now. Closing twice does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.destroy();
    this.below?.destroy();
  }

  /**
   * Why a call cannot finish: closed here, the reason the socket failed
   * (rather than node's "write ECANCELED" for the writes it dropped), else
   * `error`, else a closed connection.
   */
  #failure(error?: Error): Error {
    if (this.#closed) {
      return new Deno.errors.Interrupted("The connection was closed");
    }
    const cause = this.socket.errored ?? error;
    return cause
      ? denoError(cause)
      : new Deno.errors.BrokenPipe("The connection closed");
  }
}

/** Called with an error, or with the value. */
type Done<T> = (error?: Error | null, value?: T) => void;

function readableOrClosed(socket: Socket): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  const wake = () => {
    socket.off("readable", wake).off("end", wake).off("close", wake);
    resolve();
  };
  socket.on("readable", wake).on("end", wake).on("close", wake);
  return promise;
}

// Errors are seen as a rejected call; a listener must exist so that they
// are not thrown.
function ignore() {}

/**
 * A node address as Deno's: TCP when there is a port, else a Unix socket's
 * (whose peer has no path).
 */
export function addressOf(
  hostname: string | undefined,
  port: number | undefined,
): Deno.Addr {
  return hostname !== undefined && port !== undefined
    ? { transport: "tcp", hostname, port }
    : { transport: "unix", path: "" };
}

const ERRORS: Record<string, new (message: string) => Error> = {
  ECONNRESET: Deno.errors.ConnectionReset,
  EPIPE: Deno.errors.BrokenPipe,
  ECONNABORTED: Deno.errors.ConnectionAborted,
  ENOTCONN: Deno.errors.NotConnected,
  ETIMEDOUT: Deno.errors.TimedOut,
};

/** node's error as the Deno error of the same errno, keeping its code. */
function denoError(error: Error): Error {
  const code = (error as { code?: unknown }).code;
  const Kind = typeof code === "string" ? ERRORS[code] : undefined;
  return Kind ? Object.assign(new Kind(error.message), { code }) : error;
}

const ENDED = "The connection's write side is closed";

/** The error of a call on a closed connection (or `what` else). */
export const closedError = (what = "connection"): Error =>
  new Deno.errors.BadResource(`The ${what} is closed`);
