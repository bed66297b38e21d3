// The docs that cannot drift: docs/usage.md's option lists and the man
// page's OPTIONS are generated from the flag tables `--help` prints
// (scripts/gen_docs.ts), so a flag added to a table and not to the docs, or
// edited in the docs by hand, fails here; the man page renders cleanly; and
// every relative link of README.md and docs/ leads somewhere.
import { assert, assertEquals } from "@std/assert";
import { GENERATED, renderFile, staleFiles } from "../scripts/gen_docs.ts";
import type { FlagSpec } from "../lib/cli/flags.ts";
import { SERVE_FLAGS } from "../lib/cli/commands/serve.ts";
import { CONNECT_FLAGS } from "../lib/cli/commands/connect.ts";
import { CHECK_FLAGS } from "../lib/cli/commands/check.ts";
import { canRun, ROOT, runCli } from "./_helpers.ts";

const decoder = new TextDecoder();

Deno.test("docs/usage.md and docs/greeter.1 hold what deno task docs writes", async () => {
  assertEquals(await staleFiles(), [], "run deno task docs");
});

Deno.test("gen_docs renderFile() rewrites a section whose flag was edited by hand", async () => {
  // A flag's entry as each file writes it, only in its generated section.
  const entries: Record<string, string> = {
    "docs/usage.md": "`--linger DURATION`",
    "docs/greeter.1": "\\fB\\-\\-linger\\fR",
  };
  assertEquals(Object.keys(entries).sort(), Object.keys(GENERATED).sort());
  for (const [path, entry] of Object.entries(entries)) {
    const text = await Deno.readTextFile(`${ROOT}/${path}`);
    assertEquals(text.split(entry).length, 2, `${path}: ${entry} once`);
    const edited = text.replace(entry, entry.replace("linger", "lingering"));
    assert(edited !== text, path);
    assertEquals(await renderFile(path, edited), text, path);
  }
});

Deno.test("every flag is in --help, docs/usage.md and docs/greeter.1, with its default", async () => {
  const usage = await Deno.readTextFile(`${ROOT}/docs/usage.md`);
  const man = (await Deno.readTextFile(`${ROOT}/docs/greeter.1`))
    .replace(/\\-/g, "-").replace(/\\f[BIR]/g, "").replace(/\n/g, " ");
  const flat = (text: string) => text.replace(/\s+/g, " ");
  const commands: [string[], FlagSpec[]][] = [
    [[], SERVE_FLAGS],
    [["connect"], CONNECT_FLAGS],
    [["check"], CHECK_FLAGS],
  ];
  for (const [command, specs] of commands) {
    const help = await runCli([...command, "--help"]);
    assertEquals(help.code, 0);
    for (const spec of specs) {
      const names = `--${spec.name}${spec.value ? ` ${spec.value}` : ""}`;
      const where = `${["greeter", ...command].join(" ")} ${names}`;
      assert(help.stdout.includes(names), `--help lacks ${where}`);
      assert(usage.includes(`\`${names}\``), `usage.md lacks ${where}`);
      assert(man.includes(names), `greeter.1 lacks ${where}`);
      const fallback = /\(default[^)]*\)/.exec(spec.help)?.[0];
      if (fallback === undefined) continue;
      assert(flat(help.stdout).includes(fallback), `${where}: ${fallback}`);
      assert(flat(usage).includes(fallback), `usage.md ${where}: ${fallback}`);
      assert(flat(man).includes(fallback), `greeter.1 ${where}: ${fallback}`);
    }
  }
});

/** Flags the docs name that are not greeter's: Deno's and the scripts'. */
const OTHER_FLAGS = new Set([
  // deno run, deno install, deno test
  "allow-net",
  "allow-read",
  "allow-write",
  "allow-sys",
  "allow-env",
  "allow-all",
  "allow-run",
  "unstable-net",
  "config",
  "frozen",
  "doc",
  "inspect",
  "v8-flags",
  "no-prompt",
  "lock",
  "import-map",
  "dry-run",
  "allow-dirty",
  // deno task compile, bench and soak
  "target",
  "out-dir",
  "only",
  "connections",
  "rounds",
  "no-write",
  "warmup",
  "startup-runs",
  "seconds",
  "concurrency",
  "soak",
  "tarpit-clients",
  "no-tarpit",
  // deno task docs
  "check",
  // systemd-socket-activate
  "fdname",
  "inetd",
  // Docker's HEALTHCHECK
  "interval",
  "start-period",
  "retries",
  // "a --flag", in the development notes
  "flag",
  // kubectl, curl, openssl and other tools in examples
  "ignore-missing",
  "offline",
  "threshold",
  "platform",
  "name",
  "format",
  "now",
]);

Deno.test("every --flag the docs name is greeter's or listed as another tool's", async () => {
  const known = new Set(
    [...SERVE_FLAGS, ...CONNECT_FLAGS, ...CHECK_FLAGS].map((spec) => spec.name),
  );
  const unknown: string[] = [];
  for (const path of await docFiles()) {
    const text = (await Deno.readTextFile(`${ROOT}/${path}`)).replace(
      /\\-/g,
      "-",
    );
    for (const [, name] of text.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)) {
      if (!known.has(name) && !OTHER_FLAGS.has(name)) {
        unknown.push(`${path}: --${name}`);
      }
    }
  }
  assertEquals([...new Set(unknown)], []);
});

const groff = await canRun("groff", ["--version"]);
Deno.test({
  name: groff
    ? "docs/greeter.1 renders with groff -man -ww with no warnings"
    : "docs/greeter.1 renders with groff -man -ww (skipped: groff is not installed)",
  ignore: !groff,
  async fn() {
    const output = await new Deno.Command("groff", {
      args: ["-man", "-ww", "-z", `${ROOT}/docs/greeter.1`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(decoder.decode(output.stderr), "");
    assertEquals(output.code, 0);
  },
});

const mandoc = await canRun("mandoc", ["-T", "utf8", "/dev/null"]);
Deno.test({
  name: mandoc
    ? "docs/greeter.1 passes mandoc -T lint"
    : "docs/greeter.1 passes mandoc -T lint (skipped: mandoc is not installed)",
  ignore: !mandoc,
  async fn() {
    const output = await new Deno.Command("mandoc", {
      args: ["-T", "lint", `${ROOT}/docs/greeter.1`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(
      decoder.decode(output.stdout) + decoder.decode(output.stderr),
      "",
    );
    assertEquals(output.code, 0);
  },
});

/** README.md, CHANGELOG.md and every page under docs/, relative to ROOT. */
async function docFiles(): Promise<string[]> {
  const files = ["README.md", "CHANGELOG.md"];
  for await (const entry of Deno.readDir(`${ROOT}/docs`)) {
    if (entry.isFile && /\.(md|1)$/.test(entry.name)) {
      files.push(`docs/${entry.name}`);
    }
  }
  return files.sort();
}

/** Markdown without its fenced code blocks and code spans. */
function prose(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "")
    .replace(/`[^`\n]*`/g, "``");
}

/** GitHub's anchors for the headings of a Markdown text. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  const withoutCode = text.replace(
    /^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm,
    "",
  );
  for (const [, heading] of withoutCode.matchAll(/^#{1,6} +(.+?) *#* *$/gm)) {
    const slug = heading.toLowerCase()
      .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    result.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return result;
}

Deno.test("every relative link in README.md and docs/ leads to a file and heading that exist", async () => {
  const broken: string[] = [];
  const texts = new Map<string, string>();
  const read = async (path: string) => {
    if (!texts.has(path)) texts.set(path, await Deno.readTextFile(path));
    return texts.get(path)!;
  };
  let links = 0;
  for (const file of (await docFiles()).filter((f) => f.endsWith(".md"))) {
    const text = await read(`${ROOT}/${file}`);
    for (const [, target] of prose(text).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:
      links++;
      const [path, anchor] = target.split("#");
      const resolved = path === ""
        ? file
        : new URL(path, `file:///${file}`).pathname.slice(1);
      let exists = true;
      try {
        await Deno.stat(`${ROOT}/${resolved}`);
      } catch {
        exists = false;
      }
      if (!exists) {
        broken.push(`${file}: ${target} (no such file)`);
      } else if (anchor !== undefined && resolved.endsWith(".md")) {
        if (!anchors(await read(`${ROOT}/${resolved}`)).has(anchor)) {
          broken.push(`${file}: ${target} (no such heading)`);
        }
      }
    }
  }
  assert(links > 50, `only ${links} links found: is the parser broken?`);
  assertEquals(broken, []);
});

Deno.test("README.md stays a front door: at most 12 KiB, lines of at most 100", async () => {
  const readme = await Deno.readFile(`${ROOT}/README.md`);
  assert(readme.length <= 12_288, `${readme.length} bytes`);
  const long = decoder.decode(readme).split("\n").filter((line) =>
    line.length > 100
  );
  assertEquals(long, []);
});

Deno.test("CHANGELOG.md has an entry for deno.json's version, and the man page names it", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const changelog = await Deno.readTextFile(`${ROOT}/CHANGELOG.md`);
  assert(
    changelog.includes(`\n## [${config.version}] - `),
    `CHANGELOG.md lacks ## [${config.version}]`,
  );
  const man = await Deno.readTextFile(`${ROOT}/docs/greeter.1`);
  assert(man.includes(`"greeter ${config.version}"`));
});
