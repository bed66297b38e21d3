// The @std modules come from npm:deno-std, which ships no types; deno.json
// maps them to types/std/, which gives them their JSR signatures. This proves
// the types are there: a file that misuses them must fail `deno check`, on
// exactly the lines it marks. Were the imports untyped (`any`), it would pass.
import { assertEquals, assertMatch } from "@std/assert";
import { ROOT } from "./_helpers.ts";

const FIXTURE = `${ROOT}/tests/fixtures/std_misuse.ts`;

Deno.test("deno check fails on each misuse of parseArgs and the assertions, and only there", async () => {
  // deno.json excludes tests/fixtures/ (so `deno task check` stays green), and
  // an excluded file is not checked even when named. A config of the same
  // imports, with paths made absolute, checks it.
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const imports: Record<string, string> = {};
  for (const [name, target] of Object.entries<string>(config.imports)) {
    imports[name] = target.startsWith("./")
      ? new URL(target, `file://${ROOT}/`).href
      : target;
  }
  const dir = await Deno.makeTempDir({ prefix: "greeter-std-types-" });
  try {
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({ imports }),
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--no-lock", "--config", `${dir}/deno.json`, FIXTURE],
      stdin: "null",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(output.stderr) +
      new TextDecoder().decode(output.stdout);
    assertEquals(output.code, 1, text);
    assertMatch(text, /error: Type checking failed/);

    const source = await Deno.readTextFile(FIXTURE);
    const marked = source.split("\n").flatMap((line, i) =>
      line.endsWith("// error") ? [i + 1] : []
    );
    const failed = [
      ...text.matchAll(/std_misuse\.ts:(\d+):\d+/g),
    ].map((match) => Number(match[1]));
    assertEquals(marked.length, 7);
    assertEquals([...new Set(failed)].sort((a, b) => a - b), marked, text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
