import { ExitError, UsageError } from "./flags.ts";
import { ListenError } from "../server/listeners.ts";
import { DescriptorError } from "../server/descriptor_listener.ts";
import { GreetingTimeoutError } from "../client/read_greeting.ts";
import { escapeControl, quote } from "../net/escape.ts";
import { EncodingError } from "../greeting/template.ts";
import { DecodeError } from "../greeting/message_file.ts";

/** Exit code for a failure while running. */
export const EXIT_FAILURE = 1;

/** The text with its first letter in lower case, to follow a colon. */
export function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/**
 * Throws the one-line explanation of a failure to listen (a
 * {@linkcode ListenError}; anything else is thrown as it is).
 *
 * @param flag The flag whose address it was: `--host` (the default) for the
 * greeting's listeners, `--metrics` for the metrics endpoint. The advice
 * names it.
 * @param portFlag For the greeting's listeners, the port flag as the user
 * spelt it (`-p` or `--port`).
 */
export function explainListen(
  error: unknown,
  flag = "--host",
  portFlag = "--port",
): never {
  if (!(error instanceof ListenError)) throw error;
  const { cause, address, port } = error;
  const prefix = `Cannot listen on ${escapeControl(address)}`;
  const reason = cause instanceof Deno.errors.AddrInUse
    ? "the address is already in use; stop the other server or " +
      // The metrics endpoint has one flag for host and port alike.
      (flag === "--metrics"
        ? "choose another --metrics address (port 0 picks a free one)"
        : `choose another ${portFlag} (0 picks a free one)`)
    : cause instanceof Deno.errors.PermissionDenied
    ? "permission denied" +
      (port > 0 && port < 1024
        ? `; port ${port} is privileged: use a port above 1023, run as ` +
          "root, or grant CAP_NET_BIND_SERVICE"
        : "")
    : cause instanceof Deno.errors.AddrNotAvailable
    ? "that address is not on this machine; use 0.0.0.0, ::, or one of " +
      "its own addresses"
    : cause instanceof DescriptorError
    ? "it is not a listening TCP or Unix stream socket; pass sockets of " +
      "ListenStream= (LISTEN_FDS counts those from descriptor 3 on)"
    : cause instanceof Error && /lookup address/.test(cause.message)
    ? `the host name does not resolve; check ${flag}`
    : undefined;
  // A missing permission (NotCapable) is explainError's to say.
  throw explained(cause, prefix, reason);
}

/**
 * Explains why connecting to or reading from `address` failed, as the
 * ExitError that ends the command; `how` is the command's transport
 * (`--tls`, `--ca`), which the advice names.
 */
export function explainConnectError(
  error: unknown,
  address: string,
  how: { tls?: boolean; ca?: string } = {},
): ExitError {
  const prefix = `Cannot connect to ${address}`;
  const reason = error instanceof Deno.errors.ConnectionRefused
    ? "connection refused; is greeter running there?"
    : error instanceof Deno.errors.TimedOut
    ? "timed out; is the host up and the port open?"
    : error instanceof GreetingTimeoutError
    ? lowerFirst(error.message) +
      (!error.connected
        ? how.tls
          ? "; is the host up, the port open, and does it speak TLS?"
          : "; is the host up and the port open?"
        : error.received === 0 && !how.tls
        ? "; if the server speaks TLS add --tls, otherwise try a longer --timeout"
        : "; try a longer --timeout")
    : error instanceof Error && /invalid peer certificate/.test(error.message)
    ? "the server's TLS certificate is not trusted (" +
      (/: (\w+)\W*$/.exec(error.message)?.[1] ?? "invalid") +
      (how.ca !== undefined
        ? "): the --ca file does not vouch for it (a self-signed certificate " +
          "must be its own CA: give that certificate with --ca, or skip the " +
          "check with --insecure)"
        : "): give its CA with --ca FILE, or skip the check with --insecure")
    : error instanceof Deno.errors.ConnectionReset
    ? "the server reset the connection"
    : error instanceof Error && /lookup address/.test(error.message)
    ? "the host name does not resolve"
    : error instanceof Error && /unreachable/i.test(error.message)
    ? "the network or host is unreachable"
    : undefined;
  // A missing permission (NotCapable) is explainError's to say.
  return explained(error, prefix, reason);
}

/**
 * `prefix: reason`, a runtime error; any error explained if no reason: as
 * the ExitError that ends the command.
 */
function explained(error: unknown, prefix: string, reason?: string) {
  const { message, exitCode } = reason === undefined
    ? explainError(error, prefix)
    : { message: `${prefix}: ${reason}`, exitCode: EXIT_FAILURE };
  return new ExitError(message, exitCode);
}

/**
 * Explains any error: an {@linkcode ExitError} is its own explanation (a
 * {@linkcode UsageError}, exit 2, among them); anything else is a runtime error
 * with its message on one line: the whole message, line breaks and other
 * controls escaped (see {@linkcode escapeControl}).
 */
export function explainError(error: unknown, prefix?: string) {
  if (error instanceof ExitError) return error;
  const text = error instanceof Error ? error.message : String(error);
  // A missing permission: which, and the flag of deno run that grants it.
  const flag = /--allow-[a-z]+/.exec(text)?.[0] ?? "--allow-net";
  const what = /Requires (.*?), run again/.exec(text)?.[1];
  const shown = what ? ` (${what})` : "";
  const line = error instanceof Deno.errors.NotCapable
    ? `missing permission${shown}: run deno again with ${flag}`
    : escapeControl(text.replace(/ \(os error \d+\)$/, ""));
  const message = prefix ? `${prefix}: ${lowerFirst(line)}` : line;
  return { message, exitCode: EXIT_FAILURE };
}

/**
 * A greeting the library refuses is a usage error, with the flag's advice:
 * the message's own, of `file` if it came from one, or the value of `flag`.
 */
export function asUsageError<T>(
  make: () => T,
  file?: string,
  flag?: string,
): T {
  try {
    return make();
  } catch (error) {
    const kinds = [RangeError, SyntaxError, TypeError];
    if (!kinds.some((Kind) => error instanceof Kind)) throw error;
    // The library says what is wrong, the CLI which flag to change.
    const message = (error as Error).message +
      (error instanceof EncodingError && error.encoding !== "utf-8"
        ? ": use --encoding utf-8"
        : error instanceof DecodeError && error.offset >= 0
        ? ": use --encoding utf-8 or latin1"
        : "");
    throw new UsageError(
      flag !== undefined
        ? `Invalid value for ${flag}: ${lowerFirst(message)}`
        : message + (file === undefined ? "" : ` (${quote(file)})`),
    );
  }
}
