// Runs startWorkers() with the real worker module, asks for a reload that
// every worker refuses together with a stats refresh, then a good reload,
// and prints the answers as JSON: for tests/workers_test.ts (needs
// --unstable-net).
import { parseCommand } from "../lib/cli/main.ts";
import type { ServeCommand } from "../lib/cli/commands/serve.ts";
import { startWorkers } from "../lib/cli/workers/pool.ts";
import { prepare } from "../lib/cli/setup.ts";

const command = parseCommand(Deno.args) as ServeCommand;
const group = await startWorkers(
  command,
  await prepare(command, true),
  () => {},
);
const next = await prepare(command, false);
// A key too short for --log-address hash: only a worker's swap sees it.
const [refused] = await Promise.all([
  group.swap({ ...next, key: new Uint8Array(1) }),
  group.refresh!(),
]);
const [, , reloaded] = await Promise.all([
  group.refresh!(),
  group.refresh!(),
  group.swap(next),
]);
group.shutdown();
console.log(
  JSON.stringify({ refused, reloaded, failure: await group.finished }),
);
