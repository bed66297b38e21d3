/**
 * greeter, the command: `deno run --allow-net main.ts --help`. All of it
 * lives in lib/cli/; this file only starts it.
 *
 * @module
 */
import { main } from "./lib/cli/main.ts";

export { main };

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
