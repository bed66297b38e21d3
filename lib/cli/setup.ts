/**
 * One configuration from flags and files: {@linkcode prepare} reads and
 * checks every file a serving command names, for the start and for every
 * reload; {@linkcode complete} makes the server's options of it, on the
 * main thread and in each worker alike.
 *
 * @module
 */
import type { ServeCommand } from "./commands/serve.ts";
import { type ClientTransport, UsageError } from "./flags.ts";
import { decodeMessageFile } from "../greeting/message_file.ts";
import { asUsageError } from "./explain.ts";
import { presetGreeting } from "../greeting/presets.ts";
import {
  DEFAULT_FILE_LIMIT,
  DEFAULT_QUOTES_LIMIT,
  readLimited,
  ReadLimitedError,
} from "./read_limited.ts";
import { quote } from "../net/escape.ts";
import { checkCertificateAndKey } from "../server/tls_listener.ts";
import type { ServeGreetingOptions, TlsOptions } from "../server/options.ts";
import { compileTemplate, DEFAULT_MESSAGE } from "../greeting/template.ts";
import { prepareUnixSocket } from "../net/unix_socket.ts";
import { parseCidr } from "../net/ip.ts";
import { ValueError } from "../net/value_error.ts";
import {
  createAddressMask,
  MIN_ADDRESS_KEY_BYTES,
} from "../net/address_privacy.ts";

/**
 * A configuration made from flags and files, as it crosses to a worker
 * (postMessage clones it): the server's options but the two that are
 * functions, and what those are made of, read and decoded once.
 */
export interface Prepared {
  /**
   * At start, every option but `greeting` and `maskAddress`; for a reload,
   * what a reload replaces (the rules only when files give some).
   */
  options: ServeGreetingOptions;
  /** The greeting's text, decoded from --message-file or given. */
  message?: string;
  /** The quotes file's bytes, for --preset qotd. */
  quotes?: Uint8Array;
  /** The --log-key-file's bytes. */
  key?: Uint8Array;
}

/**
 * Reads and checks every file the command names: the message, quotes, TLS,
 * rule and key files, and readies the Unix socket paths at start. Done
 * before anything listens, so a bad file starts nothing, and before a
 * reload swaps anything in, so a bad file leaves the old configuration.
 *
 * @param start True at start; false for a reload, whose options are what
 * a reload replaces.
 * @throws {UsageError} For a file that cannot be read or is invalid.
 */
export async function prepare(
  command: ServeCommand,
  start: boolean,
): Promise<Prepared> {
  const { files, greeting: { encoding } } = command;
  const limit = files.maxSize ?? DEFAULT_FILE_LIMIT;
  const read = (path: string | undefined, what: string, max = limit) =>
    path === undefined ? undefined : readInputFile(path, what, max);
  const quotesLimit = files.maxSize ?? DEFAULT_QUOTES_LIMIT;
  const quotes = await read(files.quotes, "quotes file", quotesLimit);
  const bytes = await read(files.message, "message file");
  const message = bytes === undefined
    ? command.greeting.message
    : asUsageError(() => decodeMessageFile(bytes, encoding), files.message);
  // Made here, so that a greeting the encoding cannot carry is said before
  // anything starts, and never by a worker (each thread makes its own in
  // complete(): a function cannot be posted).
  makeGreeting(command, { quotes, message });
  const { tlsCert, tlsKey } = files;
  let tls: TlsOptions | undefined;
  if (tlsCert !== undefined && tlsKey !== undefined) {
    // One after the other, so that with both unreadable the certificate's
    // error is the one said, every time.
    const cert = await readInputText(tlsCert, "TLS certificate", limit);
    const key = await readInputText(tlsKey, "TLS key", limit);
    // Checked here, so a file that is not a certificate or a key that does
    // not match is reported as the bad value it is, not as a failure to
    // listen (or, on a reload, the old pair stays).
    await checkCertificateAndKey(cert, key).catch((error) => {
      throw new UsageError(
        `Invalid TLS certificate or key (--tls-cert ${quote(tlsCert)}, ` +
          `--tls-key ${quote(tlsKey)}): ${error.message}`,
      );
    });
    tls = { cert, key };
  }
  // Lists from flags alone cannot change on a reload: they stay, with
  // their per-address counts. The files hold one block per line, blank
  // lines and `#` comments skipped; a bad line is named with its file.
  const rule = async (kind: "allow" | "deny") => {
    const flag = `--${kind}-file`;
    const blocks = [...command.options[kind] ?? []];
    for (const path of files[kind]) {
      const text = await readInputText(path, `${flag} file`, limit);
      text.split(/\r?\n/).forEach((raw, i) => {
        const line = raw.replace(/#.*/, "").trim();
        if (line === "") return;
        try {
          blocks.push(parseCidr(line));
        } catch (error) {
          if (!(error instanceof ValueError)) throw error;
          throw new UsageError(
            `Invalid CIDR ${quote(line)} at line ${i + 1} of ${flag} ` +
              `${quote(path)}: ${error.reason}`,
          );
        }
      });
    }
    return blocks;
  };
  const rules = start || files.allow.length > 0 || files.deny.length > 0
    ? { allow: await rule("allow"), deny: await rule("deny") }
    : {};
  const key = await read(files.logKey, "log key file");
  if (key !== undefined && key.length < MIN_ADDRESS_KEY_BYTES) {
    const path = quote(files.logKey!);
    const bytes = `${key.length} byte${key.length === 1 ? "" : "s"}`;
    const message = `The log key file ${path} holds ${bytes}: --log-address ` +
      `hash needs at least ${MIN_ADDRESS_KEY_BYTES} secret bytes (head -c 32 ` +
      `/dev/urandom > ${path})`;
    throw new UsageError(message);
  }
  const { listen = [], refuseMessage } = command.options;
  // For a reload, what a reload replaces.
  const replaced = { refuseMessage, ...(tls ? { tls } : {}), ...rules };
  if (!start) return { message, quotes, key, options: replaced };
  // At start, the server's options, its Unix socket paths readied.
  for (const target of listen) {
    if (target.transport === "unix") await prepareUnixSocket(target.path);
  }
  const served = listen.map((target) =>
    tls && target.transport !== "unix" ? { ...target, tls } : target
  );
  const options = { ...command.options, ...rules, listen: served };
  return { message, quotes, key, options };
}

function makeGreeting(
  command: ServeCommand,
  { quotes, message }: Pick<Prepared, "quotes" | "message">,
) {
  const { preset, encoding, lineEnding } = command.greeting;
  return preset
    ? asUsageError(() => presetGreeting(preset, quotes), command.files.quotes)
    : asUsageError(() =>
      compileTemplate(message ?? DEFAULT_MESSAGE, { encoding, lineEnding })
    );
}

/**
 * The server's options (or a reload's) of a prepared configuration: its
 * options with the greeting and the address mask made.
 */
export async function complete(
  command: ServeCommand,
  prepared: Prepared,
): Promise<ServeGreetingOptions> {
  const mode = command.log.address;
  return {
    ...prepared.options,
    greeting: makeGreeting(command, prepared),
    // Given even when undefined: a reload then keeps addresses whole.
    maskAddress: mode === undefined ? undefined : await createAddressMask(
      mode === "hash" ? { mode, key: prepared.key! } : { mode },
    ),
  };
}

/**
 * A client command's options for the library: the Unix socket as `path`,
 * and TLS (`false` without --tls) with its --ca file read.
 */
export async function clientOptions<T extends ClientTransport>(command: T) {
  const { tls, ca, insecure, maxFileSize, unix } = command;
  const caCerts = tls && ca !== undefined
    ? [await readInputText(ca, "CA file", maxFileSize)]
    : undefined;
  return { ...command, path: unix, tls: tls && { caCerts, insecure } };
}

/**
 * Reads a file named on the command line with {@linkcode readLimited}.
 *
 * @param what What the file is, for the error message ("quotes file").
 * @param limit The most bytes to read.
 * @throws {UsageError} `Cannot read <what> "<path>": <reason>` if it cannot
 * be read.
 */
export async function readInputFile(
  path: string,
  what: string,
  limit: number = DEFAULT_FILE_LIMIT,
): Promise<Uint8Array> {
  return await readLimited(path, limit).catch((error) => {
    // readLimited wraps every failure of its own; anything else is a bug.
    if (!(error instanceof ReadLimitedError)) throw error;
    const message = `Cannot read ${what} ${quote(path)}: ${error.message}`;
    throw new UsageError(message);
  });
}

/** {@linkcode readInputFile}, decoded as UTF-8. */
const readInputText = async (path: string, what: string, limit?: number) =>
  new TextDecoder().decode(await readInputFile(path, what, limit));
