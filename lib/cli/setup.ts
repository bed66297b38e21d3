import type { ServeCommand } from "./commands/serve.ts";
import { type ClientTransport, UsageError } from "./flags.ts";
import type { ClientTlsOptions } from "../client/read_greeting.ts";
import {
  DEFAULT_MESSAGE,
  encodeGreeting,
  EncodingError,
} from "../greeting/encode.ts";
import { DecodeError, decodeMessageFile } from "../greeting/message_file.ts";
import { presetGreeting, type PresetName } from "../greeting/presets.ts";
import {
  DEFAULT_FILE_LIMIT,
  DEFAULT_QUOTES_LIMIT,
  readInputFile,
} from "./read_file.ts";
import { quote } from "../observe/escape.ts";
import { checkCertificateAndKey } from "../server/tls_listener.ts";
import type {
  ListenTarget,
  ReloadOptions,
  ServeGreetingOptions,
  TlsOptions,
} from "../server/options.ts";
import { compileTemplate, type GreetingSource } from "../greeting/template.ts";
import { prepareUnixSocket } from "../net/unix_socket.ts";
import { type Cidr, parseCidr } from "../net/ip.ts";
import { ValueError } from "../net/value_error.ts";
import {
  type AddressMask,
  createAddressMask,
  MIN_ADDRESS_KEY_BYTES,
} from "../net/address_privacy.ts";

/**
 * The address mask of `--log-address`, with `--log-key-file` read (at
 * start, and again on every reload, so keys can rotate); undefined for
 * `full`.
 *
 * @throws {UsageError} For a key file that cannot be read or is too short.
 */
async function loadAddressMask(
  command: ServeCommand,
  files: FileSnapshot,
): Promise<AddressMask | undefined> {
  if (command.logAddress === undefined) return undefined;
  if (command.logAddress === "truncate") {
    return await createAddressMask({ mode: "truncate" });
  }
  const path = command.logKeyFile!;
  const key = await readFile(
    files,
    path,
    "log key file",
    command.maxFileSize ?? DEFAULT_FILE_LIMIT,
  );
  if (key.length < MIN_ADDRESS_KEY_BYTES) {
    throw new UsageError(
      `The log key file ${quote(path)} holds ${key.length} byte${
        key.length === 1 ? "" : "s"
      }: --log-address hash needs at least ${MIN_ADDRESS_KEY_BYTES} ` +
        `secret bytes (head -c 32 /dev/urandom > ${quote(path)})`,
    );
  }
  return await createAddressMask({ mode: "hash", key });
}

/**
 * The advice the CLI adds to a greeting error: the library says what is
 * wrong, the CLI says which flag fixes it.
 */
export function greetingErrorMessage(error: Error): string {
  if (error instanceof EncodingError && error.encoding !== "utf-8") {
    return `${error.message}: use --encoding utf-8`;
  }
  if (error instanceof DecodeError && error.offset >= 0) {
    return `${error.message}: use --encoding utf-8 or latin1`;
  }
  return error.message;
}

/** A greeting the library refuses is a usage error, with the flag's advice. */
function asUsageError<T>(make: () => T, file?: string): T {
  try {
    return make();
  } catch (error) {
    if (
      error instanceof RangeError || error instanceof SyntaxError ||
      error instanceof TypeError
    ) {
      const where = file === undefined ? "" : ` (${quote(file)})`;
      throw new UsageError(greetingErrorMessage(error) + where);
    }
    throw error;
  }
}

/**
 * The bytes of every file one preparation read, by path. The main thread
 * reads the files once and hands this to its workers, which prepare from it
 * and read nothing: every worker serves exactly what the main thread
 * checked, even if a file changes meanwhile.
 */
export type FileSnapshot = Map<string, Uint8Array>;

/** A file's bytes from `files`, or read (within `limit`) and kept there. */
async function readFile(
  files: FileSnapshot,
  path: string,
  what: string,
  limit: number,
): Promise<Uint8Array> {
  const known = files.get(path);
  if (known) return known;
  const bytes = await readInputFile(path, what, limit);
  files.set(path, bytes);
  return bytes;
}

/**
 * Builds the greeting of `--preset`, reading and checking `--quotes-file`.
 *
 * @throws {UsageError} For an unknown preset, `qotd` without a quotes file
 * (or a quotes file with another preset), or a quotes file that cannot be
 * read or breaks RFC 865; the message names the file.
 */
export async function loadPreset(
  preset: PresetName,
  { quotesFile, maxFileSize, files = new Map() }: {
    quotesFile?: string;
    maxFileSize?: number;
    files?: FileSnapshot;
  } = {},
): Promise<GreetingSource> {
  if (preset !== "qotd" && quotesFile !== undefined) {
    throw new UsageError(
      `--quotes-file only applies to --preset qotd, not --preset ${preset}`,
    );
  }
  if (preset === "qotd" && quotesFile === undefined) {
    throw new UsageError(
      "--preset qotd needs --quotes-file PATH: a file with one quote per " +
        'line, or quotes separated by lines holding only "%"',
    );
  }
  const bytes = quotesFile === undefined ? undefined : await readFile(
    files,
    quotesFile,
    "quotes file",
    maxFileSize ?? DEFAULT_QUOTES_LIMIT,
  );
  return asUsageError(() => presetGreeting(preset, bytes), quotesFile);
}

async function loadGreeting(
  command: ServeCommand,
  files: FileSnapshot,
): Promise<GreetingSource> {
  const { preset, quotesFile, maxFileSize } = command;
  if (preset) {
    return await loadPreset(preset, { quotesFile, maxFileSize, files });
  }
  if (quotesFile !== undefined) {
    throw new UsageError("--quotes-file goes with --preset qotd");
  }
  let message = command.message ?? DEFAULT_MESSAGE;
  if (command.messageFile !== undefined) {
    const bytes = await readFile(
      files,
      command.messageFile,
      "message file",
      command.maxFileSize ?? DEFAULT_FILE_LIMIT,
    );
    message = asUsageError(
      () => decodeMessageFile(bytes, command.encoding),
      command.messageFile,
    );
  }
  return asUsageError(() => compileTemplate(message, command));
}

async function loadTls(
  command: ServeCommand,
  files: FileSnapshot,
): Promise<TlsOptions | undefined> {
  if (command.tlsCert === undefined || command.tlsKey === undefined) {
    return undefined;
  }
  const decoder = new TextDecoder();
  const limit = command.maxFileSize ?? DEFAULT_FILE_LIMIT;
  const [cert, key] = await Promise.all([
    readFile(files, command.tlsCert, "TLS certificate", limit),
    readFile(files, command.tlsKey, "TLS key", limit),
  ]);
  const tls = { cert: decoder.decode(cert), key: decoder.decode(key) };
  // Checked here, so a file that is not a certificate or a key that does
  // not match is reported as the bad value it is, not as a failure to
  // listen (or, on a reload, the old pair stays).
  try {
    await checkCertificateAndKey(tls.cert, tls.key);
  } catch (error) {
    throw new UsageError(
      `Invalid TLS certificate or key (--tls-cert ${
        quote(command.tlsCert)
      }, --tls-key ${quote(command.tlsKey)}): ${(error as Error).message}`,
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
  files: FileSnapshot = new Map(),
): Promise<ServeGreetingOptions> {
  const greeting = await loadGreeting(command, files);
  const refuseMessage = command.refuseMessage === undefined
    ? undefined
    : asUsageError(() => encodeGreeting(command.refuseMessage!, command));
  const tls = await loadTls(command, files);
  const listen = await listenTargets(command, tls);
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
    ...await loadRules(command, files),
    ...(command.proxyFrom
      ? { proxyProtocol: { from: command.proxyFrom } }
      : {}),
    greetPause: command.greetPause,
    earlyTalkers: command.earlyTalkers,
    capture: command.capture,
    maskAddress: await loadAddressMask(command, files),
    ...(command.tarpit ? { tarpit: command.tarpit } : {}),
  };
}

/**
 * Where to listen: the sockets a service manager passed, or else every
 * --host with every --port, and every --unix path (readied).
 */
async function listenTargets(
  command: ServeCommand,
  tls: TlsOptions | undefined,
): Promise<ListenTarget[]> {
  if (command.passed) {
    return command.passed.greeting.map((fd) => ({
      transport: "fd" as const,
      fd,
      tls,
    }));
  }
  for (const path of command.unix) await prepareUnixSocket(path);
  return [
    ...command.hosts.flatMap((hostname) =>
      command.ports.map((port) => ({ hostname, port, tls }))
    ),
    ...command.unix.map((path) => ({ transport: "unix" as const, path })),
  ];
}

/** The TLS options of a client command, with its --ca file read. */
export async function clientTls(
  transport: ClientTransport,
): Promise<false | ClientTlsOptions> {
  if (!transport.tls) return false;
  const caCerts = transport.ca === undefined ? undefined : [
    new TextDecoder().decode(
      await readInputFile(
        transport.ca,
        "CA file",
        transport.maxFileSize ?? DEFAULT_FILE_LIMIT,
      ),
    ),
  ];
  return { caCerts, insecure: transport.insecure };
}

/**
 * What a reload (SIGHUP) replaces: the greeting and the refuse message, with
 * the message, quotes and TLS files read again and checked in full. The
 * access rules and limits come from flags, which a reload cannot change:
 * they stay, and so do their per-address counts.
 *
 * @throws {UsageError} For a file that cannot be read or is invalid now.
 */
export async function prepareReload(
  command: ServeCommand,
  files: FileSnapshot = new Map(),
): Promise<ReloadOptions> {
  const greeting = await loadGreeting(command, files);
  const refuseMessage = command.refuseMessage === undefined
    ? undefined
    : asUsageError(() => encodeGreeting(command.refuseMessage!, command));
  const tls = await loadTls(command, files);
  // Lists from files are read again; lists from flags alone cannot change,
  // and are left as they are (with the per-IP counts).
  const rules = command.allowFiles.length || command.denyFiles.length
    ? await loadRules(command, files)
    : {};
  const maskAddress = await loadAddressMask(command, files);
  return {
    greeting,
    refuseMessage,
    ...(tls ? { tls } : {}),
    ...rules,
    maskAddress,
  };
}

/**
 * The blocks of `--allow-file` or `--deny-file`: one per line, blank lines
 * and `#` comments skipped.
 *
 * @throws {UsageError} For a file that cannot be read, or a line that is
 * not a block, naming the file and the line.
 */
async function readCidrFiles(
  paths: string[],
  flag: string,
  limit: number,
  files: FileSnapshot,
): Promise<Cidr[]> {
  const blocks: Cidr[] = [];
  for (const path of paths) {
    const text = new TextDecoder().decode(
      await readFile(files, path, `${flag} file`, limit),
    );
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
}

/**
 * The allow and deny lists: the flags' blocks and those of their files. The
 * files are read at start and again on every reload.
 */
export async function loadRules(
  command: ServeCommand,
  files: FileSnapshot = new Map(),
): Promise<{ allow: Cidr[]; deny: Cidr[] }> {
  const limit = command.maxFileSize ?? DEFAULT_FILE_LIMIT;
  return {
    allow: [
      ...command.allow,
      ...await readCidrFiles(command.allowFiles, "--allow-file", limit, files),
    ],
    deny: [
      ...command.deny,
      ...await readCidrFiles(command.denyFiles, "--deny-file", limit, files),
    ],
  };
}
