import type { ServeCommand } from "./commands/serve.ts";
import { UsageError } from "./usage_error.ts";
import { DEFAULT_MESSAGE, encodeGreeting } from "../greeting/encode.ts";
import { readMessageFile } from "../greeting/message_file.ts";
import { loadPreset } from "../greeting/presets.ts";
import { readInputFile } from "./read_file.ts";
import type {
  ListenTarget,
  ServeGreetingOptions,
  TlsOptions,
} from "../server/options.ts";
import { compileTemplate, type GreetingSource } from "../greeting/template.ts";
import { prepareUnixSocket } from "../net/unix_socket.ts";

/** Text the greeting's encoding cannot carry is a usage error. */
function asUsageError<T>(make: () => T): T {
  try {
    return make();
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError(error.message);
    throw error;
  }
}

async function loadGreeting(command: ServeCommand): Promise<GreetingSource> {
  if (command.preset) {
    return await loadPreset(command.preset, { quotesFile: command.quotesFile });
  }
  if (command.quotesFile !== undefined) {
    throw new UsageError("--quotes-file goes with --preset qotd");
  }
  const message = command.messageFile === undefined
    ? command.message ?? DEFAULT_MESSAGE
    : await readMessageFile(command.messageFile, command.encoding);
  return asUsageError(() => compileTemplate(message, command));
}

async function loadTls(command: ServeCommand): Promise<TlsOptions | undefined> {
  if (command.tlsCert === undefined || command.tlsKey === undefined) {
    return undefined;
  }
  const decoder = new TextDecoder();
  const [cert, key] = await Promise.all([
    readInputFile(command.tlsCert, "TLS certificate"),
    readInputFile(command.tlsKey, "TLS key"),
  ]);
  const tls = { cert: decoder.decode(cert), key: decoder.decode(key) };
  // Try the pair once, so a file that is not a certificate or a key that
  // does not match is reported as the bad value it is, not as a failure to
  // listen.
  try {
    Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...tls }).close();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new UsageError(
      `Invalid TLS certificate or key (--tls-cert ${
        JSON.stringify(command.tlsCert)
      }, --tls-key ${JSON.stringify(command.tlsKey)}): ${
        (error as Error).message
      }`,
    );
  }
  return tls;
}

/**
 * Turns the serving command into server options: reads the message, quotes
 * and TLS files, compiles the template, and readies Unix socket paths. Done
 * before anything listens, so a bad file starts nothing.
 *
 * @throws {UsageError} For unreadable files or text the encoding cannot
 * carry.
 */
export async function prepareServe(
  command: ServeCommand,
): Promise<ServeGreetingOptions> {
  const greeting = await loadGreeting(command);
  const refuseMessage = command.refuseMessage === undefined
    ? undefined
    : asUsageError(() => encodeGreeting(command.refuseMessage!, command));
  const tls = await loadTls(command);
  for (const path of command.unix) await prepareUnixSocket(path);
  const listen: ListenTarget[] = [
    ...command.hosts.flatMap((hostname) =>
      command.ports.map((port) => ({ hostname, port, tls }))
    ),
    ...command.unix.map((path) => ({ transport: "unix" as const, path })),
  ];
  return {
    listen,
    greeting,
    refuseMessage,
    drainTimeout: command.drainTimeout,
    maxConnections: command.maxConnections,
    backlog: command.backlog,
    timeout: command.timeout,
    linger: command.linger,
    maxPerIp: command.maxPerIp,
    ratePerIp: command.ratePerIp,
    allow: command.allow,
    deny: command.deny,
  };
}
