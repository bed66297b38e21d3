/**
 * The proofs of socket activation too slow for the test suite, on loopback
 * (after the same clients against greeter on its own port, to compare):
 *
 * 1. Under `systemd-socket-activate`, greeter starts on the first client
 *    and then serves N more (default 10,000), each greeting checked whole.
 * 2. Under scripts/socket_holder.py (which holds the socket as systemd does
 *    and restarts greeter on it), clients connect without pause while
 *    greeter is restarted R times (default 3): none may be refused, and
 *    every greeting must be whole.
 *
 *   deno run --allow-all scripts/activation_soak.ts [--connections N]
 *     [--restarts R]
 *
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
const EXPECTED = "Connection Established\r\n";
const CONCURRENCY = 32;
const args = parseArgs(Deno.args, {
  string: ["connections", "restarts"],
  default: { connections: "10000", restarts: "3" },
});
const connections = Number(args.connections);
const restarts = Number(args.restarts);
const greeter = [
  Deno.execPath(),
  "run",
  "--no-prompt",
  "--allow-net",
  "--allow-read",
  "--allow-env",
  MAIN,
  "--quiet",
  "--linger",
  "0",
];

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

type Result = "greeted" | "refused" | "partial" | "error";

/** One client: connects, reads to the end, compares (bounded: 5 s). */
async function client(port: number): Promise<Result> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch (error) {
    return error instanceof Deno.errors.ConnectionRefused ? "refused" : "error";
  }
  const timer = setTimeout(() => conn.close(), 5_000);
  let text = "";
  try {
    const buffer = new Uint8Array(256);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    conn.close();
  } catch {
    return "error";
  } finally {
    clearTimeout(timer);
  }
  return text === EXPECTED ? "greeted" : "partial";
}

function tally(results: Result[]): Record<Result, number> {
  const counts = { greeted: 0, refused: 0, partial: 0, error: 0 };
  for (const result of results) counts[result]++;
  return counts;
}

/** Runs `count` clients, CONCURRENCY at a time, until `stop()` if given. */
async function clients(
  port: number,
  count: number,
  running: () => boolean = () => true,
): Promise<Result[]> {
  const results: Result[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count && running()) {
        next++;
        results.push(await client(port));
      }
    }),
  );
  return results;
}

async function readLine(
  reader: ReadableStreamDefaultReader<string>,
  pattern: RegExp,
): Promise<string> {
  let text = "";
  const deadline = Date.now() + 10_000;
  while (!pattern.test(text)) {
    if (Date.now() > deadline) throw new Error(`No ${pattern} in ${text}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`Ended before ${pattern}: ${text}`);
    text += value;
  }
  return text;
}

// 0. For comparison: greeter binding its own port, N connections.
{
  const port = freePort();
  const server = new Deno.Command(greeter[0], {
    args: [...greeter.slice(1), "--host", "127.0.0.1", "--port", String(port)],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = server.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  await readLine(reader, /listening/);
  const start = performance.now();
  const results = await clients(port, connections);
  const seconds = (performance.now() - start) / 1000;
  server.kill("SIGTERM");
  await server.status;
  await reader.cancel();
  console.log(
    `greeter on its own port: ${connections} clients in ` +
      `${seconds.toFixed(1)} s (${(connections / seconds).toFixed(0)}/s):`,
    tally(results),
  );
}

// 1. systemd-socket-activate, N connections.
{
  const port = freePort();
  const host = new Deno.Command("systemd-socket-activate", {
    args: [`--listen=127.0.0.1:${port}`, ...greeter],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = host.stderr.pipeThrough(new TextDecoderStream()).getReader();
  await readLine(reader, /Listening on/);
  const firstStart = performance.now();
  const first = await client(port);
  const firstMs = performance.now() - firstStart;
  const start = performance.now();
  const results = await clients(port, connections);
  const seconds = (performance.now() - start) / 1000;
  host.kill("SIGTERM");
  await host.status;
  await reader.cancel();
  console.log(
    `systemd-socket-activate: first client (greeter starting) ${first} in ` +
      `${firstMs.toFixed(0)} ms; then ${connections} clients in ` +
      `${seconds.toFixed(1)} s (${(connections / seconds).toFixed(0)}/s, ` +
      `${CONCURRENCY} at a time):`,
    tally(results),
  );
}

// 2. Restarts while the socket stays open.
{
  const holder = new Deno.Command("python3", {
    args: [`${ROOT}scripts/socket_holder.py`, "127.0.0.1", "0", ...greeter],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = holder.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  const port = Number(
    /listening (\d+)/.exec(await readLine(reader, /listening \d+/))![1],
  );
  const writer = holder.stdin.getWriter();
  let running = true;
  const load = clients(port, Infinity, () => running);
  for (let i = 0; i < restarts; i++) {
    await new Promise((resolve) => setTimeout(resolve, 700));
    await writer.write(new TextEncoder().encode("restart\n"));
    await readLine(reader, /restarted/);
  }
  await new Promise((resolve) => setTimeout(resolve, 700));
  running = false;
  const results = await load;
  await writer.close();
  await holder.status;
  await reader.cancel();
  console.log(
    `socket held open, greeter restarted ${restarts} times under load: ` +
      `${results.length} clients:`,
    tally(results),
  );
}
