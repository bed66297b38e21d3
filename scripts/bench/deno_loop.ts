/**
 * Baseline for the greeter benchmark: the simplest idiomatic Deno greeting
 * server. Usage: `deno run --allow-net scripts/bench/deno_loop.ts PORT`.
 *
 * @module
 */
const port = Number(Deno.args[0] ?? 0);
const greeting = new TextEncoder().encode("Connection Established\r\n");
const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`ready ${listener.addr.port}`);
for await (const conn of listener) {
  conn.write(greeting).catch(() => {}).finally(() => conn.close());
}
