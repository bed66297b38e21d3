/**
 * greeter, the command: `deno run --allow-net main.ts --help`. All of it
 * lives in lib/cli/; this file only starts it.
 *
 * @module
 */
import { holdSignals } from "./lib/cli/signals.ts";

/**
 * Runs greeter with the given arguments and resolves to the exit code.
 * Every failure is reported as one line on stderr, never a stack trace.
 */
export async function main(args: string[]): Promise<number> {
  const cli = await import("./lib/cli/main.ts");
  return await cli.main(args);
}

if (import.meta.main) {
  // A server's signals are listened for before the rest of greeter loads,
  // so that none that comes while it starts is fatal; the client commands
  // keep the default, which ends them.
  // --inetd keeps them too: its one client ends with the default action.
  const client = Deno.args[0] === "connect" || Deno.args[0] === "check" ||
    Deno.args.includes("--inetd");
  if (!client) holdSignals();
  Deno.exit(await main(Deno.args));
}
