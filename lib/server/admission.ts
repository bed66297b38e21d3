import { type Cidr, parseIp, sourceKey } from "../net/ip.ts";
import { createIpSet } from "../net/ip_set.ts";

/** The refuse reasons, in a stable order (for metrics). */
export const REFUSE_REASONS = [
  "denied",
  "per_ip_limit",
  "rate_limit",
  "proxy_untrusted",
  "proxy_header",
  "early_talker",
] as const;

/**
 * Why a client was refused.
 *
 * @example Usage
 * ```ts
 * import {
 *   type ConnectionRecord,
 *   fetchGreeting,
 *   parseCidr,
 *   type RefuseReason,
 *   serveGreeting,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const closed = Promise.withResolvers<ConnectionRecord>();
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   deny: [parseCidr("127.0.0.1")],
 *   onClose: (record) => closed.resolve(record),
 * });
 * await fetchGreeting({ hostname: "127.0.0.1", port: server.addr.port });
 * const reason: RefuseReason = "denied";
 * assertEquals((await closed.promise).reason, reason);
 * assertEquals(server.stats.refused[reason], 1);
 * ```
 */
export type RefuseReason = typeof REFUSE_REASONS[number];

/**
 * Who may connect, and how much. Every field is optional.
 *
 * @example Usage
 * ```ts
 * import {
 *   type AdmissionOptions,
 *   fetchGreeting,
 *   parseCidr,
 *   serveGreeting,
 * } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const admission: AdmissionOptions = { deny: [parseCidr("127.0.0.0/8")] };
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   ...admission,
 * });
 * // A refused client is closed without a greeting.
 * const bytes = await fetchGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * assertEquals(bytes.length, 0);
 * ```
 */
export interface AdmissionOptions {
  /** If given, only these blocks may connect. */
  allow?: Cidr[];
  /** These blocks may not connect; deny wins over allow. */
  deny?: Cidr[];
  /** Connections open at once from one source (IPv4 address or IPv6 /64). */
  maxPerIp?: number;
  /** New connections per second from one source (a token bucket). */
  ratePerIp?: number;
}

/** Decides, per connection, whether a client is served. */
export type Admission = NonNullable<ReturnType<typeof admissionOf>>;

/** How many sources' rate buckets are kept before idle ones are pruned. */
const MAX_BUCKETS = 65_536;

/** A source's rate bucket: its tokens, as of `updated`. */
type Bucket = { tokens: number; updated: number };

/**
 * The admission policy, or undefined when no access rule or limit is set.
 * Limits never disable the service: they only refuse the sources that exceed
 * them, and the rest are served.
 */
export function admissionOf(options: AdmissionOptions) {
  const { allow: allowed = [], deny: denied = [] } = options;
  const { maxPerIp = 0, ratePerIp = 0 } = options;
  if (!allowed.length && !denied.length && !maxPerIp && !ratePerIp) return;
  // Sorted ranges, searched in logarithmic time; rebuilt by a reload.
  let allow = createIpSet(allowed);
  let deny = createIpSet(denied);
  const open = new Map<string, number>();
  const buckets = new Map<string, Bucket>();
  const capacity = Math.max(1, ratePerIp);

  /** The tokens `bucket` holds at `now`, refilled (beyond its capacity). */
  const refilled = (bucket: Bucket, now: number) =>
    bucket.tokens + (now - bucket.updated) * ratePerIp / 1000;

  function takeToken(key: string, now: number): boolean {
    let bucket = buckets.get(key);
    if (!bucket) {
      if (buckets.size >= MAX_BUCKETS) prune(now);
      buckets.set(key, bucket = { tokens: capacity, updated: now });
    } else {
      bucket.tokens = Math.min(capacity, refilled(bucket, now));
      bucket.updated = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  // Buckets that have refilled are the same as absent ones: drop them, so a
  // scan from many addresses cannot grow memory without bound.
  function prune(now: number) {
    for (const [key, bucket] of buckets) {
      if (refilled(bucket, now) >= capacity) buckets.delete(key);
    }
    // Still full of busy sources: forget the oldest half.
    if (buckets.size >= MAX_BUCKETS) {
      const oldest = [...buckets.keys()].slice(0, buckets.size >> 1);
      for (const key of oldest) buckets.delete(key);
    }
  }

  return {
    /**
     * Admits a client (undefined) or says why not. An admitted client holds a
     * slot of its source until `release`.
     */
    admit(hostname: string, now: number): RefuseReason | undefined {
      if (!allow.empty || !deny.empty) {
        const bytes = parseIp(hostname);
        if (!bytes || deny.has(bytes) || !(allow.empty || allow.has(bytes))) {
          return "denied";
        }
      }
      const key = sourceKey(hostname);
      const held = maxPerIp && (open.get(key) ?? 0);
      if (maxPerIp > 0 && held >= maxPerIp) return "per_ip_limit";
      if (ratePerIp > 0 && !takeToken(key, now)) return "rate_limit";
      if (maxPerIp > 0) open.set(key, held + 1);
      return undefined;
    },
    /**
     * Replaces the allow and deny lists (a reload), keeping the per-source
     * counts and rate buckets.
     */
    setRules(nextAllow: Cidr[] = [], nextDeny: Cidr[] = []) {
      allow = createIpSet(nextAllow);
      deny = createIpSet(nextDeny);
    },
    /** Frees the slot an admitted client from `hostname` held. */
    release(hostname: string) {
      if (maxPerIp === 0) return;
      const key = sourceKey(hostname);
      const count = open.get(key) ?? 0;
      if (count > 1) open.set(key, count - 1);
      else open.delete(key);
    },
  };
}
