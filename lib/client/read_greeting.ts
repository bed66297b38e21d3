import { V2_SIGNATURE } from "../net/proxy_protocol.ts";
import { formatAddress } from "../net/address.ts";
import { attempt } from "../net/value_error.ts";
import { DEFAULT_PORT } from "../server/options.ts";

/** The default time a client waits for the whole greeting, in milliseconds. */
export const DEFAULT_CLIENT_TIMEOUT = 5_000;
/** The most bytes {@linkcode fetchGreeting} collects before it gives up. */
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

/**
 * How to speak TLS to the server.
 *
 * @example Usage
 * ```ts
 * import {
 *   checkGreeting,
 *   type ClientTlsOptions,
 *   serveGreeting,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * // This server speaks plain TCP, so a TLS client fails its handshake.
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
 * const tls: ClientTlsOptions = { insecure: true };
 * const result = await checkGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 *   tls,
 * });
 * assertEquals(result.status, "fail");
 * ```
 */
export interface ClientTlsOptions {
  /** PEM CA certificates to trust instead of the system's. */
  caCerts?: string[];
  /** Do not verify the server's certificate at all. */
  insecure?: boolean;
}

/**
 * Options for {@linkcode readGreeting} and {@linkcode fetchGreeting}.
 *
 * @example Usage
 * ```ts
 * import {
 *   fetchGreeting,
 *   type FetchGreetingOptions,
 *   serveGreeting,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
 * const options: FetchGreetingOptions = {
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 *   timeout: 1_000,
 * };
 * assertEquals((await fetchGreeting(options)).length, 24);
 * ```
 */
export interface FetchGreetingOptions {
  /**
   * The server's host name or IP address.
   *
   * @default {"localhost"}
   */
  hostname?: string;
  /**
   * The server's TCP port.
   *
   * @default {8080}
   */
  port?: number;
  /** Connect to this Unix socket instead of a host and port. */
  path?: string;
  /** Speak TLS (true: verify against the system's CAs). */
  tls?: boolean | ClientTlsOptions;
  /**
   * Start with a PROXY protocol v2 `LOCAL` header, as a load balancer's
   * health check does, for a server that expects the header (see
   * `ServeGreetingOptions.proxyProtocol`). With `tls`, the header goes in
   * clear before the handshake, as HAProxy's `send-proxy` does.
   */
  proxyHeader?: boolean;
  /**
   * How long connecting and reading may take in all, in milliseconds.
   *
   * @default {5000}
   */
  timeout?: number;
  /** Aborting it stops the client. */
  signal?: AbortSignal;
}

/**
 * Thrown when the server does not close the connection in time.
 *
 * @example Usage
 * ```ts
 * import { fetchGreeting, GreetingTimeoutError } from "../../mod.ts";
 * import { assertEquals, assertRejects } from "@std/assert";
 *
 * // A server that accepts and never closes.
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * const error = await assertRejects(
 *   () =>
 *     fetchGreeting({
 *       hostname: "127.0.0.1",
 *       port: listener.addr.port,
 *       timeout: 100,
 *     }),
 *   GreetingTimeoutError,
 * );
 * (await accepted).close();
 * assertEquals(error.received, 0);
 * ```
 */
export class GreetingTimeoutError extends Error {
  /** Describes which server did not finish within which timeout. */
  constructor(
    address: string,
    timeout: number,
    /** Bytes received before the deadline. */
    readonly received = 0,
    /**
     * Whether the connection was made (and its TLS handshake done) before
     * the deadline: false when the server never answered at all.
     */
    readonly connected = true,
  ) {
    const what = connected ? "complete greeting from" : "connection to";
    super(`No ${what} ${address} within ${timeout} ms`);
    this.name = "GreetingTimeoutError";
  }
}

/**
 * A balancer's health check: a PROXY protocol v2 header, command `LOCAL`
 * (0x20), family `AF_UNSPEC` (0), no address bytes (length 0).
 */
const LOCAL_HEADER = Uint8Array.of(...V2_SIGNATURE, 0x20, 0, 0, 0);

/**
 * A Deno connection as the client uses it: the next chunk (null once the
 * server has closed) until the end, and close.
 */
function denoSource(conn: Deno.Conn) {
  // The stream closes the connection at its end: a second close is a no-op.
  const chunks = conn.readable.getReader();
  return {
    next: () => chunks.read().then(({ value }) => value ?? null),
    close: (): unknown => attempt(() => conn.close()),
  };
}

async function open(options: FetchGreetingOptions, signal: AbortSignal) {
  const { hostname = "localhost", port = DEFAULT_PORT } = options;
  const { path, tls, proxyHeader } = options;
  const { caCerts, insecure } = typeof tls === "object" ? tls : {};
  if (path === undefined && tls && insecure) {
    // Deno's own TLS client always verifies; node:tls can be told not to.
    const { connect } = await import("node:tls");
    const { connect: connectTcp, isIP } = await import("node:net");
    const { once } = (await import("node:events")).EventEmitter;
    // Node's error codes as the Deno errors the rest of greeter explains.
    const fail = (error: Error & { code?: string }) => {
      const Kind = ({
        ECONNREFUSED: Deno.errors.ConnectionRefused,
        ECONNRESET: Deno.errors.ConnectionReset,
        ETIMEDOUT: Deno.errors.TimedOut,
      } as Record<string, new (message: string) => Error>)[error.code ?? ""];
      return Promise.reject(Kind ? new Kind(error.message) : error);
    };
    // The PROXY header goes in clear first, then TLS on the same socket.
    const plain = connectTcp({ host: hostname, port });
    await once(plain, "connect").catch(fail);
    if (proxyHeader) plain.write(LOCAL_HEADER);
    const socket = connect({
      socket: plain,
      rejectUnauthorized: false,
      servername: isIP(hostname) ? undefined : hostname,
    });
    await once(socket, "secureConnect").catch(fail);
    // The iterator listens for errors from its first next() on; until then
    // an error must not be uncaught (the stream keeps it for the iterator).
    socket.on("error", () => {});
    const chunks = socket[Symbol.asyncIterator]();
    return {
      next: () =>
        chunks.next().then(
          ({ done, value }) => done ? null : new Uint8Array(value),
          fail,
        ),
      close: () => socket.destroy(),
    };
  }
  // As HAProxy's send-proxy: the header in clear (16 bytes: one write takes
  // them), then, for TLS, the handshake on the same connection. (A Unix
  // socket has no TLS here: the CLI says so.)
  const socket = path === undefined
    ? await Deno.connect({ hostname, port, signal })
    : await Deno.connect({ transport: "unix", path });
  try {
    if (proxyHeader) await socket.write(LOCAL_HEADER);
    if (!tls || path !== undefined) return denoSource(socket);
    const tcp = socket as Deno.TcpConn;
    const conn = await Deno.startTls(tcp, { hostname, caCerts });
    await conn.handshake();
    return denoSource(conn);
  } catch (error) {
    attempt(() => socket.close()); // Closed with the TLS connection already.
    throw error;
  }
}

/** The server a client's options name: its socket's path, or `HOST:PORT`. */
export function clientAddress(options: FetchGreetingOptions): string {
  const { hostname = "localhost", port = DEFAULT_PORT } = options;
  return options.path ?? formatAddress({ transport: "tcp", hostname, port });
}

/**
 * Connects to a greeting server and yields the bytes it sends as they
 * arrive, until it closes the connection.
 *
 * @throws {Deno.errors.ConnectionRefused} (and the other errors of
 * `Deno.connect`) when the server cannot be reached.
 * @throws {GreetingTimeoutError} When the server does not finish in time.
 *
 * @example Usage
 * ```ts
 * import { readGreeting, serveGreeting } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
 * let received = 0;
 * for await (
 *   const chunk of readGreeting({ hostname: "127.0.0.1", port: server.addr.port })
 * ) {
 *   received += chunk.length;
 * }
 * assertEquals(received, "Connection Established\r\n".length);
 * ```
 */
export async function* readGreeting(
  options: FetchGreetingOptions = {},
): AsyncGenerator<Uint8Array<ArrayBuffer>> {
  const { timeout = DEFAULT_CLIENT_TIMEOUT, signal } = options;
  // setTimeout, not AbortSignal.timeout: that throws a TypeError for a
  // timeout out of its range (NaN, -1, 2 ** 64) where this times out.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeout);
  const stop = AbortSignal.any([deadline.signal, ...(signal ? [signal] : [])]);
  let received = 0;
  let source: Awaited<ReturnType<typeof open>> | undefined;
  // A TLS handshake or a Unix connect cannot be aborted: race the deadline
  // (or the signal), and close the connection when it comes.
  const { promise: aborted, reject } = Promise.withResolvers<never>();
  const onStop = () => {
    source?.close();
    reject(stop.reason);
  };
  stop.addEventListener("abort", onStop, { once: true });
  try {
    const opening = open(options, stop);
    source = await Promise.race([opening, aborted]).catch((error) => {
      opening.then((late) => late.close(), () => {});
      throw error;
    });
    while (true) {
      const chunk = await source.next();
      if (chunk === null) break;
      received += chunk.length;
      yield chunk;
    }
    // A connection cut by the deadline or the signal can also end without
    // an error: the catch below tells which.
    if (stop.aborted) throw stop.reason;
  } catch (error) {
    if (deadline.signal.aborted) {
      const address = clientAddress(options);
      throw new GreetingTimeoutError(address, timeout, received, !!source);
    }
    if (signal?.aborted) throw signal.reason;
    throw error;
  } finally {
    clearTimeout(timer);
    stop.removeEventListener("abort", onStop);
    if (!stop.aborted) source?.close();
  }
}

/**
 * Connects to a greeting server and returns every byte it sends before it
 * closes the connection.
 *
 * @throws {RangeError} If the server sends more than 16 MiB.
 *
 * @example Usage
 * ```ts
 * import { fetchGreeting, serveGreeting } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
 * const bytes = await fetchGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * assertEquals(new TextDecoder().decode(bytes), "Connection Established\r\n");
 * ```
 */
export async function fetchGreeting(
  options: FetchGreetingOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let size = 0;
  for await (const chunk of readGreeting(options)) {
    size += chunk.length;
    if (size > DEFAULT_MAX_BYTES) {
      throw new RangeError("The server sent more than 16 MiB");
    }
    chunks.push(chunk);
  }
  return new Uint8Array(await new Blob(chunks).arrayBuffer());
}
