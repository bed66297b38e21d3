/**
 * The tarpit benchmark's Deno floor: accepts and keeps every connection in
 * an array, and does nothing else, so its RSS per held client is what Deno
 * itself costs for an open `Deno.Conn`. Usage:
 * `deno run --allow-net scripts/bench/deno_hold.ts PORT`.
 *
 * @module
 */
const port = Number(Deno.args[0] ?? 0);
const listener = Deno.listen({ hostname: "127.0.0.1", port });
const held: Deno.Conn[] = [];
console.log(`ready ${listener.addr.port}`);
for await (const conn of listener) held.push(conn);
