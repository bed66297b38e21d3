import { type HostPort, parseHostPort, parsePort } from "../../net/address.ts";
import {
  type CommandOf,
  COMMON_FLAGS,
  type FlagReader,
  flagTable,
  formatExamples,
  formatGroupedFlagHelp,
  infoCommand,
  invalidValue,
  parseFlags,
  parseFlagValue,
  parsePositiveNumberFlag,
  parseSizeFlag,
  UsageError,
  usageIf,
} from "../flags.ts";
import { escapeControl, quote } from "../../net/escape.ts";
import { formatDuration } from "../duration.ts";
import { DEFAULT_QUOTES_LIMIT, formatSize, MIB } from "../read_limited.ts";
import { DEFAULT_MESSAGE, encodeGreeting } from "../../greeting/template.ts";
import { formatIp, parseCidr, parseIp } from "../../net/ip.ts";
import { PRESET_NAMES } from "../../greeting/presets.ts";
import { LOG_FORMATS } from "../../observe/log_format.ts";
import { ADDRESS_LOG_MODES } from "../../net/address_privacy.ts";
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
  MAX_COUNT,
  type ServeGreetingOptions,
  TLS_HANDSHAKE_TIMEOUT,
} from "../../server/options.ts";
import { asUsageError } from "../explain.ts";
import {
  DEFAULT_TARPIT_INTERVAL,
  DEFAULT_TARPIT_LINE_LENGTH,
  MAX_TARPIT_LINE_LENGTH,
  MIN_HTTP_LINE_LENGTH,
  TARPIT_STYLES,
} from "../../server/tarpit.ts";

/** What --early-talkers takes. */
const EARLY = ["greet", "refuse"] as const;

/**
 * The serving command: the library's own options as the flags give them
 * (`listen` holds every --host with every --port, then every --unix path,
 * or the passed sockets), and the little that only the command line has:
 * the greeting, the files named by flags (read by `prepare` in setup.ts, at
 * start and on every reload), how connections are logged, where metrics
 * are served, the workers and the host and port flags as spelt. Set at
 * start: `fdLimitUnread` when the open-file limit could not be read, so the
 * cap was not fitted to it (the first EMFILE then says so).
 */
export type ServeCommand = CommandOf<typeof parseServe> & {
  fdLimitUnread?: true;
};

/** Connection lines logged per second from one source, by default. */
const DEFAULT_LOG_RATE = 100;

/** The most worker threads --workers accepts. */
const MAX_WORKERS = 64;

/** The flags of the serving command. */
export const SERVE_FLAGS = [
  ...flagTable({
    "listening -H --host HOST...":
      `Address to listen on (default ${DEFAULT_HOSTNAME}; :: for IPv6 and IPv4)`,
    "listening -p --port PORT...": "TCP port 0-65535, or a range such as " +
      `8000-8010; 0 picks a free one (default ${DEFAULT_PORT})`,
    "listening --unix PATH...":
      "Listen on a Unix socket (a stale socket file is replaced)",
    "greeting -m --message TEXT":
      `Greeting text (default "${DEFAULT_MESSAGE}")`,
    "greeting --message-file PATH":
      "Read the greeting text from a file (one trailing newline dropped)",
    "greeting --preset daytime|qotd|time": "Serve a classic service: RFC 867 " +
      "daytime, RFC 865 quote of the day, RFC 868 time",
    "greeting --quotes-file PATH":
      "Quotes for --preset qotd: one per line, or separated by % lines",
    "listening --tls-cert FILE":
      "Serve over TLS with this PEM certificate chain (needs --tls-key)",
    "listening --tls-key FILE": "The PEM private key for --tls-cert",
    "greeting --line-ending crlf|lf|none":
      "What ends each line of the greeting (default crlf)",
    "greeting --encoding ascii|utf-8|latin1": "Encoding of the greeting; " +
      "text it cannot encode is an error (default ascii)",
    "logs -q --quiet": "Do not print a line per connection",
    "logs --log-format text|json": "Log lines for people (text) or one JSON " +
      "object per line (default text)",
    "logs --log-rate N": "Connection lines per second from one address " +
      "before the rest are summarized; 0 logs every one (default " +
      `${DEFAULT_LOG_RATE})`,
    "logs --log-timestamps auto|on|off": "Start each text line with an RFC " +
      "3339 time (default auto: on when stdout is not a terminal and not " +
      "journald)",
    "logs --metrics [HOST:]PORT": "Serve Prometheus metrics (/metrics) and " +
      "/healthz over HTTP here; a port alone listens on 127.0.0.1",
    "logs --log-address full|truncate|hash": "How log lines show a " +
      "client's address: whole, cut to its /24 (IPv6 /48), or a keyed " +
      "pseudonym (needs --log-key-file); truncate and hash drop the port; " +
      "limits still use the real address (default full)",
    "logs --log-key-file PATH": "The secret key of --log-address hash (16 " +
      "bytes or more, such as head -c 32 /dev/urandom); read again on SIGHUP",
    "sensor --greet-pause DURATION": "Wait this long before greeting; a " +
      "client that sends anything meanwhile is an early talker (scanners " +
      "and bots talk first), counted and logged with what its first bytes " +
      "look like",
    "sensor --early-talkers greet|refuse": "What becomes of an early talker: " +
      "greeted all the same, or refused without the greeting (default " +
      "refuse; needs --greet-pause)",
    "sensor --capture BYTES": `Log the first BYTES (at most ${MAX_CAPTURE}) ` +
      "a client sends, before or after the greeting, escaped (and base64 in " +
      "JSON)",
    "limits --max-connections N": "Connections served at once; beyond it " +
      `clients wait in the backlog (default ${DEFAULT_MAX_CONNECTIONS})`,
    "limits --backlog N": "Length of the kernel's queue of pending " +
      "connections (default: as long as the kernel allows, net.core.somaxconn)",
    "limits --timeout DURATION": "Longest life of one connection, such as " +
      "500ms, 10s or 2m (a number alone is milliseconds); 0 for none, though " +
      `a TLS handshake still ends after ${
        formatDuration(TLS_HANDSHAKE_TIMEOUT)
      } (default ${formatDuration(DEFAULT_TIMEOUT)})`,
    "limits --linger DURATION": "After the greeting, wait this long for the " +
      "client to close before closing; 0 closes at once (default " +
      `${formatDuration(DEFAULT_LINGER)})`,
    "limits --drain-timeout DURATION": "On shutdown, how long in-flight " +
      `greetings may finish (default ${formatDuration(DEFAULT_DRAIN_TIMEOUT)})`,
    "limits --max-per-ip N":
      "Connections open at once from one address (IPv6: one /64)",
    "limits --rate-per-ip R":
      "New connections per second from one address (IPv6: one /64)",
    "limits --refuse-message TEXT":
      "Sent to refused clients instead of closing them silently",
    "limits --allow CIDR...":
      "Serve only these addresses (e.g. 10.0.0.0/8, ::1)",
    "limits --deny CIDR...": "Refuse these addresses; deny wins over allow",
    "limits --allow-file PATH...":
      "More --allow blocks, one per line (# comments); read again on SIGHUP",
    "limits --deny-file PATH...":
      "More --deny blocks, one per line (# comments); read again on SIGHUP",
    "fleet --proxy-protocol": "Read a PROXY protocol header (v1 or v2) from " +
      "a load balancer before greeting; the client it names is the one " +
      "logged, limited and matched by --allow/--deny (needs --proxy-from)",
    "fleet --proxy-from CIDR...": "A load balancer that may send the " +
      "header; connections from other peers are refused",
    "listening --inetd": "Greet the one client on stdin and stdout, then " +
      "exit: for inetd, xinetd, tcpserver, socat EXEC: and systemd " +
      "Accept=yes; the client's address comes from TCPREMOTEIP/" +
      "TCPREMOTEPORT, REMOTE_ADDR/REMOTE_PORT or the socket, and the " +
      "connection line goes to stderr",
    "listening --socket-activation": "Serve the listening sockets a service " +
      "manager passed (systemd LISTEN_FDS, from fd 3) instead of --host, " +
      '--port and --unix; a socket named "metrics" (LISTEN_FDNAMES) serves ' +
      "--metrics. On by itself when LISTEN_PID is greeter's; with this " +
      "flag, an error without them",
    "greeting --tarpit": "Hold every admitted client with a never-ending " +
      "banner, a little every --tarpit-interval, until it leaves; --timeout " +
      "then defaults to 0 (never)",
    "greeting --tarpit-style ssh|greeting|http": "What --tarpit sends: " +
      "random lines that keep SSH clients waiting for the version line, the " +
      "greeting dripped and repeated, or an HTTP status line and endless " +
      "headers (default ssh)",
    "greeting --tarpit-interval DURATION": "How often --tarpit sends each " +
      `client a line (default ${formatDuration(DEFAULT_TARPIT_INTERVAL)})`,
    "greeting --tarpit-line-length N": "Longest --tarpit line, CRLF " +
      `included (3-${MAX_TARPIT_LINE_LENGTH}, ${MIN_HTTP_LINE_LENGTH} at ` +
      "least for http); for the greeting style, bytes sent per interval " +
      `(default ${DEFAULT_TARPIT_LINE_LENGTH})`,
    "fleet --workers N": "Serve from N threads sharing the ports (Linux " +
      "SO_REUSEPORT, deno run --unstable-net); --max-connections, " +
      "--max-per-ip, --rate-per-ip and --log-rate then apply per worker " +
      `(default 1, at most ${MAX_WORKERS})`,
    "process --max-file-size SIZE": "The most bytes read from each file " +
      `named by a flag, in bytes or with a unit such as 4MiB (default ${
        formatSize(MIB)
      }; ${formatSize(DEFAULT_QUOTES_LIMIT)} for --quotes-file)`,
  }),
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
    formatExamples({
      "greeter --port 2323": "Greet every client on port 2323",
      "greeter --preset daytime --port 1313":
        "Serve the time of day (RFC 867) on port 1313",
      "greeter --tls-cert cert.pem --tls-key key.pem":
        "Greet over TLS with this certificate and key",
      "greeter --metrics 9464":
        "Also serve metrics on http://127.0.0.1:9464/metrics",
    })
  }`;
}

/** The metrics endpoint's default address, when --metrics gives no host. */
const DEFAULT_METRICS = { hostname: "127.0.0.1", port: 9464 };

/** What to write instead of a --metrics port mistyped. */
const NO_PORT = "not a port; write PORT, HOST:PORT or :PORT, as in 9464 or " +
  "127.0.0.1:9464";

/** Where metrics are served: a host and port, or a passed socket's `fd`. */
type MetricsAddress = HostPort & { fd?: number };

/**
 * Parses --metrics: `HOST:PORT`, `HOST`, `:PORT`, or a port alone, which
 * listens on the default host (a number is never a host name here). A
 * socket passed for metrics is an `fd` instead (serve_run.ts).
 */
function parseMetricsAddress(text: string, flag: string): MetricsAddress {
  // "9464x": a port mistyped (digits, then more, without "." or ":"), not
  // a host to look up.
  if (/^\d+[^\d.:][^.:]*$/.test(text)) throw invalidValue(text, flag, NO_PORT);
  // A port alone is ":PORT": a number is never a host name here.
  const spec = /^\d+$/.test(text) ? `:${text}` : text;
  return parseFlagValue(text, flag, () => parseHostPort(spec, DEFAULT_METRICS));
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
  const [first, last] = (range ? range.slice(1) : [text, text]).map((port) =>
    parseFlagValue(text, flag, () => parsePort(port))
  );
  // A single port is a range of one, and 0 picks a free one.
  const wrong = range && (first === 0 || first > last)
    ? "a range runs from a lower port to a higher one"
    : last - first + 1 > MAX_LISTENERS
    ? `a range has at most ${MAX_LISTENERS} ports`
    : undefined;
  if (wrong !== undefined) throw invalidValue(text, flag, wrong);
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/**
 * The same listener given twice would fail to listen as "address already
 * in use", blaming another server: said here as the usage error it is.
 * Port 0 is exempt (each picks its own free port).
 *
 * @throws {UsageError} Naming the duplicate and the flags that gave it.
 */
function checkDuplicates(read: FlagReader, ports: number[][]): void {
  const { flag, all } = read;
  const [hosts, unix] = [all("host"), all("unix")];
  /** The `i`th --host or --port as given: `-H ::1`. */
  const given = (name: string, i: number) =>
    `${flag(name, i)} ${escapeControl(all(name)[i])}`;
  const twice = (what: string, both: string, each: string) =>
    new UsageError(`${what} is given twice (${both}): give each ${each} once`);
  const host = repeated(hosts.map(hostKey));
  if (host) {
    const both = host.map((i) => given("host", i)).join(" and ");
    throw twice(`Host ${quote(hosts[host[1]])}`, both, "host");
  }
  // A wildcard host covers the specific ones of its family on every port
  // (whether :: also takes IPv4 depends on the system, so that is left to
  // the kernel to say).
  for (const [wildcard, bytes, v] of [["0.0.0.0", 4, 4], ["::", 16, 6]]) {
    const index = hosts.findIndex((host) => hostKey(host) === wildcard);
    const covered = hosts.findIndex((host, i) =>
      index !== -1 && i !== index && parseIp(host)?.length === bytes
    );
    if (covered !== -1) {
      throw new UsageError(
        `Host ${quote(hosts[index])} already listens on every IPv${v} ` +
          `address, ${quote(hosts[covered])} included: give either ` +
          `${given("host", index)} or ${given("host", covered)}, not both`,
      );
    }
  }
  // Each port with the index of the --port that gave it.
  const portsGiven = ports.flatMap((list, i) =>
    list.filter((port) => port !== 0).map((port) => [port, i])
  );
  const port = repeated(portsGiven.map(([port]) => port));
  if (port) {
    const both = port.map((at) => given("port", portsGiven[at][1]));
    throw twice(`Port ${portsGiven[port[0]][0]}`, both.join(" and "), "port");
  }
  const path = repeated(unix.map(unixKey));
  if (path) {
    throw twice(`Unix socket ${quote(unix[path[1]])}`, flag("unix"), "path");
  }
}

/** The indexes of the first key in `keys` seen before, and of that one. */
function repeated<K>(keys: K[]): [number, number] | undefined {
  const seen = new Map<K, number>();
  for (const [i, key] of keys.entries()) {
    if (seen.has(key)) return [seen.get(key)!, i];
    seen.set(key, i);
  }
}

/** A host as compared for duplicates: IPs by value, names by spelling. */
function hostKey(host: string): string {
  const bytes = parseIp(host);
  return bytes ? formatIp(bytes) : host.toLowerCase().replace(/\.$/, "");
}

/** A Unix path as compared for duplicates: without `//`, `./` or a final `/`. */
function unixKey(path: string): string {
  return path.replace(/\/+/g, "/").replace(/(^|\/)(\.\/)+/g, "$1")
    .replace(/(.)\/$/, "$1");
}

/**
 * The flags that keep their meaning with --inetd: the greeting, its
 * deadlines and the connection line. The others are about listening,
 * many clients or a long-running server.
 */
const INETD_FLAGS = new Set(
  ("inetd message message-file preset quotes-file line-ending encoding " +
    "quiet log-format log-timestamps timeout linger max-file-size").split(" "),
);

/**
 * Parses --host, --port and --unix into the listeners: every host with
 * every port, then every Unix path.
 *
 * @throws {UsageError} For a bad value, a listener given twice, or too
 * many of them.
 */
function parseListen(read: FlagReader): ListenTarget[] {
  const hosts = read.all("host");
  const emptyHost = hosts.findIndex((host) => host.trim() === "");
  const empty = "host is empty (try 0.0.0.0 or 127.0.0.1)";
  if (emptyHost !== -1) throw read.empty("host", empty, emptyHost);
  // "127.0.0.1:8080" or "[::1]:8080": the port belongs to --port.
  for (const [i, host] of hosts.entries()) {
    const [, name, port] = /^\[(.*)\]:(\d+)$/.exec(host) ??
      (parseIp(host) ? null : /^([^:]+):(\d*)$/.exec(host)) ?? [];
    if (name === undefined) continue;
    const spelt = read.flag("host", i);
    const bare = name.replace(/^\[(.*)\]$/, "$1");
    const hint = `it takes a host alone; write ${spelt} ${bare}`;
    throw invalidValue(host, spelt, hint + (port ? ` --port ${port}` : ""));
  }
  const unix = read.all("unix");
  if (unix.includes("")) throw read.empty("unix");
  const portLists = read.all("port").map((text, i) =>
    parsePortRange(text, read.flag("port", i))
  );
  checkDuplicates(read, portLists);
  const ports = portLists.flat();
  const tcpWanted = hosts.length > 0 || ports.length > 0 || unix.length === 0;
  if (tcpWanted && hosts.length === 0) hosts.push(DEFAULT_HOSTNAME);
  if (tcpWanted && ports.length === 0) ports.push(DEFAULT_PORT);
  const pairs = hosts.length * ports.length;
  const most = `at most ${MAX_LISTENERS} host and port pairs`;
  usageIf(pairs > MAX_LISTENERS, `Too many listeners (${pairs}): ${most}`);
  return [
    ...(tcpWanted ? hosts : []).flatMap((hostname) =>
      ports.map((port): ListenTarget => ({ hostname, port }))
    ),
    ...unix.map((path): ListenTarget => ({ transport: "unix", path })),
  ];
}

/**
 * Parses --tarpit and its --tarpit-* flags, which need it.
 *
 * @throws {UsageError} For a bad value, a --tarpit-* flag without
 * --tarpit, or --tarpit with several workers.
 */
function parseTarpit(read: FlagReader, workers: number | undefined) {
  if (!read.has("tarpit")) {
    for (const name of ["style", "interval", "line-length"]) {
      read.goesWith(`tarpit-${name}`, false, "--tarpit");
    }
    return undefined;
  }
  usageIf(
    (workers ?? 1) > 1,
    "--tarpit serves from one thread: drop --workers (a tarpit's work is a " +
      "write per client per interval, which one thread does for tens of " +
      "thousands)",
  );
  const style = read.choice("tarpit-style", "ssh", TARPIT_STYLES);
  const shortest = style === "http" ? MIN_HTTP_LINE_LENGTH : 3;
  return {
    style,
    interval: read.duration("tarpit-interval", 1) ?? DEFAULT_TARPIT_INTERVAL,
    lineLength:
      read.integer("tarpit-line-length", shortest, MAX_TARPIT_LINE_LENGTH) ??
        DEFAULT_TARPIT_LINE_LENGTH,
  };
}

/**
 * Parses the serving command's arguments, straight into the server's
 * options and the command line's own part (see {@linkcode ServeCommand}).
 *
 * @throws {UsageError} For any mistake in them.
 */
export function parseServe(args: string[]) {
  const read = parseFlags(args, SERVE_FLAGS);
  const info = infoCommand(read, serveHelp);
  if (info) return info;
  const { flag, last } = read;
  const [extra] = read.positionals;
  usageIf(
    extra !== undefined,
    `Unexpected argument ${quote(extra ?? "")}: see --help for usage`,
  );
  const inetd = read.has("inetd");
  // Every flag given that --inetd has no use for.
  const needless = read.given().filter((name) => !INETD_FLAGS.has(name))
    .map((name) => flag(name));
  const [has, it] = needless.length === 1 ? ["has", "it"] : ["have", "them"];
  usageIf(
    inetd && needless.length > 0,
    `--inetd greets the one client its host passed on stdin: ${
      needless.join(", ")
    } ${has} no meaning there; drop ${it} (the host listens, limits and ` +
      "runs one greeter per client)",
  );
  const listen = parseListen(read);
  const preset = read.choice("preset", undefined, PRESET_NAMES);
  const [tlsCert, tlsKey] = [last("tls-cert"), last("tls-key")];
  usageIf(
    (tlsCert === undefined) !== (tlsKey === undefined),
    "TLS needs both --tls-cert FILE and --tls-key FILE",
  );
  const [message, messageFile] = [last("message"), last("message-file")];
  usageIf(
    message !== undefined && messageFile !== undefined,
    `${flag("message")} and --message-file cannot be used together: choose one`,
  );
  usageIf(
    preset !== undefined && (message ?? messageFile) !== undefined,
    `--preset ${preset} fixes the greeting: drop ${
      message === undefined ? "--message-file" : flag("message")
    }`,
  );
  // A path given as "": said as such, not as a missing file.
  if (messageFile === "") throw read.empty("message-file");
  const workers = read.integer("workers", 1, MAX_WORKERS);
  if ((workers ?? 1) > 1) {
    usageIf(Deno.build.os !== "linux", "--workers needs Linux (SO_REUSEPORT)");
    usageIf(
      listen.some((target) => target.transport === "unix"),
      "--workers shares TCP ports between threads: it cannot be used " +
        `with ${flag("unix")}`,
    );
  }
  const tarpit = parseTarpit(read, workers);
  const cidrs = (name: string) =>
    read.all(name).map((text) =>
      // The text as given, not the part the parser stopped at.
      parseFlagValue(text, flag(name), parseCidr, "CIDR")
    );
  const format = read.greetingFormat();
  const options: ServeGreetingOptions = {
    listen,
    drainTimeout: read.duration("drain-timeout") ?? DEFAULT_DRAIN_TIMEOUT,
    maxConnections: read.integer("max-connections", 1, MAX_COUNT) ??
      DEFAULT_MAX_CONNECTIONS,
    backlog: read.integer("backlog", 1, DEFAULT_BACKLOG),
    timeout: read.duration("timeout") ?? (tarpit ? 0 : DEFAULT_TIMEOUT),
    linger: read.duration("linger") ?? DEFAULT_LINGER,
    maxPerIp: read.integer("max-per-ip", 1, MAX_COUNT),
    ratePerIp: read.value("rate-per-ip", parsePositiveNumberFlag),
    allow: cidrs("allow"),
    deny: cidrs("deny"),
  };
  const log = {
    format: read.choice("log-format", "text", LOG_FORMATS),
    quiet: read.has("quiet"),
    rate: read.integer("log-rate", 0) ?? DEFAULT_LOG_RATE,
    timestamps: { auto: undefined, on: true, off: false }[
      read.choice("log-timestamps", "auto", ["auto", "on", "off"])
    ],
  };
  const address = read.choice("log-address", "full", ADDRESS_LOG_MODES);
  const logKey = last("log-key-file");
  read.goesWith(
    "log-key-file",
    address === "hash",
    "--log-address hash",
    "--log-address hash needs --log-key-file PATH: a file of 16 or more " +
      "secret bytes (head -c 32 /dev/urandom > PATH)",
  );
  if (logKey === "") throw read.empty("log-key-file");
  // The sensor: --greet-pause, --early-talkers and --capture.
  const greetPause = read.duration("greet-pause");
  read.goesWith(
    "early-talkers",
    greetPause !== undefined,
    "--greet-pause DURATION: without a pause no client talks early",
  );
  usageIf(
    tarpit !== undefined && (greetPause ?? read.last("capture")) !== undefined,
    `${read.flag(greetPause !== undefined ? "greet-pause" : "capture")} ` +
      "cannot be used with --tarpit: a tarpit holds clients instead of " +
      "greeting them; choose one",
  );
  const timeout = options.timeout!;
  usageIf(
    greetPause !== undefined && timeout > 0 && greetPause >= timeout,
    `--greet-pause ${formatDuration(greetPause ?? 0)} is not shorter than ` +
      `--timeout ${formatDuration(timeout)}: every client would be cut ` +
      "before its greeting; shorten the pause or lengthen the timeout",
  );
  if (greetPause !== undefined) options.greetPause = greetPause;
  const earlyTalkers = read.choice("early-talkers", undefined, EARLY);
  if (earlyTalkers !== undefined) options.earlyTalkers = earlyTalkers;
  const capture = read.integer("capture", 1, MAX_CAPTURE);
  if (capture !== undefined) options.capture = capture;
  const [proxyFrom, proxy] = [cidrs("proxy-from"), read.has("proxy-protocol")];
  read.goesWith(
    "proxy-from",
    proxy,
    "--proxy-protocol",
    `${flag("proxy-protocol")} needs --proxy-from CIDR: the addresses of ` +
      "the load balancers that send the header (e.g. 10.0.0.0/8)",
  );
  if (proxy) options.proxyProtocol = { from: proxyFrom };
  if (tarpit) options.tarpit = tarpit;
  const metrics = read.value("metrics", parseMetricsAddress);
  const maxSize = read.value("max-file-size", parseSizeFlag);
  const quotes = last("quotes-file");
  usageIf(
    preset !== undefined && preset !== "qotd" && quotes !== undefined,
    `--quotes-file only applies to --preset qotd, not --preset ${preset}`,
  );
  // Any other preset was refused above.
  read.goesWith(
    "quotes-file",
    preset === "qotd",
    "--preset qotd",
    "--preset qotd needs --quotes-file PATH: a file with one quote per " +
      'line, or quotes separated by lines holding only "%"',
  );
  const refuse = last("refuse-message");
  if (refuse !== undefined) {
    options.refuseMessage = asUsageError(() => encodeGreeting(refuse, format));
  }
  return {
    command: "serve" as const,
    options,
    greeting: { message, preset, ...format },
    files: {
      message: messageFile,
      quotes,
      tlsCert,
      tlsKey,
      allow: read.all("allow-file"),
      deny: read.all("deny-file"),
      // Each only when given, so a command reads as it always has.
      ...(logKey !== undefined && { logKey }),
      ...(maxSize !== undefined && { maxSize }),
    },
    // Only when given, so the default command reads as it always has.
    log: { ...log, ...(address !== "full" && { address }) },
    ...(metrics && { metrics }),
    ...(workers !== undefined && { workers }),
    spelled: { host: flag("host"), port: flag("port") },
    ...(inetd && { inetd }),
    ...(read.has("socket-activation") && { socketActivation: true as const }),
  };
}
