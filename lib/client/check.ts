import { errorLine, escapeBytes } from "../net/escape.ts";
import {
  clientAddress,
  type FetchGreetingOptions,
  GreetingTimeoutError,
  readGreeting,
} from "./read_greeting.ts";
import { DEFAULT_GREETING as DEFAULT_EXPECT } from "../greeting/template.ts";

type Status = CheckResult["status"];

/** How long a check may take by default, in milliseconds. */
export const DEFAULT_CHECK_TIMEOUT = 2_000;

/**
 * Options for {@linkcode checkGreeting}.
 *
 * @example Usage
 * ```ts
 * import {
 *   checkGreeting,
 *   type CheckGreetingOptions,
 *   encodeGreeting,
 *   serveGreeting,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   greeting: encodeGreeting("Hello"),
 * });
 * const options: CheckGreetingOptions = {
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 *   expect: encodeGreeting("Hello"),
 *   timeout: 1_000,
 * };
 * assertEquals((await checkGreeting(options)).ok, true);
 * ```
 */
export interface CheckGreetingOptions extends FetchGreetingOptions {
  /**
   * The exact bytes the server must send before it closes.
   *
   * @default {encodeGreeting("Connection Established")}
   */
  expect?: Uint8Array;
  /**
   * How long connecting, reading and the close may take in all, in ms.
   *
   * @default {2000}
   */
  timeout?: number;
}

/**
 * The verdict of {@linkcode checkGreeting}.
 *
 * @example Usage
 * ```ts
 * import {
 *   checkGreeting,
 *   type CheckResult,
 *   encodeGreeting,
 *   serveGreeting,
 * } from "../../mod.ts";
 * import { assertEquals, assertStringIncludes } from "@std/assert";
 *
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
 * const result: CheckResult = await checkGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 *   expect: encodeGreeting("Hello"),
 * });
 * assertEquals(result.status, "mismatch");
 * assertStringIncludes(result.message, "MISMATCH");
 * ```
 */
export interface CheckResult {
  /** True only if the server sent exactly the expected bytes and closed. */
  ok: boolean;
  /** `ok`, `mismatch` (other bytes), or `fail` (no answer, error, timeout). */
  status: "ok" | "mismatch" | "fail";
  /** One line for people, starting with OK, MISMATCH or FAIL. */
  message: string;
  /** The bytes received (at most the expected length plus 256). */
  received: Uint8Array;
  /** The address checked, as `HOST:PORT` or a socket's path. */
  address: string;
  /**
   * Why connecting or reading failed (status `fail` without a timeout), for
   * a caller that words it its own way.
   */
  error?: unknown;
  /**
   * What may help when nothing came: `proxy-header` when the server closed
   * at once (a greeter behind a balancer does that to a client that sends
   * no PROXY header), `timeout` when it sent nothing in time (a longer
   * timeout, or a PROXY header, may help). For a caller to word its way.
   */
  hint?: "proxy-header" | "timeout";
}

/** Bytes read beyond the expected length, to show what was sent instead. */
const EXTRA = 256;
/** Bytes of each side shown in a mismatch. */
const SHOWN = 48;

/** Shows bytes as a quoted string: ASCII as is, the rest escaped. */
export function quoteBytes(bytes: Uint8Array, from = 0, max = SHOWN): string {
  const end = Math.min(bytes.length, from + max);
  const shown = escapeBytes(bytes.subarray(from, end));
  return `${from > 0 ? "…" : ""}"${shown}"${end < bytes.length ? "…" : ""}`;
}

/**
 * Connects to a greeting server and checks that it sends exactly the
 * expected bytes and closes: a health probe. Never throws; the verdict is
 * one line, for a Docker HEALTHCHECK or a Kubernetes exec probe.
 *
 * @example Usage
 * ```ts
 * import { checkGreeting, serveGreeting } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0 });
 * const result = await checkGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * assertEquals(result.status, "ok");
 * ```
 */
export async function checkGreeting(
  options: CheckGreetingOptions = {},
): Promise<CheckResult> {
  const { expect = DEFAULT_EXPECT, timeout = DEFAULT_CHECK_TIMEOUT } = options;
  const address = clientAddress(options);
  const started = performance.now();
  const buffer = new Uint8Array(expect.length + EXTRA + 1);
  let size = 0;
  let error: unknown;
  let closed = false;
  try {
    for await (const chunk of readGreeting({ ...options, timeout })) {
      const taken = chunk.subarray(0, buffer.length - size);
      buffer.set(taken, size);
      size += taken.length;
      if (size === buffer.length) break; // Enough to show what differs.
    }
    closed = size < buffer.length;
  } catch (caught) {
    error = caught;
  }
  const received = buffer.slice(0, size);
  // Where the bytes first differ from the expected ones (at most `size`).
  let diff = 0;
  while (diff < size && expect[diff] === received[diff]) diff++;
  const matching = diff === size && size <= expect.length;
  const timedOut = error instanceof GreetingTimeoutError;
  type More = Partial<CheckResult>;
  const result = (status: Status, message: string, more: More = {}) => (
    { ok: status === "ok", status, message, received, address, ...more }
  );
  if (!matching || closed && size !== expect.length) {
    const still = timedOut ? `, still open after ${timeout} ms` : "";
    const count = closed
      ? `${size} bytes${matching ? ", then closed" : ""}`
      : `at least ${size} bytes${still}`;
    // Both sides from just before their first difference.
    const from = diff > SHOWN - 8 ? diff - 8 : 0;
    const expected = `${quoteBytes(expect, from)} (${expect.length} bytes)`;
    const first = diff > 0 ? `; first difference at byte ${diff + 1}` : "";
    const got = `${quoteBytes(received, from)} (${count})${first}`;
    const message = `MISMATCH ${address}: expected ${expected}, got ${got}`;
    const hint = matching && size === 0 && !options.proxyHeader;
    return result("mismatch", message, hint ? { hint: "proxy-header" } : {});
  }
  if (closed) {
    const ms = Math.round(performance.now() - started);
    const sent = `sent the expected greeting (${size} bytes) in ${ms} ms`;
    return result("ok", `OK ${address} ${sent}`);
  }
  if (timedOut) {
    const message = size === expect.length
      ? `FAIL ${address} sent the expected greeting but did not close ` +
        `the connection within ${timeout} ms`
      : size > 0
      ? `FAIL ${address} sent ${size} of the ${expect.length} expected ` +
        `bytes, then nothing more within ${timeout} ms`
      : `FAIL no greeting from ${address} within ${timeout} ms; is it a ` +
        "greeter, and is the port open?";
    return result("fail", message, size === 0 ? { hint: "timeout" } : {});
  }
  const reason = errorLine(error);
  const lower = reason.charAt(0).toLowerCase() + reason.slice(1);
  const message = `FAIL cannot connect to ${address}: ${lower}`;
  return result("fail", message, { error });
}
