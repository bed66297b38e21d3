// Baseline for the greeter benchmark: Node's net server, the simplest way.
// Usage: node scripts/bench/node_server.mjs PORT
import { createServer } from "node:net";

const port = Number(process.argv[2] ?? 0);
const greeting = Buffer.from("Connection Established\r\n");
const server = createServer((socket) => {
  socket.on("error", () => {});
  socket.end(greeting);
});
server.listen({ host: "127.0.0.1", port, backlog: 511 }, () => {
  console.log(`ready ${server.address().port}`);
});
