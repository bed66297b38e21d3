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
import type * as Os from "node:os";
import type * as Util from "node:util";
import {
  addressOf,
  adoptHandle,
  canAdoptHandles,
  closedError,
  HALF_OPEN,
  NodeConn,
  type TcpHandle,
} from "./node_conn.ts";

/** node's listening handle, as Deno 2.9.6 has it. */
interface ServerHandle {
  /** Told of each connection ready to accept (status 0) or of an error. */
  onconnection: ((status: number) => void) | null;
  /** Accepts one connection into `client`: 0, or a negative errno. */
  accept(client: unknown): number;
  /** (Re)starts watching for connections. */
  listen(backlog: number): number;
}

/**
 * Thrown when a descriptor is not a listening stream socket (a regular
 * file, a datagram or connected socket, a closed descriptor).
 */
export class DescriptorError extends TypeError {
  /** Names the descriptor, `fd`, and what it should have been. */
  constructor(readonly fd: number, cause?: unknown) {
    super("Not a listening TCP or Unix stream socket", { cause });
    this.name = "DescriptorError";
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
  // node's modules, loaded now (synchronously, as listening is; node keeps
  // them loaded).
  const { getBuiltinModule: load } = Reflect.get(globalThis, "process") as {
    getBuiltinModule(id: string): unknown;
  };
  const net = load("node:net") as typeof Net;
  const util = load("node:util") as typeof Util;
  // The status of an accept with nothing to accept.
  const eagain = -(load("node:os") as typeof Os).constants.errno.EAGAIN;
  const server = net.createServer({ allowHalfOpen: true });
  // A descriptor that cannot be listened on is told here, as node opens
  // the handle synchronously (its error, emitted a tick later, is unheard);
  // failed accepts are seen by accept().
  server.on("error", () => {});
  server.listen({ fd, backlog: options.backlog });
  const handle: ServerHandle = Reflect.get(server, "_handle");
  if (
    !server.listening || !canAdoptHandles() ||
    typeof handle?.accept !== "function" ||
    typeof handle.listen !== "function" || !("onconnection" in handle)
  ) {
    server.close();
    throw server.listening
      ? new TypeError(
        "This Deno cannot accept on a passed socket one connection at a " +
          "time (greeter needs Deno 2.9.6)",
      )
      : new DescriptorError(fd);
  }
  // From here, one connection per `accept()`. The runtime stops watching
  // once it has told of connections nobody accepted at once (`missed`);
  // `listen` starts it again when they are taken.
  const backlog = options.backlog ?? 511;
  // The class of the handle's connections: TCP, or Pipe (Unix).
  const Client = handle.constructor as new (kind: number) => unknown;
  // A Unix socket's address is its path, a string: no host, no port.
  const { address, port }: Partial<Net.AddressInfo> = Object(server.address());
  const addr = addressOf(address, port);
  let waiting: PromiseWithResolvers<Conn> | undefined;
  // A failed accept the runtime reported while nobody waited.
  let failure: Error | undefined;
  let missed = false;
  let closed = false;
  const error = (status: number) => {
    const code = util.getSystemErrorName(status);
    return Object.assign(new Error(`accept ${code}`), { code });
  };
  const rearm = () => {
    missed = false;
    handle.listen(backlog);
  };
  /** Accepts one connection now: it, an error, or undefined if none. */
  function next(): Conn | Error | undefined {
    // Of the kind a connection's handle is (node's `constants.SOCKET`, 0).
    const client = new Client(0);
    const status = handle.accept(client);
    if (status === eagain) return undefined;
    if (status !== 0) return error(status);
    if (addr.transport === "tcp") return adoptHandle(client as TcpHandle);
    const socket = { handle: client, ...HALF_OPEN };
    return new NodeConn(new net.Socket(socket as Net.SocketConstructorOpts));
  }
  // The runtime says a connection (or an error) is there.
  handle.onconnection = (status) => {
    if (closed) return;
    if (status !== 0 || !waiting) missed = true;
    // Told while nobody waits, only a failure is kept.
    const got = status !== 0 ? error(status) : waiting && next();
    if (!waiting) failure ??= got as Error | undefined;
    else if (got === undefined) rearm();
    else {
      const { resolve, reject } = waiting;
      waiting = undefined;
      if (got instanceof Error) reject(got);
      else resolve(got);
    }
  };
  return {
    addr,
    accept() {
      if (closed) return Promise.reject(closedError("listener"));
      const got = failure ?? next();
      failure = undefined;
      if (got instanceof Error) return Promise.reject(got);
      if (got) return Promise.resolve(got);
      if (missed) rearm();
      waiting = Promise.withResolvers();
      return waiting.promise;
    },
    close() {
      if (closed) return;
      closed = true;
      handle.onconnection = null;
      server.close();
      waiting?.reject(closedError("listener"));
      waiting = undefined;
    },
  };
}
