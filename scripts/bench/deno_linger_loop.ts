/**
 * Baseline for greeter's default (lingering) close: the plain Deno accept
 * loop plus what lingering needs and nothing else: after the greeting, close
 * the write side (`closeWrite`, the FIN) and read until the client closes,
 * so that a client that sent something is never reset. The difference to
 * scripts/bench/deno_loop.ts is what the runtime charges for lingering; the
 * difference to greeter is what greeter adds to it. Usage:
 * `deno run --allow-net scripts/bench/deno_linger_loop.ts PORT`.
 *
 * @module
 */
const port = Number(Deno.args[0] ?? 0);
const greeting = new TextEncoder().encode("Connection Established\r\n");
const scratch = new Uint8Array(16 * 1024);
const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`ready ${listener.addr.port}`);

async function serve(conn: Deno.Conn): Promise<void> {
  try {
    await conn.write(greeting);
    await conn.closeWrite();
    while (await conn.read(scratch) !== null) {
      // Discard what the client sends until it closes.
    }
  } catch {
    // The client reset: nothing to do but close.
  } finally {
    conn.close();
  }
}

for await (const conn of listener) serve(conn);
