/**
 * Accepting on a listening socket greeter did not open: one a service
 * manager passed (systemd socket activation, from descriptor 3).
 *
 * `Deno.listen` cannot take a descriptor (denoland/deno#14006), but
 * node:net's `server.listen({ fd })` can. node accepts on its own, as fast
 * as clients come; this adapter hands its sockets to the accept loop one
 * `accept()` at a time, so the greeting's cap, limits, PROXY protocol,
 * deadlines and logs apply to them as to any listener. node:net is loaded
 * only here, on first use: a server without a passed socket never loads it.
 *
 * @module
 */
import type * as Net from "node:net";
import { addressOf, adoptSocket } from "./node_conn.ts";

/** node:net, loaded on first use (synchronously: listening is). */
let net: typeof Net | undefined;
function loadNet(): typeof Net {
  const process = (globalThis as unknown as {
    process: { getBuiltinModule(id: string): unknown };
  }).process;
  return net ??= process.getBuiltinModule("node:net") as typeof Net;
}

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

/** A listening socket from a descriptor, as the accept loop takes it. */
export interface DescriptorListener {
  /** The address it listens on (a Unix socket's path is not known). */
  readonly addr: Deno.Addr;
  /**
   * The next connection, as the members of `Deno.Conn` a greeting uses.
   * Rejects with node's error (its `code`, such as "EMFILE") when an accept
   * failed, and with `Deno.errors.BadResource` once closed.
   */
  accept(): Promise<Deno.Conn>;
  /** Stops listening here; the descriptor closes, connections waiting too. */
  close(): void;
  /** Makes the listener keep the event loop alive (the default). */
  ref(): void;
  /** Lets the event loop finish while the listener is open. */
  unref(): void;
}

/**
 * Listens on descriptor `fd`, which must be a listening (or bound) TCP or
 * Unix stream socket.
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
): DescriptorListener {
  const server = loadNet().createServer({
    allowHalfOpen: true,
    pauseOnConnect: true,
  });
  let failed: unknown;
  server.once("error", (error) => failed = error);
  server.listen({ fd, backlog: options.backlog });
  // node opens the handle synchronously; its error is emitted a tick later.
  if (!server.listening) {
    server.close();
    throw new DescriptorError(fd, failed);
  }
  return new Listener(server);
}

class Listener implements DescriptorListener {
  readonly addr: Deno.Addr;
  readonly #server: Net.Server;
  /** Sockets (or accept errors) node accepted before anyone asked. */
  readonly #queue: (Net.Socket | Error)[] = [];
  #waiting: PromiseWithResolvers<Deno.Conn> | undefined;
  #closed = false;

  constructor(server: Net.Server) {
    this.#server = server;
    const address = server.address();
    this.addr = typeof address === "object" && address !== null
      ? addressOf(address.address, address.port)
      : { transport: "unix", path: "" };
    server.removeAllListeners("error");
    server.on("connection", (socket) => this.#take(socket));
    server.on("error", (error) => this.#take(error));
  }

  #take(item: Net.Socket | Error): void {
    if (this.#closed) {
      if (!(item instanceof Error)) item.destroy();
      return;
    }
    const waiting = this.#waiting;
    if (!waiting) {
      this.#queue.push(item);
      return;
    }
    this.#waiting = undefined;
    if (item instanceof Error) waiting.reject(item);
    else waiting.resolve(connOf(item));
  }

  accept(): Promise<Deno.Conn> {
    if (this.#closed) {
      return Promise.reject(
        new Deno.errors.BadResource("The listener is closed"),
      );
    }
    const next = this.#queue.shift();
    if (next === undefined) {
      this.#waiting = Promise.withResolvers();
      return this.#waiting.promise;
    }
    return next instanceof Error
      ? Promise.reject(next)
      : Promise.resolve(connOf(next));
  }

  ref(): void {
    this.#server.ref();
  }

  unref(): void {
    this.#server.unref();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const item of this.#queue.splice(0)) {
      if (!(item instanceof Error)) item.destroy();
    }
    this.#waiting?.reject(
      new Deno.errors.BadResource("The listener is closed"),
    );
    this.#waiting = undefined;
  }
}

function connOf(socket: Net.Socket): Deno.Conn {
  return adoptSocket(socket);
}
