import { formatAddress } from "./address.ts";

/** The default time a client waits for the whole greeting, in milliseconds. */
export const DEFAULT_CLIENT_TIMEOUT = 5_000;
/** The most bytes {@linkcode fetchGreeting} collects before it gives up. */
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

/** Options for {@linkcode readGreeting} and {@linkcode fetchGreeting}. */
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
  /**
   * How long connecting and reading may take in all, in milliseconds.
   *
   * @default {5000}
   */
  timeout?: number;
  /** Aborting it stops the client. */
  signal?: AbortSignal;
}

/** Thrown when the server does not close the connection in time. */
export class GreetingTimeoutError extends Error {
  /** Describes which server did not finish within which timeout. */
  constructor(address: string, timeout: number) {
    super(`No complete greeting from ${address} within ${timeout} ms`);
    this.name = "GreetingTimeoutError";
  }
}

/**
 * Connects to a greeting server and yields the bytes it sends as they
 * arrive, until it closes the connection.
 *
 * @throws {Deno.errors.ConnectionRefused} (and the other errors of
 * `Deno.connect`) when the server cannot be reached.
 * @throws {GreetingTimeoutError} When the server does not finish in time.
 */
export async function* readGreeting(
  options: FetchGreetingOptions = {},
): AsyncGenerator<Uint8Array<ArrayBuffer>> {
  const {
    hostname = "localhost",
    port = 8080,
    timeout = DEFAULT_CLIENT_TIMEOUT,
    signal,
  } = options;
  const address = formatAddress({ transport: "tcp", hostname, port });
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeout);
  const stop = signal
    ? AbortSignal.any([signal, deadline.signal])
    : deadline.signal;
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname, port, signal: stop });
  } catch (error) {
    clearTimeout(timer);
    if (deadline.signal.aborted) {
      throw new GreetingTimeoutError(address, timeout);
    }
    throw error;
  }
  const closeOnStop = () => conn.close();
  stop.addEventListener("abort", closeOnStop, { once: true });
  try {
    while (true) {
      const buffer = new Uint8Array(16 * 1024);
      let read: number | null;
      try {
        read = await conn.read(buffer);
      } catch (error) {
        if (deadline.signal.aborted) {
          throw new GreetingTimeoutError(address, timeout);
        }
        if (signal?.aborted) throw signal.reason;
        throw error;
      }
      if (read === null) return;
      yield buffer.subarray(0, read);
    }
  } finally {
    clearTimeout(timer);
    stop.removeEventListener("abort", closeOnStop);
    if (!stop.aborted) conn.close();
  }
}

/**
 * Connects to a greeting server and returns every byte it sends before it
 * closes the connection.
 *
 * @throws {RangeError} If the server sends more than 16 MiB.
 */
export async function fetchGreeting(
  options: FetchGreetingOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of readGreeting(options)) {
    size += chunk.length;
    if (size > DEFAULT_MAX_BYTES) {
      throw new RangeError("The server sent more than 16 MiB");
    }
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}
