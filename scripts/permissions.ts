/**
 * The Deno flags baked into greeter's compiled binaries. Everything that
 * runs greeter without `deno run` flags of its own (the binaries, the Docker
 * image, the systemd unit) gets exactly these, so they are listed once here.
 *
 * @module
 */

/** Flags passed to `deno compile` for every binary. */
export const BINARY_FLAGS: readonly string[] = [
  // Listening and `greeter connect`.
  "--allow-net",
  // --message-file, quote files and TLS certificates and keys.
  "--allow-read",
  // Unix socket paths are files the server creates.
  "--allow-write",
  // The {hostname} placeholder in greeting templates.
  "--allow-sys",
  // systemd readiness: the socket systemd names in $NOTIFY_SOCKET; journald
  // (JOURNAL_STREAM, so that --log-timestamps auto leaves it the stamping);
  // socket activation: the sockets systemd passes (LISTEN_*); --inetd: the client's
  // and the server's address as tcpserver/s6 (TCP*), systemd Accept=yes
  // (REMOTE_ADDR/REMOTE_PORT) and socat (SOCAT_*) give them.
  "--allow-env=NOTIFY_SOCKET,JOURNAL_STREAM,LISTEN_FDS,LISTEN_PID,LISTEN_FDNAMES,TCPREMOTEIP,TCPREMOTEPORT,TCPLOCALIP,TCPLOCALPORT,REMOTE_ADDR,REMOTE_PORT,SOCAT_PEERADDR,SOCAT_PEERPORT,SOCAT_SOCKADDR,SOCAT_SOCKPORT",
  // reusePort, which --workers needs to share one port (and greeters under
  // deno run to share the debugger guard on 127.0.0.1:9229), and the Unix
  // datagram socket of systemd's readiness protocol.
  "--unstable-net",
  // A binary has no one to ask: a missing permission is an error.
  "--no-prompt",
  // Per-connection garbage dies young: a 2 MiB new space (V8's default grows
  // to 16 MiB) keeps peak RSS ~8 MB lower for the same CPU (measured with deno task bench).
  "--v8-flags=--max-semi-space-size=2",
];
