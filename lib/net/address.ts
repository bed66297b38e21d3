import { ValueError } from "./value_error.ts";
import { parseIp, unmapIpv4 } from "./ip.ts";
import { escapeControl } from "./escape.ts";

/** True if `addr` is an IP address and port (TCP or UDP), not a socket path. */
export function isNetAddr(addr: Deno.Addr): addr is Deno.NetAddr {
  return addr.transport === "tcp" || addr.transport === "udp";
}

/**
 * Formats a network address as `HOST:PORT`, with IPv6 hosts in brackets
 * (`[::1]:8080`) so the port cannot be mistaken for part of the host, and
 * IPv4 clients of a dual-stack listener shown as IPv4 (`127.0.0.1:5000`,
 * not `[::ffff:127.0.0.1]:5000`). A path or a host name is shown with its
 * control characters escaped, so it stays on its one line of a log.
 */
export function formatAddress(addr: Deno.Addr): string {
  if (isNetAddr(addr)) {
    const host = unmapIpv4(addr.hostname);
    const shown = escapeControl(host);
    return `${host.includes(":") ? `[${shown}]` : shown}:${addr.port}`;
  }
  if ("path" in addr) return escapeControl(addr.path) || "unix socket";
  return `${addr.transport}:${JSON.stringify(addr)}`;
}

/**
 * A host and port, as parsed by {@linkcode parseHostPort}: the host name or
 * IP literal (without IPv6 brackets) and the TCP port.
 */
export type HostPort = Pick<Deno.NetAddr, "hostname" | "port">;

/**
 * Parses a port number given as text.
 *
 * @throws {ValueError} If it is not a whole number from 0 to 65535.
 */
export function parsePort(text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new ValueError("port", text, "use a whole number from 0 to 65535");
  }
  return Number(text);
}

/**
 * Parses `[HOST][:PORT]`: `example.com`, `:8080`, `127.0.0.1:8080`,
 * `[::1]:8080`, or a bare IPv6 address such as `::1`. Missing parts come
 * from `defaults`.
 *
 * @throws {ValueError} If the port is invalid or the brackets do not match.
 */
export function parseHostPort(spec: string, defaults: HostPort): HostPort {
  const match = HOST_PORT.exec(spec);
  if (!match && /[[\]]/.test(spec)) {
    throw new ValueError("address", spec, "write IPv6 addresses as [::1]:8080");
  }
  // Neither form: a bare IPv6 address, which no port can follow.
  if (!match && !parseIp(spec)) {
    const how = "write HOST:PORT, or an IPv6 address as [::1]:8080";
    throw new ValueError("address", spec, how);
  }
  // The bare IPv6 address is the host.
  const [, bracketed, bracketedPort, plain = spec, plainPort] = match ?? [];
  const portText = bracketedPort ?? plainPort;
  // `:PORT` alone keeps the default host.
  const hostname = bracketed ??
    (plain === "" && portText !== undefined ? defaults.hostname : plain);
  const port = portText === undefined ? defaults.port : parsePort(portText);
  if (hostname === "") {
    throw new ValueError("address", spec, "the host is empty");
  }
  return { hostname, port };
}

/**
 * `[HOST]` then any `:PORT` on the same line, or a HOST without colons or
 * brackets then a `:PORT` without them.
 */
const HOST_PORT = /^(?:\[([^\]]*)\](?::(.*))?|([^:[\]]*)(?::([^:[\]]*))?)$/;
