import { parseHostPort } from "../net/address.ts";
import {
  type FlagSpec,
  lastValue,
  type ParsedFlags,
  UsageError,
} from "./flags.ts";
import { DEFAULT_PORT } from "../server/options.ts";

/**
 * Parses a client command's `[HOST][:PORT]` argument (default
 * `localhost:8080`).
 *
 * @throws {UsageError} For a bad address or more than one argument.
 */
export function parseTarget(
  positionals: string[],
  command: string,
): { hostname: string; port: number } {
  if (positionals.length > 1) {
    throw new UsageError(
      `Unexpected argument ${
        JSON.stringify(positionals[1])
      }: ${command} takes one ` +
        "[HOST][:PORT]",
    );
  }
  const defaults = { hostname: "localhost", port: DEFAULT_PORT };
  try {
    return positionals.length === 0
      ? defaults
      : parseHostPort(positionals[0], defaults);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** How a client command reaches the server: TLS, a CA, or a Unix socket. */
export interface ClientTransport {
  /** Connect to a Unix socket instead. */
  unix?: string;
  /** Speak TLS. */
  tls: boolean;
  /** A CA certificate file to verify the server with. */
  ca?: string;
  /** Skip certificate verification. */
  insecure: boolean;
}

/** The flags `connect` and `check` share for reaching the server. */
export const CLIENT_TRANSPORT_FLAGS: FlagSpec[] = [
  { name: "tls", help: "Connect over TLS, verifying the certificate" },
  {
    name: "ca",
    value: "FILE",
    help: "Trust this PEM CA certificate (with --tls)",
  },
  {
    name: "insecure",
    help: "With --tls, do not verify the certificate",
  },
  {
    name: "unix",
    value: "PATH",
    help: "Connect to a Unix socket instead of HOST:PORT",
  },
];

/**
 * Reads {@linkcode CLIENT_TRANSPORT_FLAGS} from parsed flags.
 *
 * @throws {UsageError} For flags that do not go together.
 */
export function parseClientTransport(flags: ParsedFlags): ClientTransport {
  const tls = flags.switches.has("tls");
  const ca = lastValue(flags, "ca");
  const insecure = flags.switches.has("insecure");
  if (!tls && (ca !== undefined || insecure)) {
    throw new UsageError("--ca and --insecure go with --tls");
  }
  if (ca !== undefined && insecure) {
    throw new UsageError("--ca and --insecure cannot be used together");
  }
  const unix = lastValue(flags, "unix");
  if (unix !== undefined && (tls || flags.positionals.length > 0)) {
    throw new UsageError(
      "--unix connects to a socket file: drop HOST:PORT and --tls",
    );
  }
  return { unix, tls, ca, insecure };
}
