// Shared by the preset and input tests: a preset's greeting made the way
// greeter makes it at start.
import { complete, prepare } from "../lib/cli/setup.ts";
import { parseServe, type ServeCommand } from "../lib/cli/commands/serve.ts";
import type { GreetingSource } from "../lib/greeting/template.ts";
import type { PresetName } from "../lib/greeting/presets.ts";

/**
 * The greeting of `--preset NAME [--quotes-file PATH] [--max-file-size N]`,
 * made as greeter makes it at start: parsed, prepared and completed.
 */
export async function loadPreset(
  preset: PresetName,
  { quotesFile, maxFileSize }: { quotesFile?: string; maxFileSize?: number } =
    {},
): Promise<GreetingSource> {
  const command = parseServe([
    "--preset",
    preset,
    ...(quotesFile === undefined ? [] : ["--quotes-file", quotesFile]),
    ...(maxFileSize === undefined ? [] : ["--max-file-size", `${maxFileSize}`]),
  ]) as ServeCommand;
  return (await complete(command, await prepare(command, true))).greeting!;
}
