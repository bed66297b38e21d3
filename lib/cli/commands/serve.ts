import { ValueError } from "../../net/value_error.ts";
import { parseHostPort, parsePort } from "../../net/address.ts";
import {
  COMMON_FLAGS,
  flagName,
  formatDuration,
  formatExamples,
  formatGroupedFlagHelp,
  formatSize,
  type GroupedFlagSpec,
  type InfoCommand,
  lastValue,
  maxFileSizeFlag,
  MIB,
  parseChoiceFlag,
  type ParsedFlags,
  parseDurationFlag,
  parseFlags,
  parseIntegerFlag,
  parsePositiveNumberFlag,
  parseSizeFlag,
  UsageError,
} from "../flags.ts";
import { escapeControl, quote } from "../../net/escape.ts";
import { DEFAULT_QUOTES_LIMIT } from "../read_limited.ts";
import {
  DEFAULT_MESSAGE,
  encodeGreeting,
  GREETING_ENCODINGS,
  type GreetingEncoding,
  LINE_ENDINGS,
  type LineEnding,
} from "../../greeting/encode.ts";
import { parseCidr, parseIp } from "../../net/ip.ts";
import { PRESET_NAMES, type PresetName } from "../../greeting/presets.ts";
import { LOG_FORMATS, type LogFormat } from "../../observe/log_format.ts";
import {
  ADDRESS_LOG_MODES,
  type AddressLogMode,
} from "../../net/address_privacy.ts";
import {
  DEFAULT_BACKLOG,
  DEFAULT_DRAIN_TIMEOUT,
  DEFAULT_HOSTNAME,
  DEFAULT_LINGER,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_PORT,
  DEFAULT_TIMEOUT,
  type ListenTarget,
  MAX_CAPTURE,
  type ServeGreetingOptions,
  TLS_HANDSHAKE_TIMEOUT,
} from "../../server/options.ts";
import { asUsageError } from "../explain.ts";
import {
  DEFAULT_TARPIT_INTERVAL,
  DEFAULT_TARPIT_LINE_LENGTH,
  MAX_TARPIT_LINE_LENGTH,
  MIN_HTTP_LINE_LENGTH,
  type ResolvedTarpit,
  TARPIT_STYLES,
} from "../../server/tarpit.ts";

/**
 * The serving command: the library's own options as the flags give them,
 * and the little that only the command line has. Files named by flags are
 * read by `prepare` (setup.ts), at start and on every reload.
 */
export interface ServeCommand {
  command: "serve";
  /**
   * The server's options from the flags alone. `listen` holds every --host
   * with every --port, then every --unix path (or the passed sockets);
   * `prepare` gives the TCP ones the TLS files and adds the greeting, the
   * address mask and the rules of the files.
   */
  options: ServeGreetingOptions;
  /** --message or --preset, with the encoding and line ending of both. */
  greeting: {
    message?: string;
    preset?: PresetName;
    encoding: GreetingEncoding;
    lineEnding: LineEnding;
  };
  /** The files named by flags, read at start and on every reload. */
  files: {
    message?: string;
    quotes?: string;
    tlsCert?: string;
    tlsKey?: string;
    allow: string[];
    deny: string[];
    /** --log-key-file, for --log-address hash. */
    logKey?: string;
    /** --max-file-size; absent for the defaults (16 MiB for quotes). */
    maxSize?: number;
  };
  /** How connections are logged; `auto` timestamps are settled at start. */
  log: {
    format: LogFormat;
    quiet: boolean;
    /** Connection lines per second from one source; 0 logs every one. */
    rate: number;
    timestamps: "auto" | "on" | "off";
    /** How client addresses are shown; absent for `full`. */
    address?: Exclude<AddressLogMode, "full">;
  };
  /** Where to serve metrics and /healthz: an address, or a passed socket. */
  metrics?: { hostname: string; port: number; fd?: number };
  /** Worker threads sharing the TCP ports; absent is 1: no worker. */
  workers?: number;
  /** The host and port flags as the user spelt them, for messages. */
  spelled: { host: string; port: string };
  /** --inetd (only when given). */
  inetd?: true;
  /** --socket-activation: the passed sockets must be there. */
  socketActivation?: true;
  /**
   * Set at start when the open-file limit could not be read, so the cap
   * was not fitted to it: the first EMFILE then says so.
   */
  fdLimitUnread?: true;
}
/** Connection lines logged per second from one source, by default. */
export const DEFAULT_LOG_RATE = 100;

const LOG_TIMESTAMPS = ["auto", "on", "off"] as const;

/** The most worker threads --workers accepts. */
export const MAX_WORKERS = 64;

/** The flags of the serving command. */
export const SERVE_FLAGS: GroupedFlagSpec[] = [
  {
    name: "host",
    group: "listening",
    short: "H",
    value: "HOST",
    repeatable: true,
    help: `Address to listen on (default ${DEFAULT_HOSTNAME}; :: for IPv6 ` +
      "and IPv4)",
  },
  {
    name: "port",
    group: "listening",
    short: "p",
    value: "PORT",
    repeatable: true,
    help: "TCP port 0-65535, or a range such as 8000-8010; 0 picks a free " +
      `one (default ${DEFAULT_PORT})`,
  },
  {
    name: "unix",
    group: "listening",
    value: "PATH",
    repeatable: true,
    help: "Listen on a Unix socket (a stale socket file is replaced)",
  },
  {
    name: "message",
    group: "greeting",
    short: "m",
    value: "TEXT",
    help: `Greeting text (default "${DEFAULT_MESSAGE}")`,
  },
  {
    name: "message-file",
    group: "greeting",
    value: "PATH",
    help: "Read the greeting text from a file (one trailing newline dropped)",
  },
  {
    name: "preset",
    group: "greeting",
    value: "daytime|qotd|time",
    help: "Serve a classic service: RFC 867 daytime, RFC 865 quote of the " +
      "day, RFC 868 time",
  },
  {
    name: "quotes-file",
    group: "greeting",
    value: "PATH",
    help: "Quotes for --preset qotd: one per line, or separated by % lines",
  },
  {
    name: "tls-cert",
    group: "listening",
    value: "FILE",
    help: "Serve over TLS with this PEM certificate chain (needs --tls-key)",
  },
  {
    name: "tls-key",
    group: "listening",
    value: "FILE",
    help: "The PEM private key for --tls-cert",
  },
  {
    name: "line-ending",
    group: "greeting",
    value: "crlf|lf|none",
    help: "What ends each line of the greeting (default crlf)",
  },
  {
    name: "encoding",
    group: "greeting",
    value: "ascii|utf-8|latin1",
    help: "Encoding of the greeting; text it cannot encode is an error " +
      "(default ascii)",
  },
  {
    name: "quiet",
    group: "logs",
    short: "q",
    help: "Do not print a line per connection",
  },
  {
    name: "log-format",
    group: "logs",
    value: "text|json",
    help: "Log lines for people (text) or one JSON object per line " +
      "(default text)",
  },
  {
    name: "log-rate",
    group: "logs",
    value: "N",
    help: "Connection lines per second from one address before the rest " +
      `are summarized; 0 logs every one (default ${DEFAULT_LOG_RATE})`,
  },
  {
    name: "log-timestamps",
    group: "logs",
    value: "auto|on|off",
    help: "Start each text line with an RFC 3339 time (default auto: on " +
      "when stdout is not a terminal and not journald)",
  },
  {
    name: "metrics",
    group: "logs",
    value: "[HOST:]PORT",
    help: "Serve Prometheus metrics (/metrics) and /healthz over HTTP here; " +
      "a port alone listens on 127.0.0.1",
  },
  {
    name: "log-address",
    group: "logs",
    value: "full|truncate|hash",
    help: "How log lines show a client's address: whole, cut to its /24 " +
      "(IPv6 /48), or a keyed pseudonym (needs --log-key-file); truncate " +
      "and hash drop the port; limits still use the real address " +
      "(default full)",
  },
  {
    name: "log-key-file",
    group: "logs",
    value: "PATH",
    help: "The secret key of --log-address hash (16 bytes or more, such " +
      "as head -c 32 /dev/urandom); read again on SIGHUP",
  },
  {
    name: "greet-pause",
    group: "sensor",
    value: "DURATION",
    help: "Wait this long before greeting; a client that sends anything " +
      "meanwhile is an early talker (scanners and bots talk first), " +
      "counted and logged with what its first bytes look like",
  },
  {
    name: "early-talkers",
    group: "sensor",
    value: "greet|refuse",
    help: "What becomes of an early talker: greeted all the same, or " +
      "refused without the greeting (default refuse; needs --greet-pause)",
  },
  {
    name: "capture",
    group: "sensor",
    value: "BYTES",
    help: "Log the first BYTES (at most " + MAX_CAPTURE + ") a client " +
      "sends, before or after the greeting, escaped (and base64 in JSON)",
  },
  {
    name: "max-connections",
    group: "limits",
    value: "N",
    help: "Connections served at once; beyond it clients wait in the " +
      `backlog (default ${DEFAULT_MAX_CONNECTIONS})`,
  },
  {
    name: "backlog",
    group: "limits",
    value: "N",
    help: "Length of the kernel's queue of pending connections " +
      "(default: as long as the kernel allows, net.core.somaxconn)",
  },
  {
    name: "timeout",
    group: "limits",
    value: "DURATION",
    help: "Longest life of one connection, such as 500ms, 10s or 2m (a " +
      `number alone is milliseconds); 0 for none, though a TLS handshake ` +
      `still ends after ${formatDuration(TLS_HANDSHAKE_TIMEOUT)} (default ${
        formatDuration(DEFAULT_TIMEOUT)
      })`,
  },
  {
    name: "linger",
    group: "limits",
    value: "DURATION",
    help: "After the greeting, wait this long for the client to close " +
      `before closing; 0 closes at once (default ${
        formatDuration(DEFAULT_LINGER)
      })`,
  },
  {
    name: "drain-timeout",
    group: "limits",
    value: "DURATION",
    help: "On shutdown, how long in-flight greetings may finish " +
      `(default ${formatDuration(DEFAULT_DRAIN_TIMEOUT)})`,
  },
  {
    name: "max-per-ip",
    group: "limits",
    value: "N",
    help: "Connections open at once from one address (IPv6: one /64)",
  },
  {
    name: "rate-per-ip",
    group: "limits",
    value: "R",
    help: "New connections per second from one address (IPv6: one /64)",
  },
  {
    name: "refuse-message",
    group: "limits",
    value: "TEXT",
    help: "Sent to refused clients instead of closing them silently",
  },
  {
    name: "allow",
    group: "limits",
    value: "CIDR",
    repeatable: true,
    help: "Serve only these addresses (e.g. 10.0.0.0/8, ::1)",
  },
  {
    name: "deny",
    group: "limits",
    value: "CIDR",
    repeatable: true,
    help: "Refuse these addresses; deny wins over allow",
  },
  {
    name: "allow-file",
    group: "limits",
    value: "PATH",
    repeatable: true,
    help: "More --allow blocks, one per line (# comments); read again on " +
      "SIGHUP",
  },
  {
    name: "deny-file",
    group: "limits",
    value: "PATH",
    repeatable: true,
    help: "More --deny blocks, one per line (# comments); read again on " +
      "SIGHUP",
  },
  {
    name: "proxy-protocol",
    group: "fleet",
    help: "Read a PROXY protocol header (v1 or v2) from a load balancer " +
      "before greeting; the client it names is the one logged, limited " +
      "and matched by --allow/--deny (needs --proxy-from)",
  },
  {
    name: "proxy-from",
    group: "fleet",
    value: "CIDR",
    repeatable: true,
    help: "A load balancer that may send the header; connections from " +
      "other peers are refused",
  },
  {
    name: "inetd",
    group: "listening",
    help: "Greet the one client on stdin and stdout, then exit: for " +
      "inetd, xinetd, tcpserver, socat EXEC: and systemd Accept=yes; the " +
      "client's address comes from TCPREMOTEIP/TCPREMOTEPORT, REMOTE_ADDR/" +
      "REMOTE_PORT or the socket, and the connection line goes to stderr",
  },
  {
    name: "socket-activation",
    group: "listening",
    help: "Serve the listening sockets a service manager passed (systemd " +
      "LISTEN_FDS, from fd 3) instead of --host, --port and --unix; a " +
      'socket named "metrics" (LISTEN_FDNAMES) serves --metrics. On by ' +
      "itself when LISTEN_PID is greeter's; with this flag, an error " +
      "without them",
  },
  {
    name: "tarpit",
    group: "greeting",
    help: "Hold every admitted client with a never-ending banner, a little " +
      "every --tarpit-interval, until it leaves; --timeout then defaults " +
      "to 0 (never)",
  },
  {
    name: "tarpit-style",
    group: "greeting",
    value: "ssh|greeting|http",
    help: "What --tarpit sends: random lines that keep SSH clients waiting " +
      "for the version line, the greeting dripped and repeated, or an " +
      "HTTP status line and endless headers (default ssh)",
  },
  {
    name: "tarpit-interval",
    group: "greeting",
    value: "DURATION",
    help: "How often --tarpit sends each client a line " +
      `(default ${formatDuration(DEFAULT_TARPIT_INTERVAL)})`,
  },
  {
    name: "tarpit-line-length",
    group: "greeting",
    value: "N",
    help: `Longest --tarpit line, CRLF included (3-${MAX_TARPIT_LINE_LENGTH}` +
      `, ${MIN_HTTP_LINE_LENGTH} at least for http); for the greeting ` +
      "style, bytes sent per interval " +
      `(default ${DEFAULT_TARPIT_LINE_LENGTH})`,
  },
  {
    name: "workers",
    group: "fleet",
    value: "N",
    help: "Serve from N threads sharing the ports (Linux SO_REUSEPORT, " +
      "deno run --unstable-net); --max-connections, --max-per-ip, " +
      "--rate-per-ip and --log-rate then apply per worker (default 1, " +
      `at most ${MAX_WORKERS})`,
  },
  {
    ...maxFileSizeFlag("each file named by a flag"),
    group: "process",
    help: "The most bytes read from each file named by a flag, in bytes or " +
      `with a unit such as 4MiB (default ${formatSize(MIB)}; ` +
      `${formatSize(DEFAULT_QUOTES_LIMIT)} for --quotes-file)`,
  },
  ...COMMON_FLAGS,
];

/** The text of `greeter --help`. */
export function serveHelp(): string {
  return `greeter: a TCP server that greets every client and closes the connection

Usage:
  greeter [OPTIONS]                  Serve the greeting
  greeter connect [HOST][:PORT]      Print what a greeter server sends
                                     (default localhost:${DEFAULT_PORT})
  greeter check [HOST][:PORT]        Health probe: exit 0 if the greeting
                                     is exactly as expected

${formatGroupedFlagHelp(SERVE_FLAGS)}

Durations take a unit (250ms, 5s, 2m, 1h); a number alone is milliseconds.
Run "greeter connect --help" and "greeter check --help" for their options.
Signals: SIGINT or SIGTERM drains and stops, SIGHUP re-reads the files,
SIGUSR2 prints a stats line. Under deno run, plain TCP needs --allow-net.
Exit codes: 0 success, 1 runtime error, 2 usage error.

${
    formatExamples([
      ["greeter --port 2323", "Greet every client on port 2323"],
      [
        "greeter --preset daytime --port 1313",
        "Serve the time of day (RFC 867) on port 1313",
      ],
      [
        "greeter --tls-cert cert.pem --tls-key key.pem",
        "Greet over TLS with this certificate and key",
      ],
      [
        "greeter --metrics 9464",
        "Also serve metrics on http://127.0.0.1:9464/metrics",
      ],
    ])
  }`;
}

/** The metrics endpoint's default address, when --metrics gives no host. */
const DEFAULT_METRICS = { hostname: "127.0.0.1", port: 9464 };

/**
 * Parses --metrics: `HOST:PORT`, `HOST`, `:PORT`, or a port alone, which
 * listens on the default host (a number is never a host name here).
 */
function parseMetricsAddress(
  text: string,
  flag: string,
): { hostname: string; port: number } {
  // "9464x": a port mistyped, not a host to look up.
  if (/^\d/.test(text) && !/^\d+$/.test(text) && !/[.:]/.test(text)) {
    throw new UsageError(
      `Invalid value ${quote(text)} for ${flag}: not a port; write PORT, ` +
        "HOST:PORT or :PORT, as in 9464 or 127.0.0.1:9464",
    );
  }
  try {
    return /^\d+$/.test(text)
      ? { hostname: DEFAULT_METRICS.hostname, port: parsePort(text) }
      : parseHostPort(text, DEFAULT_METRICS);
  } catch (error) {
    if (!(error instanceof ValueError)) throw error;
    throw new UsageError(
      `Invalid value ${quote(text)} for ${flag}: ${error.reason}`,
    );
  }
}

/** The most host and port pairs one process listens on. */
const MAX_LISTENERS = 1024;

/**
 * Parses a --port value: a port, or an inclusive range such as 8000-8010.
 *
 * @throws {UsageError} For anything else.
 */
function parsePortRange(text: string, flag: string): number[] {
  const range = /^(\d+)-(\d+)$/.exec(text);
  try {
    if (!range) return [parsePort(text)];
    const [first, last] = [parsePort(range[1]), parsePort(range[2])];
    if (first === 0 || first > last) {
      throw new ValueError(
        "port",
        text,
        "a range runs from a lower port to a higher one",
      );
    }
    if (last - first + 1 > MAX_LISTENERS) {
      throw new ValueError(
        "port",
        text,
        `a range has at most ${MAX_LISTENERS} ports`,
      );
    }
    return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  } catch (error) {
    if (!(error instanceof ValueError)) throw error;
    throw new UsageError(
      `Invalid value ${quote(text)} for ${flag}: ${error.reason}`,
    );
  }
}

/**
 * The same listener given twice would fail to listen as "address already
 * in use", blaming another server: said here as the usage error it is.
 * Port 0 is exempt (each picks its own free port).
 *
 * @throws {UsageError} Naming the duplicate and the flags that gave it.
 */
function checkDuplicates(
  flags: ParsedFlags,
  hostTexts: string[],
  portTexts: string[],
  ports: number[][],
  unix: string[],
): void {
  const seenHosts = new Map<string, number>();
  for (const [i, host] of hostTexts.entries()) {
    const key = hostKey(host);
    const first = seenHosts.get(key);
    if (first !== undefined) {
      throw new UsageError(
        `Host ${quote(host)} is given twice (${
          flagName(flags, "host", first)
        } ${escapeControl(hostTexts[first])} and ${
          flagName(flags, "host", i)
        } ${escapeControl(host)}): give each host once`,
      );
    }
    seenHosts.set(key, i);
  }
  // A wildcard host covers the specific ones of its family on every port
  // (whether :: also takes IPv4 depends on the system, so that is left to
  // the kernel to say).
  for (const [wildcard, family] of [["0.0.0.0", 4], ["::", 16]] as const) {
    const index = hostTexts.findIndex((host) => hostKey(host) === wildcard);
    if (index === -1) continue;
    const covered = hostTexts.findIndex((host, i) =>
      i !== index && parseIp(host)?.length === family
    );
    if (covered !== -1) {
      const wildcardFlag = `${flagName(flags, "host", index)} ${
        escapeControl(hostTexts[index])
      }`;
      const coveredFlag = `${flagName(flags, "host", covered)} ${
        escapeControl(hostTexts[covered])
      }`;
      throw new UsageError(
        `Host ${quote(hostTexts[index])} already listens on every IPv${
          family === 4 ? 4 : 6
        } address, ${quote(hostTexts[covered])} included: give either ` +
          `${wildcardFlag} or ${coveredFlag}, not both`,
      );
    }
  }
  const seenPorts = new Map<number, number>();
  for (const [i, list] of ports.entries()) {
    for (const port of list) {
      if (port === 0) continue;
      const first = seenPorts.get(port);
      if (first !== undefined) {
        throw new UsageError(
          `Port ${port} is given twice (${flagName(flags, "port", first)} ${
            escapeControl(portTexts[first])
          } and ${flagName(flags, "port", i)} ${
            escapeControl(portTexts[i])
          }): give each port once`,
        );
      }
      seenPorts.set(port, i);
    }
  }
  const seenPaths = new Set<string>();
  for (const path of unix) {
    const key = path.replace(/\/+/g, "/").replace(/(^|\/)(\.\/)+/g, "$1")
      .replace(/(.)\/$/, "$1");
    if (seenPaths.has(key)) {
      throw new UsageError(
        `Unix socket ${quote(path)} is given twice (${
          flagName(flags, "unix")
        }): give each path once`,
      );
    }
    seenPaths.add(key);
  }
}

/** A host as compared for duplicates: IPs by value, names by spelling. */
function hostKey(host: string): string {
  const bytes = parseIp(host);
  if (bytes === undefined) return host.toLowerCase().replace(/\.$/, "");
  if (bytes.length === 4) return bytes.join(".");
  return bytes.every((byte) => byte === 0) ? "::" : `[${bytes.join(",")}]`;
}

/**
 * The flags that keep their meaning with --inetd: the greeting, its
 * deadlines and the connection line. The others are about listening,
 * many clients or a long-running server.
 */
const INETD_FLAGS = new Set([
  "inetd",
  "message",
  "message-file",
  "preset",
  "quotes-file",
  "line-ending",
  "encoding",
  "quiet",
  "log-format",
  "log-timestamps",
  "timeout",
  "linger",
  "max-file-size",
]);

/**
 * @throws {UsageError} Naming every flag given that --inetd has no use
 * for.
 */
function checkInetdFlags(flags: ParsedFlags): void {
  // In the order given.
  const given = [...flags.spelled.keys()].filter((name) =>
    !INETD_FLAGS.has(name)
  );
  if (given.length === 0) return;
  const names = given.map((name) => flagName(flags, name));
  throw new UsageError(
    `--inetd greets the one client its host passed on stdin: ${
      names.join(", ")
    } ${names.length === 1 ? "has" : "have"} no meaning there; drop ${
      names.length === 1 ? "it" : "them"
    } (the ` +
      "host listens, limits and runs one greeter per client)",
  );
}

/**
 * Parses --tarpit and its --tarpit-* flags, which need it.
 *
 * @throws {UsageError} For a bad value, a --tarpit-* flag without
 * --tarpit, or --tarpit with several workers.
 */
function parseTarpit(
  flags: ParsedFlags,
  workers: number | undefined,
): ResolvedTarpit | undefined {
  const names = ["tarpit-style", "tarpit-interval", "tarpit-line-length"];
  if (!flags.switches.has("tarpit")) {
    const stray = names.find((name) => lastValue(flags, name) !== undefined);
    if (stray !== undefined) {
      throw new UsageError(`${flagName(flags, stray)} goes with --tarpit`);
    }
    return undefined;
  }
  if (workers !== undefined && workers > 1) {
    throw new UsageError(
      "--tarpit serves from one thread: drop --workers (a tarpit's work " +
        "is a write per client per interval, which one thread does for " +
        "tens of thousands)",
    );
  }
  const style = parseChoiceFlag(
    lastValue(flags, "tarpit-style") ?? "ssh",
    flagName(flags, "tarpit-style"),
    TARPIT_STYLES,
  );
  const intervalText = lastValue(flags, "tarpit-interval");
  const lengthText = lastValue(flags, "tarpit-line-length");
  return {
    style,
    interval: intervalText === undefined
      ? DEFAULT_TARPIT_INTERVAL
      : parseDurationFlag(intervalText, flagName(flags, "tarpit-interval"), 1),
    lineLength: lengthText === undefined
      ? DEFAULT_TARPIT_LINE_LENGTH
      : parseIntegerFlag(
        lengthText,
        flagName(flags, "tarpit-line-length"),
        style === "http" ? MIN_HTTP_LINE_LENGTH : 3,
        MAX_TARPIT_LINE_LENGTH,
      ),
  };
}

/**
 * Parses the serving command's arguments, straight into the server's
 * options and the command line's own part (see {@linkcode ServeCommand}).
 *
 * @throws {UsageError} For any mistake in them.
 */
export function parseServe(args: string[]): ServeCommand | InfoCommand {
  const flags = parseFlags(args, SERVE_FLAGS);
  if (flags.switches.has("help")) return { command: "help", text: serveHelp() };
  if (flags.switches.has("version")) return { command: "version" };
  /** The flag as the user spelt it: `-p` or `--port`. */
  const flag = (name: string) => flagName(flags, name);
  const last = (name: string) => lastValue(flags, name);
  if (flags.positionals.length > 0) {
    throw new UsageError(
      `Unexpected argument ${
        quote(flags.positionals[0])
      }: see --help for usage`,
    );
  }
  const inetd = flags.switches.has("inetd");
  if (inetd) checkInetdFlags(flags);
  const hosts = flags.values.get("host") ?? [];
  const emptyHost = hosts.findIndex((host) => host.trim() === "");
  if (emptyHost !== -1) {
    throw new UsageError(
      `Invalid value for ${
        flagName(flags, "host", emptyHost)
      }: the host is empty (try 0.0.0.0 or 127.0.0.1)`,
    );
  }
  // "127.0.0.1:8080" or "[::1]:8080": the port belongs to --port.
  const withPort = hosts.findIndex((host) =>
    /^\[.*\]:\d+$/.test(host) ||
    (/^[^:]+:\d*$/.test(host) && parseIp(host) === undefined)
  );
  if (withPort !== -1) {
    const host = hosts[withPort];
    const colon = host.lastIndexOf(":");
    const name = host.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
    const port = host.slice(colon + 1);
    const spelt = flagName(flags, "host", withPort);
    throw new UsageError(
      `Invalid value ${quote(host)} for ${spelt}: it takes a host alone; ` +
        `write ${spelt} ${name}${port ? ` --port ${port}` : ""}`,
    );
  }
  const unix = flags.values.get("unix") ?? [];
  if (unix.some((path) => path === "")) {
    throw new UsageError(
      `Invalid value for ${flag("unix")}: the path is empty`,
    );
  }
  const portTexts = flags.values.get("port") ?? [];
  const portLists = portTexts.map((text, i) =>
    parsePortRange(text, flagName(flags, "port", i))
  );
  checkDuplicates(flags, hosts, portTexts, portLists, unix);
  const ports = portLists.flat();
  const tcpWanted = hosts.length > 0 || ports.length > 0 || unix.length === 0;
  if (tcpWanted && hosts.length === 0) hosts.push(DEFAULT_HOSTNAME);
  if (tcpWanted && ports.length === 0) ports.push(DEFAULT_PORT);
  if (hosts.length * ports.length > MAX_LISTENERS) {
    throw new UsageError(
      `Too many listeners (${hosts.length * ports.length}): at most ` +
        `${MAX_LISTENERS} host and port pairs`,
    );
  }
  const presetText = last("preset");
  const preset = presetText === undefined
    ? undefined
    : parseChoiceFlag(presetText, flag("preset"), PRESET_NAMES);
  const tlsCert = last("tls-cert");
  const tlsKey = last("tls-key");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new UsageError(
      "TLS needs both --tls-cert FILE and --tls-key FILE",
    );
  }
  const message = last("message");
  const messageFile = last("message-file");
  if (message !== undefined && messageFile !== undefined) {
    throw new UsageError(
      `${flag("message")} and --message-file cannot be used together: ` +
        "choose one",
    );
  }
  if (preset !== undefined && (message ?? messageFile) !== undefined) {
    throw new UsageError(
      `--preset ${preset} fixes the greeting: drop ${
        message === undefined ? "--message-file" : flag("message")
      }`,
    );
  }
  if (messageFile === "") {
    throw new UsageError("Invalid value for --message-file: the path is empty");
  }
  const number = <T>(name: string, parse: (text: string, flag: string) => T) =>
    last(name) === undefined ? undefined : parse(last(name)!, flag(name));
  const integer = (name: string, min: number, max?: number) =>
    number(name, (text, spelt) => parseIntegerFlag(text, spelt, min, max));
  const duration = (name: string) => number(name, parseDurationFlag);
  const workers = integer("workers", 1, MAX_WORKERS);
  if (workers !== undefined && workers > 1) {
    if (Deno.build.os !== "linux") {
      throw new UsageError("--workers needs Linux (SO_REUSEPORT)");
    }
    if (unix.length > 0) {
      throw new UsageError(
        "--workers shares TCP ports between threads: it cannot be used " +
          `with ${flag("unix")}`,
      );
    }
  }
  const tarpit = parseTarpit(flags, workers);
  const cidrs = (name: string) =>
    (flags.values.get(name) ?? []).map((text) => {
      try {
        return parseCidr(text);
      } catch (error) {
        if (!(error instanceof ValueError)) throw error;
        // The text as given, not the part the parser stopped at.
        throw new UsageError(
          `Invalid CIDR ${quote(text)} for ${flag(name)}: ${error.reason}`,
        );
      }
    });
  const choice = <T extends string>(
    name: string,
    fallback: T,
    choices: readonly T[],
  ) => parseChoiceFlag(last(name) ?? fallback, flag(name), choices);
  const lineEnding = choice("line-ending", "crlf", LINE_ENDINGS);
  const encoding = choice("encoding", "ascii", GREETING_ENCODINGS);
  const options: ServeGreetingOptions = {
    listen: [
      ...(tcpWanted ? hosts : []).flatMap((hostname) =>
        ports.map((port): ListenTarget => ({ hostname, port }))
      ),
      ...unix.map((path): ListenTarget => ({ transport: "unix", path })),
    ],
    drainTimeout: duration("drain-timeout") ?? DEFAULT_DRAIN_TIMEOUT,
    maxConnections: integer("max-connections", 1) ?? DEFAULT_MAX_CONNECTIONS,
    backlog: integer("backlog", 1, DEFAULT_BACKLOG),
    timeout: duration("timeout") ?? (tarpit ? 0 : DEFAULT_TIMEOUT),
    linger: duration("linger") ?? DEFAULT_LINGER,
    maxPerIp: integer("max-per-ip", 1),
    ratePerIp: number("rate-per-ip", parsePositiveNumberFlag),
    allow: cidrs("allow"),
    deny: cidrs("deny"),
  };
  const log: ServeCommand["log"] = {
    format: choice("log-format", "text", LOG_FORMATS),
    quiet: flags.switches.has("quiet"),
    rate: integer("log-rate", 0) ?? DEFAULT_LOG_RATE,
    timestamps: choice("log-timestamps", "auto", LOG_TIMESTAMPS),
  };
  const address = choice("log-address", "full", ADDRESS_LOG_MODES);
  const logKey = last("log-key-file");
  if (address === "hash" && logKey === undefined) {
    throw new UsageError(
      "--log-address hash needs --log-key-file PATH: a file of 16 or " +
        "more secret bytes (head -c 32 /dev/urandom > PATH)",
    );
  }
  if (address !== "hash" && logKey !== undefined) {
    throw new UsageError("--log-key-file goes with --log-address hash");
  }
  if (logKey === "") {
    throw new UsageError("Invalid value for --log-key-file: the path is empty");
  }
  // Only when given, so the default command reads as it always has.
  if (address !== "full") log.address = address;
  parseSensor(flags, options, tarpit !== undefined);
  const proxyFrom = cidrs("proxy-from");
  const proxy = flags.switches.has("proxy-protocol");
  if (proxy && proxyFrom.length === 0) {
    throw new UsageError(
      `${flag("proxy-protocol")} needs --proxy-from CIDR: the addresses ` +
        "of the load balancers that send the header (e.g. 10.0.0.0/8)",
    );
  }
  if (!proxy && proxyFrom.length > 0) {
    throw new UsageError(`${flag("proxy-from")} goes with --proxy-protocol`);
  }
  if (proxy) options.proxyProtocol = { from: proxyFrom };
  if (tarpit) options.tarpit = tarpit;
  const metrics = number("metrics", parseMetricsAddress);
  const maxSize = number("max-file-size", parseSizeFlag);
  const quotes = last("quotes-file");
  if (preset !== undefined && preset !== "qotd" && quotes !== undefined) {
    throw new UsageError(
      `--quotes-file only applies to --preset qotd, not --preset ${preset}`,
    );
  }
  if (preset === "qotd" && quotes === undefined) {
    throw new UsageError(
      "--preset qotd needs --quotes-file PATH: a file with one quote per " +
        'line, or quotes separated by lines holding only "%"',
    );
  }
  if (preset === undefined && quotes !== undefined) {
    throw new UsageError("--quotes-file goes with --preset qotd");
  }
  const refuse = last("refuse-message");
  if (refuse !== undefined) {
    options.refuseMessage = asUsageError(() =>
      encodeGreeting(refuse, { encoding, lineEnding })
    );
  }
  return {
    command: "serve",
    options,
    greeting: { message, preset, encoding, lineEnding },
    files: {
      message: messageFile,
      quotes,
      tlsCert,
      tlsKey,
      allow: flags.values.get("allow-file") ?? [],
      deny: flags.values.get("deny-file") ?? [],
      ...(logKey === undefined ? {} : { logKey }),
      ...(maxSize === undefined ? {} : { maxSize }),
    },
    log,
    ...(metrics === undefined ? {} : { metrics }),
    ...(workers === undefined ? {} : { workers }),
    spelled: { host: flag("host"), port: flag("port") },
    ...(inetd ? { inetd: true as const } : {}),
    ...(flags.switches.has("socket-activation")
      ? { socketActivation: true as const }
      : {}),
  };
}

/**
 * Parses --greet-pause, --early-talkers and --capture into `options`.
 *
 * @throws {UsageError} For a bad value, or flags that do not go together.
 */
function parseSensor(
  flags: ParsedFlags,
  options: ServeGreetingOptions,
  tarpit: boolean,
): void {
  const flag = (name: string) => flagName(flags, name);
  const pauseText = lastValue(flags, "greet-pause");
  const earlyText = lastValue(flags, "early-talkers");
  const captureText = lastValue(flags, "capture");
  const greetPause = pauseText === undefined
    ? undefined
    : parseDurationFlag(pauseText, flag("greet-pause"));
  if (earlyText !== undefined && greetPause === undefined) {
    throw new UsageError(
      "--early-talkers goes with --greet-pause DURATION: without a " +
        "pause no client talks early",
    );
  }
  if (tarpit && (greetPause !== undefined || captureText !== undefined)) {
    throw new UsageError(
      `${
        flag(greetPause !== undefined ? "greet-pause" : "capture")
      } cannot be used with --tarpit: a tarpit holds clients instead of ` +
        "greeting them; choose one",
    );
  }
  const timeout = options.timeout!;
  if (greetPause !== undefined && timeout > 0 && greetPause >= timeout) {
    throw new UsageError(
      `--greet-pause ${formatDuration(greetPause)} is not shorter than ` +
        `--timeout ${formatDuration(timeout)}: every client would be cut ` +
        "before its greeting; shorten the pause or lengthen the timeout",
    );
  }
  if (greetPause !== undefined) options.greetPause = greetPause;
  if (earlyText !== undefined) {
    options.earlyTalkers = parseChoiceFlag(
      earlyText,
      flag("early-talkers"),
      [
        "greet",
        "refuse",
      ] as const,
    );
  }
  if (captureText !== undefined) {
    options.capture = parseIntegerFlag(
      captureText,
      flag("capture"),
      1,
      MAX_CAPTURE,
    );
  }
}
