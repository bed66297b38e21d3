/**
 * Client addresses as logs may keep them: cut to their network, or replaced
 * by a keyed pseudonym. What admission uses is never changed; only what is
 * handed to observers (logs, `onConnection`, `onClose`).
 *
 * @module
 */
import { formatAddress, isNetAddr } from "./address.ts";
import { blockText, parseIp, unmapIpv4 } from "./ip.ts";

/**
 * Replaces a client's address by the one observers see; see
 * {@linkcode createAddressMask}. Its port is 0 when the port is dropped.
 *
 * @example Usage
 * ```ts
 * import { type AddressMask, createAddressMask } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const mask: AddressMask = await createAddressMask({ mode: "truncate" });
 * const client: Deno.NetAddr = {
 *   transport: "tcp",
 *   hostname: "192.0.2.77",
 *   port: 40000,
 * };
 * assertEquals(mask(client).hostname, "192.0.2.0/24");
 * ```
 */
export type AddressMask = (addr: Deno.NetAddr) => Deno.NetAddr;

/** The address log modes, for `--log-address`. */
export const ADDRESS_LOG_MODES = ["full", "truncate", "hash"] as const;

/** How logs show a client's address: `full`, `truncate` or `hash`. */
export type AddressLogMode = typeof ADDRESS_LOG_MODES[number];

/** The fewest bytes a key for `hash` may have. */
export const MIN_ADDRESS_KEY_BYTES = 16;

/** What {@linkcode createAddressMask} makes. */
export type AddressMaskOptions =
  | { mode: "truncate" }
  | {
    mode: "hash";
    /** The secret key, at least {@linkcode MIN_ADDRESS_KEY_BYTES} bytes. */
    key: Uint8Array;
  };

/**
 * The network of an IP address, for logs: IPv4 to its /24
 * (`192.0.2.0/24`), IPv6 to its /48 (`2001:db8:1::/48`); an IPv4-mapped
 * IPv6 address as IPv4. Text that is no IP address is returned as it is.
 *
 * @example Usage
 * ```ts
 * import { truncateAddress } from "./address_privacy.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(truncateAddress("2001:db8:1:2::5"), "2001:db8:1::/48");
 * assertEquals(truncateAddress("::ffff:192.0.2.9"), "192.0.2.0/24");
 * ```
 */
export function truncateAddress(hostname: string): string {
  const bytes = parseIp(unmapIpv4(hostname));
  return bytes ? blockText(bytes, bytes.length === 4 ? 24 : 48) : hostname;
}

/** `addr` as observers see it: `hostname` instead, without its port. */
const hide = ({ transport }: Deno.NetAddr, hostname: string) =>
  ({ transport, hostname, port: 0 }) satisfies Deno.NetAddr;

/**
 * Makes an {@linkcode AddressMask}:
 * - `truncate`: the address's network (see {@linkcode truncateAddress});
 * - `hash`: a pseudonym of 16 hex digits, the first 64 bits of
 *   HMAC-SHA-256 of the address's bytes under `key`: the same address gives
 *   the same token under the same key, and without the key the token cannot
 *   be turned back into an address, not even by trying every IPv4 address
 *   (as an unkeyed hash could be).
 *
 * Either drops the port (0). Async only to load the hash (`node:crypto`,
 * only when `hash` is asked); the mask itself is synchronous.
 *
 * @throws {RangeError} For a key shorter than {@linkcode MIN_ADDRESS_KEY_BYTES}.
 * @throws {TypeError} For an unknown mode or a key that is not bytes.
 *
 * @example Pseudonyms: stable under one key, different under another
 * ```ts
 * import { createAddressMask } from "../../mod.ts";
 * import { assertEquals, assertNotEquals } from "@std/assert";
 *
 * const client: Deno.NetAddr = {
 *   transport: "tcp",
 *   hostname: "192.0.2.77",
 *   port: 40000,
 * };
 * const one = await createAddressMask({ mode: "hash", key: new Uint8Array(32) });
 * const two = await createAddressMask({
 *   mode: "hash",
 *   key: new Uint8Array(32).fill(1),
 * });
 * assertEquals(one(client), one({ ...client, port: 40001 }));
 * assertEquals(one(client).port, 0);
 * assertNotEquals(one(client).hostname, two(client).hostname);
 * ```
 */
export async function createAddressMask(
  options: AddressMaskOptions,
): Promise<AddressMask> {
  const mode = (options as { mode?: unknown } | null)?.mode;
  if (mode === "truncate") {
    return (addr) => hide(addr, truncateAddress(addr.hostname));
  }
  if (mode !== "hash") {
    throw new TypeError(
      `Invalid mode ${JSON.stringify(mode)}: expected "truncate" or "hash"`,
    );
  }
  const key = (options as { key?: unknown }).key;
  if (!(key instanceof Uint8Array)) {
    throw new TypeError("Invalid key: expected a Uint8Array");
  }
  if (key.length < MIN_ADDRESS_KEY_BYTES) {
    throw new RangeError(
      `Invalid key: expected at least ${MIN_ADDRESS_KEY_BYTES} bytes, got ${key.length}`,
    );
  }
  // Synchronous HMAC (WebCrypto's is async), loaded only for this mode.
  const { createHmac } = await import("node:crypto");
  const secret = key.slice();
  // Tokens of recent clients, so that a client's open and close lines (and a
  // returning client) cost one HMAC, tens of microseconds here: at most
  // 4,096, all forgotten when full.
  const tokens = new Map<string, string>();
  return (addr) => {
    let token = tokens.get(addr.hostname);
    if (token === undefined) {
      if (tokens.size >= 4_096) tokens.clear();
      // The bytes of an IP address, so one address has one token.
      const address = parseIp(unmapIpv4(addr.hostname)) ?? addr.hostname;
      token = createHmac("sha256", secret).update(address).digest()
        .toString("hex", 0, 8);
      tokens.set(addr.hostname, token);
    }
    return hide(addr, token);
  };
}

/**
 * `addr` as observers see it: masked when there is a mask and it is an IP
 * address; a Unix socket's address as it is.
 */
export function maskAddress(
  mask: AddressMask | undefined,
  addr: Deno.Addr,
): Deno.Addr {
  return mask && isNetAddr(addr) ? mask(addr) : addr;
}

/**
 * A client's address for a log line: `HOST:PORT` as
 * {@linkcode formatAddress} writes it, or the host alone when its port was
 * dropped (0) by a mask (`192.0.2.0/24`, a token).
 */
export function formatClientAddress(addr: Deno.Addr): string {
  return isNetAddr(addr) && addr.port === 0
    ? unmapIpv4(addr.hostname)
    : formatAddress(addr);
}
