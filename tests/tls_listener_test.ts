import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  checkCertificateAndKey,
  contextOf,
  serveTlsOn,
  type TlsListener,
} from "../lib/server/tls_listener.ts";
import type { Conn } from "../lib/server/connection_table.ts";
import {
  canRun,
  DEFAULT_BYTES,
  ownProcessTest,
  pool,
  withTempDir,
} from "./_helpers.ts";
import { type Certificates, makeCertificates, run } from "./_tools.ts";

const decoder = new TextDecoder();

/** TLS on a new TCP listener, as the server opens one. */
function listenTls(
  options: { hostname: string; port: number; cert: string; key: string },
): TlsListener {
  const { hostname, port, cert, key } = options;
  const context = contextOf(cert, key);
  return serveTlsOn(Deno.listen({ hostname, port }), context);
}

/** Runs `fn` with certificates and a listener on a loopback port. */
function withListener(
  fn: (listener: TlsListener, certificates: Certificates) => Promise<void>,
): Promise<void> {
  return withTempDir(async (dir) => {
    const certificates = await makeCertificates(dir);
    const listener = listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: certificates.cert,
      key: certificates.key,
    });
    try {
      await fn(listener, certificates);
    } finally {
      try {
        listener.close();
      } catch {
        // The test closed it already.
      }
    }
  });
}

/** What the server core does with one client: greet, end, linger, close. */
async function greet(conn: Conn) {
  try {
    await conn.write(DEFAULT_BYTES);
    await conn.closeWrite();
    const scratch = new Uint8Array(1024);
    while (await conn.read(scratch) !== null) {
      // Discard what the client sends until it closes.
    }
  } catch {
    // The client failed or went away; closing is all that is left.
  } finally {
    conn.close();
  }
}

/** Greets every client until the listener closes. */
async function acceptLoop(listener: TlsListener) {
  const served: Promise<void>[] = [];
  while (true) {
    let conn: Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (error instanceof Deno.errors.BadResource) break;
      throw error;
    }
    served.push(greet(conn));
  }
  await Promise.all(served);
}

/** Reads until the end or an error; returns the bytes, or the error's name. */
async function readToEnd(conn: Deno.Conn): Promise<Uint8Array | string> {
  const chunks: number[] = [];
  const buffer = new Uint8Array(1024);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) return new Uint8Array(chunks);
      chunks.push(...buffer.subarray(0, n));
    }
  } catch (error) {
    return (error as Error).name;
  }
}

async function tlsGreeting(port: number, ca: string) {
  const conn = await Deno.connectTls({
    hostname: "localhost",
    port,
    caCerts: [ca],
  });
  try {
    return await readToEnd(conn);
  } finally {
    conn.close();
  }
}

/** Whether `promise` settles within `ms`; the timer is always cleared. */
async function settlesWithin(promise: Promise<unknown>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(() => true, () => true),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** What this process holds open, and its TCP connections on one port. */
interface Descriptors {
  /**
   * Open descriptors (/proc/PID/fd), Unix sockets left out: Deno opens a
   * Unix socket pair of its own about half a second after it starts (seen
   * with strace), which would move a count taken earlier. The listener never
   * opens Unix sockets.
   */
  open: number;
  /** Accepted connections on the port (local port), as descriptors. */
  server: number;
  /** Connections this process made to the port, as descriptors. */
  client: number;
}

/**
 * ss (iproute2) asks the kernel for the sockets of one port; /proc/net/tcp
 * lists every socket of the host, tens of thousands in TIME_WAIT after a
 * load test, and costs a second of CPU per read.
 */
const SS = await canRun("ss", ["-V"]);

/** Which side of `port` each TCP socket is on, by inode, listeners left out. */
function sidesOf(tcp: string, port: number): Map<string, "server" | "client"> {
  const sides = new Map<string, "server" | "client">();
  if (SS) {
    // State Recv-Q Send-Q Local:Port Peer:Port ... ino:INODE ...
    for (const line of tcp.split("\n")) {
      const [, , , local, remote] = line.trim().split(/\s+/);
      const inode = /\bino:(\d+)/.exec(line)?.[1];
      if (inode === undefined) continue;
      if (local.endsWith(`:${port}`)) sides.set(inode, "server");
      else if (remote.endsWith(`:${port}`)) sides.set(inode, "client");
    }
    return sides;
  }
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const line of tcp.split("\n")) {
    // sl local_address rem_address st ... uid timeout inode
    const [, local, remote, state, , , , , , inode] = line.trim().split(/\s+/);
    if (state === "0A") continue; // Listening.
    if (local?.endsWith(hexPort)) sides.set(inode, "server");
    else if (remote?.endsWith(hexPort)) sides.set(inode, "client");
  }
  return sides;
}

/**
 * Reads /proc through a subprocess, as Deno reads /proc only with
 * --allow-all: one `ls`, `cat` and `ss` per call, the same pipes open each
 * time.
 */
async function descriptors(port: number): Promise<Descriptors> {
  const tcp = SS
    ? 'ss -tanHe exclude listening exclude time-wait "( sport = :$1 or dport = :$1 )"'
    : "cat /proc/net/tcp /proc/net/tcp6";
  const script = 'ls -l "/proc/$0/fd"; echo ==; cat /proc/net/unix; ' +
    `echo ==; ${tcp}`;
  const output = await new Deno.Command("sh", {
    args: ["-c", script, String(Deno.pid), String(port)],
    stdin: "null",
    stderr: "null",
  }).output();
  assert(output.success, "Cannot read /proc");
  const [fds, unix, tcpText] = decoder.decode(output.stdout).split("\n==\n");
  const unixInodes = new Set(
    unix.split("\n").slice(1).map((line) => line.trim().split(/\s+/)[6]),
  );
  const sides = sidesOf(tcpText, port);
  const counts = { open: 0, server: 0, client: 0 };
  for (const line of fds.split("\n")) {
    const target = line.split(" -> ")[1];
    if (target === undefined) continue;
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode === undefined || !unixInodes.has(inode)) counts.open++;
    const side = sides.get(inode ?? "");
    if (side) counts[side]++;
  }
  return counts;
}

/** Polls `descriptors(port)` until `done` holds; fails after `ms`. */
async function descriptorsUntil(
  port: number,
  done: (now: Descriptors) => boolean,
  ms = 3_000,
): Promise<Descriptors> {
  const deadline = performance.now() + ms;
  while (true) {
    const now = await descriptors(port);
    if (done(now)) return now;
    if (performance.now() > deadline) {
      throw new Error(`Descriptors not as expected: ${JSON.stringify(now)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until no connection to or from `port` holds a descriptor. */
function noConnectionsOn(port: number) {
  return descriptorsUntil(port, (now) => now.server + now.client === 0);
}

Deno.test("serveTlsOn greets Deno.connectTls and openssl s_client with the exact bytes", async () => {
  await withListener(async (listener, { ca, caFile }) => {
    const loop = acceptLoop(listener);
    const port = listener.addr.port;
    assertEquals(await tlsGreeting(port, ca), DEFAULT_BYTES);

    const openssl = await run("openssl", [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-CAfile",
      caFile,
      "-verify_return_error",
      "-servername",
      "localhost",
      "-quiet",
    ]);
    assertEquals(openssl.code, 0, openssl.stderr);
    assertEquals(openssl.stdout, "Connection Established\r\n", openssl.stderr);

    // A client that ends its side right after the handshake still gets the
    // greeting (the connection is half-open, as over plain TCP).
    const halfClosed = await Deno.connectTls({
      hostname: "localhost",
      port,
      caCerts: [ca],
    });
    await halfClosed.handshake();
    await halfClosed.closeWrite();
    assertEquals(await readToEnd(halfClosed), DEFAULT_BYTES);
    halfClosed.close();

    listener.close();
    await loop;
  });
});

// It counts this process's descriptors: in a process of its own.
ownProcessTest(import.meta.url, {
  name:
    "serveTlsOn frees the descriptors of stalled handshakes once their connections are closed",
  fn: stalledHandshakesAreFreed,
});

async function stalledHandshakesAreFreed() {
  await withListener(async (listener, { ca }) => {
    const port = listener.addr.port;
    // Warm up: the first TLS connection loads what later ones share.
    const first = listener.accept().then(greet);
    assertEquals(await tlsGreeting(port, ca), DEFAULT_BYTES);
    await first;
    // Deno closes a socket's descriptor when its last operation ends, which
    // can be a moment after close().
    await noConnectionsOn(port);
    // Other descriptors may still be closing (a subprocess's pipes, a TLS
    // socket's last alert): the baseline is a count that held for 100 ms.
    let baseline = (await descriptors(port)).open;
    for (let again = -1; again !== baseline;) {
      if (again !== -1) baseline = again;
      await new Promise((resolve) => setTimeout(resolve, 100));
      again = (await descriptors(port)).open;
    }

    const count = 200;
    const accepted: Conn[] = [];
    const accepting = (async () => {
      while (accepted.length < count) accepted.push(await listener.accept());
    })();
    // One client in four sends the first 40 bytes of a ClientHello whose
    // record header announces 512; the others send nothing.
    const partialHello = new Uint8Array(40);
    partialHello.set([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]);
    const clients = await pool(count, 20, async (index) => {
      const client = await Deno.connect({ hostname: "127.0.0.1", port });
      if (index % 4 === 0) await client.write(partialHello);
      return client;
    });
    await accepting;
    // The server core writes the greeting at once; it waits for a handshake
    // that never comes.
    const writes = accepted.map((conn) =>
      conn.write(DEFAULT_BYTES).then(
        () => "written",
        (error: Error) => error.name,
      )
    );
    assert(!await settlesWithin(Promise.race(writes), 100));
    // Each stalled handshake holds its descriptor: they are counted one by
    // one (not as the total, which other descriptors closing meanwhile
    // would lower).
    const peak = await descriptors(port);
    assertEquals([peak.server, peak.client], [count, count]);

    // The deadline passes: the server closes them all.
    for (const conn of accepted) conn.close();
    // Back to the baseline, plus the clients' own sockets.
    const freed = await descriptorsUntil(
      port,
      (now) => now.open <= baseline + count,
    );
    assertEquals([freed.server, freed.client], [0, count]);
    assertEquals(new Set(await Promise.all(writes)), new Set(["Interrupted"]));

    // The clients still hold their sockets (counted above), and each sees
    // the server's FIN (node:tls had read the partial ClientHellos, so none
    // is left unread to turn the close into a reset).
    const seen = await Promise.all(clients.map(readToEnd));
    assertEquals(seen, clients.map(() => new Uint8Array(0)));
    for (const client of clients) client.close();

    const next = listener.accept().then(greet);
    assertEquals(await tlsGreeting(port, ca), DEFAULT_BYTES);
    await next;
    // Sockets close a moment after close() when an operation was pending.
    await descriptorsUntil(
      port,
      (now) => now.open <= baseline && now.server + now.client === 0,
    );
  });
}

Deno.test("TlsConnection.close rejects a pending read and a pending write, and frees the socket", async () => {
  await withListener(async (listener, { ca }) => {
    const port = listener.addr.port;
    // A client that completes the handshake, then neither reads nor writes.
    const client = await Deno.connectTls({
      hostname: "localhost",
      port,
      caCerts: [ca],
    });
    const server = await listener.accept();
    await client.handshake();

    const read = server.read(new Uint8Array(64));
    assert(!await settlesWithin(read, 100), "the read waits for data");
    server.close();
    await assertRejects(() => read, Deno.errors.Interrupted);
    await assertRejects(
      () => server.read(new Uint8Array(1)),
      Deno.errors.BadResource,
    );
    await assertRejects(
      () => server.write(new Uint8Array(1)),
      Deno.errors.BadResource,
    );
    await assertRejects(() => server.closeWrite(), Deno.errors.BadResource);
    server.close(); // A second close does nothing.

    const reader = await Deno.connectTls({
      hostname: "localhost",
      port,
      caCerts: [ca],
    });
    const writer = await listener.accept();
    await reader.handshake();
    // Write until the kernel's buffers are full: the client reads nothing.
    const chunk = new Uint8Array(1 << 20);
    let pending: Promise<number> | undefined;
    for (let i = 0; i < 64 && pending === undefined; i++) {
      const write = writer.write(chunk);
      if (!await settlesWithin(write, 200)) pending = write;
      else await write;
    }
    assert(pending !== undefined, "a write blocked within 64 MiB");
    writer.close();
    await assertRejects(() => pending, Deno.errors.Interrupted);
    await descriptorsUntil(port, (now) => now.server === 0);
    client.close();
    reader.close();
  });
});

Deno.test("TlsConnection rejects a write pending in a handshake the client abandons", async () => {
  await withListener(async (listener) => {
    const port = listener.addr.port;
    const client = await Deno.connect({ hostname: "127.0.0.1", port });
    const server = await listener.accept();
    const write = server.write(DEFAULT_BYTES);
    assert(!await settlesWithin(write, 100));
    client.close();
    await assertRejects(() => write, Deno.errors.UnexpectedEof);
    server.close();
    await noConnectionsOn(port);
  });
});

Deno.test("TlsListener.close ends a pending accept with BadResource, and the loop over it", async () => {
  await withListener(async (listener) => {
    const pending = listener.accept();
    listener.close();
    await assertRejects(() => pending, Deno.errors.BadResource);
  });
  await withListener(async (listener) => {
    const loop = acceptLoop(listener);
    listener.close();
    await loop;
  });
});

Deno.test("TlsListener.accept errors keep their code, such as EMFILE", async () => {
  await withTempDir(async (dir) => {
    const { cert, key } = await makeCertificates(dir);
    // A process limited to 40 descriptors connects to its own listener until
    // it runs out, then accepts: the accept fails for want of a descriptor.
    const code = `
      import { contextOf, serveTlsOn } from ${
      JSON.stringify(new URL("../lib/server/tls_listener.ts", import.meta.url))
    };
      const listener = serveTlsOn(Deno.listen({ hostname: "127.0.0.1", port: 0 }),
        contextOf(Deno.env.get("CERT"), Deno.env.get("KEY")));
      const clients = [];
      const held = [];
      try {
        while (true) {
          clients.push(await Deno.connect({ hostname: "127.0.0.1",
            port: listener.addr.port }));
        }
      } catch {
        // Out of descriptors; the connected ones wait to be accepted.
      }
      try {
        while (true) held.push(await listener.accept());
      } catch (error) {
        console.log(JSON.stringify({ name: error.name, code: error.code,
          clients: clients.length > 0 }));
      }
      for (const conn of [...held, ...clients]) conn.close();
      listener.close();
    `;
    const { code: exit, stdout, stderr } = await new Deno.Command("sh", {
      args: [
        "-c",
        'ulimit -n 40 && exec "$0" eval "$1"',
        Deno.execPath(),
        code,
      ],
      env: { CERT: cert, KEY: key, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    assertEquals(exit, 0, decoder.decode(stderr));
    assertEquals(JSON.parse(decoder.decode(stdout)), {
      name: "Error",
      code: "EMFILE",
      clients: true,
    });
  });
});

Deno.test("serveTlsOn refuses an unreadable certificate or key, and a foreign key", async () => {
  await withTempDir(async (dir) => {
    const { cert, key, caKey } = await makeCertificates(dir);
    const listen = (options: Partial<Parameters<typeof listenTls>[0]>) => () =>
      listenTls({ hostname: "127.0.0.1", port: 0, cert, key, ...options });
    assertThrows(
      listen({ cert: "not a certificate" }),
      TypeError,
      "The TLS certificate is not a PEM certificate",
    );
    assertThrows(
      listen({ key: "not a key" }),
      TypeError,
      "The TLS key is not a PEM private key",
    );
    // A foreign key is found once node's TLS has loaded: the pair is
    // checked in full, and the listener fails at its first accept.
    await assertRejects(
      () => checkCertificateAndKey(cert, caKey),
      RangeError,
      "The TLS key does not belong to the certificate",
    );
    const foreign = listen({ key: caKey })();
    const error = await assertRejects(
      () => foreign.accept(),
      Deno.errors.BadResource,
      "Cannot serve TLS: The TLS key does not belong to the certificate",
    );
    assertEquals((error.cause as Error).name, "RangeError");
    const listener = listen({})();
    assertEquals(listener.addr.hostname, "127.0.0.1");
    listener.close();
  });
});
