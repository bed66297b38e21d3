/**
 * Naming what a client's first bytes look like: a TLS ClientHello (with
 * its SNI), an HTTP request (method, path, version, user agent), an SSH
 * version line, an RDP connection request, SMB, a PROXY protocol header, or
 * `unknown`. Only the bytes given are looked at; nothing is kept but the
 * few short strings it returns.
 *
 * @module
 */
import { looksLikeProxyHeader } from "./proxy_protocol.ts";

/** The probe kinds, in a stable order (for metrics). */
export const PROBE_KINDS = [
  "tls",
  "http",
  "ssh",
  "rdp",
  "smb",
  "proxy",
  "unknown",
] as const;

/**
 * What a client's first bytes look like, in a bounded set (a metric label):
 * `tls`, `http`, `ssh`, `rdp`, `smb`, `proxy` (a PROXY protocol header on a
 * port that expects none) or `unknown`.
 *
 * @example Usage
 * ```ts
 * import { PROBE_KINDS, type ProbeKind } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const kind: ProbeKind = "http";
 * assertEquals(PROBE_KINDS.includes(kind), true);
 * ```
 */
export type ProbeKind = typeof PROBE_KINDS[number];

/**
 * What a client's first bytes were taken for, with what could be read of
 * them; see {@linkcode identifyProbe}.
 *
 * @example Usage
 * ```ts
 * import { identifyProbe, type Probe } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const probe: Probe = identifyProbe(
 *   new TextEncoder().encode("GET /index.html HTTP/1.1\r\n"),
 * );
 * assertEquals(probe, {
 *   kind: "http",
 *   method: "GET",
 *   path: "/index.html",
 *   version: "1.1",
 * });
 * ```
 */
export interface Probe {
  /** The kind. */
  kind: ProbeKind;
  /** `tls`: the server name (SNI) the ClientHello asked for. */
  serverName?: string;
  /** `http`: the request method. */
  method?: string;
  /** `http`: the request target's path, without its query. */
  path?: string;
  /** `http`: the query, without its `?`, when the target has one. */
  query?: string;
  /**
   * `http`: the protocol version (`1.1`); `ssh`: the client's whole version
   * line (`SSH-2.0-OpenSSH_9.2p1 Debian-2`).
   */
  version?: string;
  /** `http`: the User-Agent header, when the bytes hold it. */
  userAgent?: string;
}

/** The longest string kept from a probe (a path, a header). */
const MAX_FIELD = 256;
const LATIN1 = new TextDecoder("latin1");

/** An HTTP request line: method, target, version. */
const REQUEST_LINE =
  /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|TRACE|CONNECT|PATCH|PRI|PROPFIND) (\S+) HTTP\/(\d(?:\.\d)?)\r?(?:\n|$)/;

/** Bytes `from` to `to` as Latin-1 text, at most {@linkcode MAX_FIELD} long. */
function latin1(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(
    ...bytes.subarray(from, Math.min(to, from + MAX_FIELD)),
  );
}

/**
 * The SNI host name of a TLS ClientHello record, if the bytes hold it
 * whole; every length is checked against the bytes there are.
 */
function serverName(bytes: Uint8Array): string | undefined {
  const u16 = (i: number) => (bytes[i] << 8) | bytes[i + 1];
  // Record header (5), handshake header (4), version (2), random (32).
  let i = 5 + 4 + 2 + 32;
  // Past the session id, cipher suites and compression methods, by their
  // lengths (of 1, 2 and 1 bytes), to the extensions' length.
  for (const width of [1, 2, 1]) {
    if (i + width > bytes.length) return undefined;
    i += width === 1 ? 1 + bytes[i] : 2 + u16(i);
  }
  if (i + 2 > bytes.length) return undefined;
  const end = Math.min(bytes.length, i + 2 + u16(i));
  i += 2;
  // Each extension: its type (2) and length (2), then its data.
  for (; i + 4 <= end; i += 4 + u16(i + 2)) {
    if (u16(i) !== 0) continue;
    // server_name: list length (2), name type (1), name length (2), name.
    const at = i + 4;
    if (at + 5 > end || bytes[at + 2] !== 0) return undefined;
    const nameLength = u16(at + 3);
    if (at + 5 + nameLength > end) return undefined;
    return latin1(bytes, at + 5, at + 5 + nameLength);
  }
  return undefined;
}

function http(bytes: Uint8Array): Probe | undefined {
  // Every method begins with a capital letter: others are not decoded.
  if (!(bytes[0] >= 0x41 && bytes[0] <= 0x5a)) return undefined;
  const head = LATIN1.decode(bytes.subarray(0, 4096));
  const match = REQUEST_LINE.exec(head);
  if (!match) return undefined;
  // The target cut to its longest, then split at its first "?".
  const [path, ...query] = match[2].slice(0, MAX_FIELD).split("?");
  const probe: Probe = {
    kind: "http",
    method: match[1],
    path,
    ...(query.length ? { query: query.join("?") } : {}),
    version: match[3],
  };
  // The User-Agent header, if it is among the bytes there are.
  const agent = /\nuser-agent:[ \t]*([^\r\n]*)\r?\n/i.exec(head);
  if (agent) probe.userAgent = agent[1].slice(0, MAX_FIELD);
  return probe;
}

/**
 * Names what a client's first bytes look like. Only `bytes` are looked at:
 * a message cut short may be named `unknown`, and a ClientHello whose SNI
 * lies beyond them has none.
 *
 * @example A TLS ClientHello, an SSH version line, and noise
 * ```ts
 * import { identifyProbe } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const ssh = new TextEncoder().encode("SSH-2.0-OpenSSH_9.2p1\r\n");
 * assertEquals(identifyProbe(ssh), {
 *   kind: "ssh",
 *   version: "SSH-2.0-OpenSSH_9.2p1",
 * });
 * assertEquals(identifyProbe(Uint8Array.of(1, 2, 3)).kind, "unknown");
 * ```
 */
export function identifyProbe(bytes: Uint8Array): Probe {
  // A byte past the end is undefined: no test below needs a length check.
  // TLS: a handshake record (22) of version 3.x holding a ClientHello (1).
  if (bytes[0] === 0x16 && bytes[1] === 0x03 && bytes[5] === 0x01) {
    const name = serverName(bytes);
    return { kind: "tls", ...(name === undefined ? {} : { serverName: name }) };
  }
  // SSLv2-style ClientHello (old scanners): a two-byte length, type 1.
  if ((bytes[0] & 0x80) !== 0 && bytes[2] === 0x01) return { kind: "tls" };
  if (latin1(bytes, 0, 4) === "SSH-") {
    // The version line: up to its CR or LF.
    const [version] = latin1(bytes, 0, MAX_FIELD).split(/[\r\n]/);
    return { kind: "ssh", version };
  }
  // RDP: a TPKT header (3, 0) carrying an X.224 connection request (0xe0).
  if (bytes[0] === 0x03 && bytes[1] === 0x00 && bytes[5] === 0xe0) {
    return { kind: "rdp" };
  }
  // SMB: a NetBIOS session message holding an SMB1 or SMB2 header.
  // (0xff: SMB1, 0xfe: SMB2; "SMB" after it.)
  const smb = bytes[0] === 0 && (bytes[4] | 1) === 0xff;
  if (smb && latin1(bytes, 5, 8) === "SMB") return { kind: "smb" };
  if (looksLikeProxyHeader(bytes)) return { kind: "proxy" };
  return http(bytes) ?? { kind: "unknown" };
}
