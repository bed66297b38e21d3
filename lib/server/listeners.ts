import { type Acceptor, closeQuietly } from "./connection_table.ts";
import { formatAddress } from "../net/address.ts";
import { attempt } from "../net/value_error.ts";
import { contextOf, serveTlsOn, type TlsListener } from "./tls_listener.ts";
import { listenOnDescriptor } from "./descriptor_listener.ts";
import {
  DEFAULT_BACKLOG,
  DEFAULT_HOSTNAME,
  DEFAULT_PORT,
  type ListenTarget,
  type ServeGreetingOptions,
} from "./options.ts";

/**
 * Thrown by {@linkcode serveGreeting} when one of its listeners fails.
 *
 * @example Usage
 * ```ts
 * import { ListenError, serveGreeting } from "../../mod.ts";
 * import { assertEquals, assertInstanceOf, assertThrows } from "@std/assert";
 *
 * await using first = serveGreeting({ hostname: "127.0.0.1", port: 0 });
 * const port = first.addr.port;
 * const error = assertThrows(
 *   () => serveGreeting({ hostname: "127.0.0.1", port }),
 *   ListenError,
 * );
 * assertEquals(error.port, port);
 * assertInstanceOf(error.cause, Deno.errors.AddrInUse);
 * ```
 */
export class ListenError extends Error {
  /**
   * Says which address failed and why; the original error is `cause`.
   *
   * @param address The address that could not be listened on, as
   * `HOST:PORT` or a path.
   * @param port The port asked for (0 for a Unix socket).
   */
  constructor(readonly address: string, readonly port: number, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`Cannot listen on ${address}: ${why}`, { cause });
    this.name = "ListenError";
  }
}

/** An open listener, and what is needed to close it cleanly. */
export interface OpenListener {
  readonly listener: Acceptor;
  /** A TLS listener, whose certificate a reload can replace. */
  readonly tls?: TlsListener;
  /** A Unix socket's file, to remove at close only if it is still ours. */
  readonly socketFile?: SocketFile;
}

/**
 * What tells a socket file apart from one made later at the same path: a
 * file system may give a new file the inode number of a removed one (tmpfs
 * does at once), so its change time is compared too.
 */
type SocketFile = ReturnType<typeof socketFileAt>;

function socketFileAt(path: string) {
  const { dev, ino, ctime } = Deno.lstatSync(path);
  return { path, dev, ino, ctime: ctime?.getTime() };
}

function describeTarget(target: ListenTarget): [string, number] {
  if (target.transport === "unix") return [target.path, 0];
  if (target.transport === "fd") return [`file descriptor ${target.fd}`, 0];
  const { hostname = DEFAULT_HOSTNAME, port = DEFAULT_PORT } = target;
  return [formatAddress({ transport: "tcp", hostname, port }), port];
}

function openOne(
  target: ListenTarget,
  options: ServeGreetingOptions,
): OpenListener {
  if (target.transport === "unix") {
    const listener = Deno.listen({ transport: "unix", path: target.path });
    // Without read permission it cannot be told apart later: left alone.
    return { listener, socketFile: attempt(() => socketFileAt(target.path)) };
  }
  // Checked before the port is taken, so nothing is left to close.
  const context = target.tls && contextOf(target.tls.cert, target.tls.key);
  const { backlog = DEFAULT_BACKLOG, reusePort } = options;
  const tcp = target.transport === "fd"
    ? listenOnDescriptor(target.fd, { backlog })
    : Deno.listen({
      hostname: target.hostname ?? DEFAULT_HOSTNAME,
      port: target.port ?? DEFAULT_PORT,
      tcpBacklog: backlog,
      ...(reusePort ? { reusePort: true } : {}),
    });
  // A passed Unix socket stays plain, as one from --unix does.
  if (!context || tcp.addr.transport !== "tcp") return { listener: tcp };
  // Not Deno.listenTls: a TlsConn closed during its handshake keeps its
  // socket open (Deno 2.9.6), so a stalled handshake would hold a
  // descriptor past its deadline. This one closes the TCP socket itself.
  // Behind a PROXY header, which comes in clear: TLS starts after it.
  const deferred = options.proxyProtocol !== undefined;
  const listener = serveTlsOn(tcp, context, deferred);
  return { listener, tls: listener };
}

/**
 * Opens every listener, or none: on a failure the ones already open are
 * closed again.
 *
 * @throws {ListenError} Naming the address that failed.
 */
export function openListeners(
  targets: readonly ListenTarget[],
  options: ServeGreetingOptions,
): OpenListener[] {
  const open: OpenListener[] = [];
  for (const target of targets) {
    try {
      open.push(openOne(target, options));
    } catch (error) {
      // Nothing waits on these: each is dropped, and its file put back, now.
      for (const listener of open) closeListener(listener)();
      throw new ListenError(...describeTarget(target), error);
    }
  }
  return open;
}

/**
 * Closes a listener. A Unix socket's file is removed with it, but only if it
 * is still the one this listener made (same device, inode and change
 * time): another server may have bound the path since.
 *
 * @returns What to call once the listener's accept loop has ended.
 */
export function closeListener(open: OpenListener): () => void {
  const file = open.socketFile;
  // Deno 2.9 unlinks the path of a Unix listener when it drops it (once its
  // pending accept has failed), whoever made the file there: another
  // server's file is kept under a second name meanwhile, and put back by the
  // function returned, to be called once the accept loop has ended (none if
  // it is gone, or not ours to keep: nothing to save).
  const aside = file && !isOurs(file)
    ? attempt(() => {
      const name = `${file.path}.greeter-${Deno.pid}-aside`;
      Deno.linkSync(file.path, name);
      return name;
    })
    : undefined;
  closeQuietly(open.listener);
  if (aside) {
    // Or left as it was found.
    return () => attempt(() => Deno.renameSync(aside, file!.path));
  }
  // Or removed by the runtime meanwhile.
  if (file && isOurs(file)) attempt(() => Deno.removeSync(file.path));
  return () => {};
}

/** True if the socket file at the path is still the one this listener made. */
function isOurs(file: SocketFile): boolean {
  const now = attempt(() => socketFileAt(file.path));
  return now?.dev === file.dev && now.ino === file.ino &&
    now.ctime === file.ctime;
}
