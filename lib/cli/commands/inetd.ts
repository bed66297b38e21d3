/**
 * `greeter --inetd`: the greeting program of a host that accepts the
 * connection itself (inetd, xinetd, tcpserver, s6-tcpserver, socat `EXEC:`,
 * systemd `Accept=yes`) and runs greeter once per client, with the socket on
 * stdin and stdout. The one connection is served by the server's own path
 * (greeting, template, linger, timeout, record), then greeter exits. Loaded
 * only for --inetd, and it loads only what one connection needs.
 *
 * @module
 */
import type { ServeCommand } from "./serve.ts";
import { ExitError, UsageError, usageIf } from "../flags.ts";
import { complete, prepare } from "../setup.ts";
import { createConnectionLog } from "../../observe/connection_log.ts";
import type { OpenListener } from "../../server/listeners.ts";
import { adoptSocket, HALF_OPEN } from "../../server/node_conn.ts";
import type { Conn } from "../../server/connection_table.ts";
import { serveGreetingWith } from "../../server/serve_greeting.ts";
import { startTimer } from "../../server/wait.ts";
import { parsePort } from "../../net/address.ts";
import { attempt } from "../../net/value_error.ts";
import { guardDebuggerPort } from "../debugger_guard.ts";
import { warn } from "../warn.ts";
import { readEnv } from "../socket_activation.ts";

/**
 * Where each host puts the client's and the server's address, first match
 * wins: tcpserver and s6 (`TCP*`), systemd `Accept=yes` (`REMOTE_*`), socat
 * (`SOCAT_*`); then the socket itself.
 */
const REMOTE_VARIABLES = [
  ["TCPREMOTEIP", "TCPREMOTEPORT"],
  ["REMOTE_ADDR", "REMOTE_PORT"],
  ["SOCAT_PEERADDR", "SOCAT_PEERPORT"],
] as const;
const LOCAL_VARIABLES = [
  ["TCPLOCALIP", "TCPLOCALPORT"],
  ["SOCAT_SOCKADDR", "SOCAT_SOCKPORT"],
] as const;

/** Every variable --inetd reads, for `--allow-env`. */
export const INETD_VARIABLES: readonly string[] = [
  ...REMOTE_VARIABLES,
  ...LOCAL_VARIABLES,
].flat();

/** The first address a host gave, from pairs of variables. */
function addressFrom(
  pairs: readonly (readonly [string, string])[],
): Deno.NetAddr | undefined {
  for (const [host, port] of pairs) {
    const hostname = readEnv(host);
    if (!hostname) continue;
    // A port that is not one: the next host's variables, or the socket.
    const number = attempt(() => parsePort(readEnv(port) ?? ""));
    if (number !== undefined) {
      return { transport: "tcp", hostname, port: number };
    }
  }
}

/** What stdin is, by the test that tells it: a socket, or what instead. */
const STDIN_KINDS = [
  ["isSocket", undefined],
  ["isFile", "a regular file"],
  ["isFIFO", "a pipe"],
  ["isCharacterDevice", "a device"],
] as const;

function notASocket(what: string): UsageError {
  return new UsageError(
    `--inetd greets the client connected on stdin, but stdin is ${what}: ` +
      "run greeter --inetd from inetd, xinetd, tcpserver, socat EXEC: or a " +
      "systemd Accept=yes socket (or serve without --inetd)",
  );
}

/**
 * True if stderr is the client's socket too, as inetd and xinetd make it
 * (node:fs is loaded only when this is asked).
 */
async function stderrIsClient(): Promise<boolean> {
  const { fstatSync } = await import("node:fs");
  return attempt(() => {
    const [err, input] = [fstatSync(2), fstatSync(0)];
    return err.dev === input.dev && err.ino === input.ino;
  }) ?? false;
}

/** The connection on stdin, as a listener that accepts it once. */
function oneConnection(conn: Conn): OpenListener {
  const closed = Promise.withResolvers<Conn>();
  let next = Promise.resolve(conn);
  const close = () =>
    closed.reject(new Deno.errors.BadResource("Served its one client"));
  const accept = () => [next, next = closed.promise][0];
  return { listener: { addr: conn.localAddr, accept, close } };
}

/**
 * The socket on stdin (and stdout), as node:net reads and writes it, once
 * it is told to be one: not a file, a pipe or a device. (node's fstat needs
 * no permission; Deno's stat of /dev/stdin needs all of them.) A terminal
 * was said before: runInetd asks that first.
 *
 * @throws {UsageError} Saying what stdin is instead, and how to run it.
 */
async function openStdin(remote?: Deno.Addr, local?: Deno.Addr) {
  const [{ fstatSync }, net] = await Promise.all([
    import("node:fs"),
    import("node:net"),
  ]);
  // Not even a descriptor: closed.
  const info = attempt(() => fstatSync(0));
  const found = info && STDIN_KINDS.find(([test]) => info[test]());
  const kind = !info ? "closed" : found ? found[1] : "not a socket";
  if (kind !== undefined) throw notASocket(kind);
  let socket;
  try {
    socket = new net.Socket({ fd: 0, ...HALF_OPEN });
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_INVALID_FD_TYPE") {
      throw notASocket("not a socket");
    }
    throw error;
  }
  // A TCP socket that names no peer: inetd's wait mode passes the listening
  // one (or the client reset before greeter started); nobody to greet.
  usageIf(
    socket.remotePort === undefined && socket.localPort !== undefined,
    "--inetd greets the client connected on stdin, but stdin is a socket " +
      "with no client (a listening socket, as inetd's wait mode passes, or " +
      "a client that already left): configure the service as nowait " +
      "(xinetd: wait = no)",
  );
  return adoptSocket(socket, remote, local);
}

/**
 * Greets the one client and resolves to the exit code: 0 when it was
 * greeted (or refused), 1 when the greeting could not be delivered (reset,
 * timed out, failed).
 *
 * @throws {UsageError} When stdin is not a socket, or for a bad file.
 */
export async function runInetd(command: ServeCommand): Promise<number> {
  if (Deno.stdin.isTerminal()) throw notASocket("a terminal");
  // One client may keep greeter past Deno's 500 ms grace: the SIGUSR1
  // debugger stays shut here too (under deno run; the binaries need not).
  // Where stderr is the client's own socket (xinetd), greeter writes nothing
  // to it: where the guard cannot be held, it ends with exit 1 for the host
  // to log, and a taken address goes unsaid. Otherwise a taken address is
  // said once greeter is about to greet.
  let taken: string | undefined;
  let guard: Disposable | undefined;
  try {
    guard = guardDebuggerPort(undefined, (message) => taken = message);
  } catch (error) {
    if (await stderrIsClient()) throw new ExitError("", 1, true);
    throw error;
  }
  using _guard = guard;
  const remote = addressFrom(REMOTE_VARIABLES);
  const local = addressFrom(LOCAL_VARIABLES);
  // Where the host named the client and nothing lingers, the socket is only
  // written: Deno's stdout does it, and node:net (some 35 to 40 ms of CPU
  // per connection, docs/activation.md) is not loaded.
  const direct = remote !== undefined && command.options.linger === 0;
  // Asked before the client's socket is taken over (node:net moves fd 0).
  const toClient = (!direct || taken !== undefined) && await stderrIsClient();
  const conn = direct
    ? stdioConn(remote, local)
    : await openStdin(remote, local);
  const options = await complete(command, await prepare(command, true));
  if (taken !== undefined && !toClient) warn(taken, command.log.format);
  const encoder = new TextEncoder();
  const log = createConnectionLog({
    emit: (line) => Deno.stderr.writeSync(encoder.encode(line + "\n")),
    format: command.log.format,
    quiet: command.log.quiet || (!direct && toClient),
    rate: 0,
    // The host's log (multilog, the journal) stamps lines itself.
    timestamps: command.log.timestamps,
  });
  const server = serveGreetingWith({
    ...options,
    // A stop cuts the one connection at once (and it is still recorded).
    drainTimeout: 0,
    onConnection: log.onConnection,
    onClose(record) {
      log.onClose?.(record);
      server.shutdown();
    },
  }, { listeners: [oneConnection(conn)] });
  if (direct && options.timeout! > 0) {
    // Closing stdout does not stop a write the client never reads: the
    // process ends at the deadline instead.
    startTimer(options.timeout! + 100, () => Deno.exit(1));
  }
  // Hosts end their child with SIGTERM (socat as soon as the client's side
  // closes): it ends the connection at once, and its line (which JSON
  // writes at the close) is still written.
  const stop = () => server.shutdown();
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished.finally(() =>
    Deno.removeSignalListener("SIGTERM", stop)
  );
  log.close();
  // The one client's outcome, as counted.
  const { greeted, refused } = server.stats.outcomes;
  return greeted + refused > 0 ? 0 : 1;
}

/**
 * The client on stdin and stdout through Deno's own stdio: enough to write
 * a greeting and close; it cannot end the write side alone (no linger).
 */
function stdioConn(remoteAddr: Deno.Addr, localAddr?: Deno.Addr): Conn {
  return {
    remoteAddr,
    localAddr: localAddr ?? { transport: "tcp", hostname: "", port: 0 },
    read: (p: Uint8Array) => Deno.stdin.read(p),
    write: (p: Uint8Array) => Deno.stdout.write(p),
    closeWrite: () =>
      Promise.reject(new Deno.errors.NotSupported("No shutdown on stdout")),
    close: () => Deno.stdout.close(),
  };
}
