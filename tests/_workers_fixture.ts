// Runs startWorkers() with tests/_crashing_worker.ts and prints what
// happened as JSON: for tests/workers_test.ts (needs --unstable-net).
import { parseCommand } from "../lib/cli/main.ts";
import type { ServeCommand } from "../lib/cli/commands/serve.ts";
import { startWorkers } from "../lib/cli/workers/pool.ts";
import { prepare } from "../lib/cli/setup.ts";

const command = parseCommand(Deno.args) as ServeCommand;
let logged = "";
const group = await startWorkers(
  command,
  await prepare(command, true),
  (lines) => logged += lines.map((line) => line + "\n").join(""),
  new URL("./_crashing_worker.ts", import.meta.url),
);
const failure = await group.finished;
console.log(JSON.stringify({
  failure,
  draining: group.draining,
  accepted: group.stats.accepted,
  logged,
}));
