/**
 * Accepting on a listening socket greeter did not open: one a service
 * manager passed (systemd socket activation, from descriptor 3).
 *
 * `Deno.listen` cannot take a descriptor (denoland/deno#14006), but
 * node:net's `server.listen({ fd })` can. node's server would accept on its
 * own, as fast as clients come, past the connection cap and up to the
 * descriptor limit (where Deno 2.9.6 then stops accepting for good). So this
 * listener takes the server's handle over and hands out one connection per
 * `accept()`, as `Deno.Listener` does. The runtime accepts the batch waiting
 * when it looks and tells of it; told while nobody asks, it stops looking
 * until `listen` restarts it, once that batch is taken: at the cap, later
 * clients wait in the kernel's backlog. The handle's `onconnection`,
 * `accept` and `listen` are node's internals as Deno 2.9.6 has them (checked
 * for: without them, listening fails with a clear error). node:net is loaded
 * only here, on first use: a server without a passed socket never loads it.
 *
 * @module
 */
import type { Acceptor, Conn } from "./connection_table.ts";
import type * as Net from "node:net";
import {
  addressOf,
  adoptHandle,
  canAdoptHandles,
  NodeConn,
  type TcpHandle,
} from "./node_conn.ts";

interface Builtins {
  net: typeof Net;
  /** errno name of a negative libuv status, such as "EMFILE". */
  errorName(status: number): string;
  /** The status of an accept with nothing to accept. */
  eagain: number;
}

/** node's modules, loaded on first use (synchronously: listening is). */
let builtins: Builtins | undefined;
function loadBuiltins(): Builtins {
  if (builtins) return builtins;
  const process: { getBuiltinModule(id: string): unknown } = Reflect.get(
    globalThis,
    "process",
  );
  const util = process.getBuiltinModule("node:util") as {
    getSystemErrorName(status: number): string;
  };
  const os = process.getBuiltinModule("node:os") as {
    constants: { errno: { EAGAIN: number } };
  };
  return builtins = {
    net: process.getBuiltinModule("node:net") as typeof Net,
    errorName: (status) => util.getSystemErrorName(status),
    eagain: -os.constants.errno.EAGAIN,
  };
}

/** node's listening handle, as Deno 2.9.6 has it. */
interface ServerHandle {
  /** Told of each connection ready to accept (status 0) or of an error. */
  onconnection: ((status: number) => void) | null;
  /** Accepts one connection into `client`: 0, or a negative errno. */
  accept(client: unknown): number;
  /** (Re)starts watching for connections. */
  listen(backlog: number): number;
}

/** The kind of a handle to accept into (node's `constants.SOCKET`). */
const SOCKET = 0;

/**
 * Thrown when a descriptor is not a listening stream socket (a regular
 * file, a datagram or connected socket, a closed descriptor).
 */
export class DescriptorError extends TypeError {
  /** The descriptor. */
  readonly fd: number;
  /** Names the descriptor and what it should have been. */
  constructor(fd: number, cause?: unknown) {
    super("Not a listening TCP or Unix stream socket", { cause });
    this.name = "DescriptorError";
    this.fd = fd;
  }
}

/**
 * Listens on descriptor `fd`, which must be a listening (or bound) TCP or
 * Unix stream socket. Its `accept()` gives one connection, as the members
 * of `Deno.Conn` a greeting uses; it rejects with node's error (its `code`,
 * such as "EMFILE") when an accept failed, and with
 * `Deno.errors.BadResource` once closed. `close()` closes the descriptor,
 * and the connections waiting on it.
 *
 * @example Greet one client on the socket systemd passed
 * ```ts ignore
 * const listener = listenOnDescriptor(3);
 * const conn = await listener.accept();
 * await conn.write(new TextEncoder().encode("Connection Established\r\n"));
 * conn.close();
 * ```
 *
 * @throws {DescriptorError} When `fd` is not such a socket.
 */
export function listenOnDescriptor(
  fd: number,
  options: { backlog?: number } = {},
): Acceptor {
  const { net } = loadBuiltins();
  const server = net.createServer({ allowHalfOpen: true });
  let failed: unknown;
  server.once("error", (error) => failed = error);
  server.listen({ fd, backlog: options.backlog });
  // node opens the handle synchronously; its error is emitted a tick later.
  if (!server.listening) {
    server.close();
    throw new DescriptorError(fd, failed);
  }
  const handle: Partial<ServerHandle> | undefined = Reflect.get(
    server,
    "_handle",
  );
  if (
    !canAdoptHandles() || typeof handle?.accept !== "function" ||
    typeof handle.listen !== "function" || !("onconnection" in handle)
  ) {
    server.close();
    throw new TypeError(
      "This Deno cannot accept on a passed socket one connection at a " +
        "time (greeter needs Deno 2.9.6)",
    );
  }
  return new Listener(server, handle as ServerHandle, options.backlog ?? 511);
}

class Listener implements Acceptor {
  readonly addr: Deno.Addr;
  readonly #server: Net.Server;
  readonly #handle: ServerHandle;
  /** The class of the handle's connections: TCP, or Pipe (Unix). */
  readonly #Client: new (kind: number) => unknown;
  readonly #unix: boolean;
  readonly #backlog: number;
  #waiting: PromiseWithResolvers<Conn> | undefined;
  /** A failed accept the runtime reported while nobody waited. */
  #failure: Error | undefined;
  /**
   * The runtime stops watching once it has told of connections nobody
   * accepted at once; `listen` starts it again when they are taken.
   */
  #missed = false;
  #closed = false;

  constructor(server: Net.Server, handle: ServerHandle, backlog: number) {
    this.#server = server;
    this.#handle = handle;
    this.#Client = handle.constructor as new (kind: number) => unknown;
    this.#backlog = backlog;
    const address = server.address();
    this.#unix = typeof address !== "object" || address === null;
    this.addr = this.#unix ? { transport: "unix", path: "" } : addressOf(
      (address as Net.AddressInfo).address,
      (address as Net.AddressInfo).port,
    );
    server.removeAllListeners("error");
    server.on("error", () => {}); // Failed accepts are seen by accept().
    handle.onconnection = (status) => this.#ready(status);
  }

  /** The runtime says a connection (or an error) is there. */
  #ready(status: number): void {
    if (this.#closed) return;
    const waiting = this.#waiting;
    if (status !== 0) {
      this.#missed = true;
      const error = this.#error(status);
      if (waiting) {
        this.#waiting = undefined;
        waiting.reject(error);
      } else {
        this.#failure ??= error;
      }
      return;
    }
    if (!waiting) {
      this.#missed = true;
      return;
    }
    const next = this.#next();
    if (next === undefined) {
      this.#rearm();
      return;
    }
    this.#waiting = undefined;
    if (next instanceof Error) waiting.reject(next);
    else waiting.resolve(next);
  }

  /** Accepts one connection now: it, an error, or undefined if none. */
  #next(): Conn | Error | undefined {
    const client = new this.#Client(SOCKET);
    const status = this.#handle.accept(client);
    if (status === loadBuiltins().eagain) return undefined;
    if (status !== 0) return this.#error(status);
    if (!this.#unix) return adoptHandle(client as TcpHandle);
    const socket = new (loadBuiltins().net.Socket)({
      handle: client,
      allowHalfOpen: true,
      readable: true,
      writable: true,
    } as Net.SocketConstructorOpts);
    return new NodeConn(socket);
  }

  #rearm(): void {
    this.#missed = false;
    this.#handle.listen(this.#backlog);
  }

  #error(status: number): Error {
    const code = loadBuiltins().errorName(status);
    return Object.assign(new Error(`accept ${code}`), { code });
  }

  accept(): Promise<Conn> {
    if (this.#closed) {
      return Promise.reject(
        new Deno.errors.BadResource("The listener is closed"),
      );
    }
    const failure = this.#failure;
    if (failure) {
      this.#failure = undefined;
      return Promise.reject(failure);
    }
    const next = this.#next();
    if (next instanceof Error) return Promise.reject(next);
    if (next) return Promise.resolve(next);
    if (this.#missed) this.#rearm();
    this.#waiting = Promise.withResolvers();
    return this.#waiting.promise;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.onconnection = null;
    this.#server.close();
    this.#waiting?.reject(
      new Deno.errors.BadResource("The listener is closed"),
    );
    this.#waiting = undefined;
  }
}
