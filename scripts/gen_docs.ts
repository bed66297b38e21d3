/**
 * Writes the option lists of docs/usage.md and of the man page
 * docs/greeter.1 from the flag tables the parser and `--help` use
 * (SERVE_FLAGS, CONNECT_FLAGS, CHECK_FLAGS), so the three cannot drift,
 * and the man page's title from the version in deno.json.
 * Only the text between each pair of markers is generated; the rest of
 * each file is written by hand.
 *
 *   deno task docs            rewrite the generated sections
 *   deno task docs --check    exit 1 if any is not what would be written
 *
 * @module
 */
import { SERVE_FLAGS } from "../lib/cli/commands/serve.ts";
import { CONNECT_FLAGS } from "../lib/cli/commands/connect.ts";
import { CHECK_FLAGS } from "../lib/cli/commands/check.ts";
import {
  type FlagSpec,
  type GroupedFlagSpec,
  groupFlags,
  wrapText,
} from "../lib/cli/flags.ts";
import { VERSION } from "../lib/version.ts";

const ROOT = new URL("../", import.meta.url);

/** A flag's names as `-p`, `--port PORT`, and whether it repeats. */
function parts(spec: FlagSpec): { short?: string; long: string } {
  return {
    short: spec.short && `-${spec.short}`,
    long: `--${spec.name}${spec.value ? ` ${spec.value}` : ""}`,
  };
}

/** What a flag does, as `--help` says it, and whether it repeats. */
function meaning(spec: FlagSpec): string {
  return spec.help + (spec.repeatable ? " (repeatable)" : "") + ".";
}

/** A Markdown list of flags, one item each. */
function markdownList(specs: FlagSpec[]): string {
  return specs.map((spec) => {
    const { short, long } = parts(spec);
    const names = (short ? `\`${short}\`, ` : "") + `\`${long}\``;
    // One line each: deno fmt wraps them (see denoFmtMarkdown).
    return `- ${names}: ${meaning(spec)}`;
  }).join("\n");
}

/** The server's flags in Markdown, under a heading per group. */
function markdownServe(specs: GroupedFlagSpec[]): string {
  return groupFlags(specs).map(({ title, specs }) =>
    `### ${title}\n\n${markdownList(specs)}`
  ).join("\n\n");
}

/** Text made safe for roff: backslashes, hyphens, and a leading dot. */
function roff(text: string): string {
  return text.replace(/\\/g, "\\e").replace(/-/g, "\\-")
    .replace(/^([.'])/, "\\&$1");
}

/** The longest roff input line (`mandoc -T lint` asks for 80 bytes). */
const ROFF_WIDTH = 80;

/**
 * Breaks roff text into lines of at most {@linkcode ROFF_WIDTH} at spaces,
 * never starting a line with a control character (`.` or `'`).
 */
function roffLines(text: string): string {
  return wrapText(text, ROFF_WIDTH)
    .map((line, i) => i > 0 && /^[.']/.test(line) ? `\\&${line}` : line)
    .join("\n");
}

/** A roff `.TP` paragraph per flag. */
function roffList(specs: FlagSpec[]): string {
  return specs.map((spec) => {
    const value = spec.value ? ` \\fI${roff(spec.value)}\\fR` : "";
    const names = (spec.short ? `\\fB\\-${spec.short}\\fR, ` : "") +
      `\\fB\\-\\-${roff(spec.name)}\\fR${value}`;
    return `.TP\n${names}\n${roffLines(roff(meaning(spec)))}`;
  }).join("\n");
}

/** The server's flags in roff, under a subsection per group. */
function roffServe(specs: GroupedFlagSpec[]): string {
  return groupFlags(specs).map(({ title, specs }) =>
    `.SS ${title}\n${roffList(specs)}`
  ).join("\n");
}

/**
 * The man page's title line: greeter's version, dated as CHANGELOG.md
 * dates that version.
 *
 * @throws {Error} If CHANGELOG.md has no dated entry for the version.
 */
function roffTitle(): string {
  const changelog = Deno.readTextFileSync(new URL("CHANGELOG.md", ROOT));
  const escaped = VERSION.replace(/[.]/g, "\\.");
  const date = new RegExp(`^## \\[${escaped}\\] - (\\d{4}-\\d{2}-\\d{2})`, "m")
    .exec(changelog)?.[1];
  if (date === undefined) {
    throw new Error(
      `CHANGELOG.md has no "## [${VERSION}] - YYYY-MM-DD" entry for ` +
        "deno.json's version",
    );
  }
  return `.TH GREETER 1 ${date} "greeter ${VERSION}" "User Commands"`;
}

/** How one kind of file marks where a generated section begins and ends. */
interface Markers {
  begin(name: string): string;
  end(name: string): string;
  /** Lays out the whole file as `deno task check` wants it. */
  format(text: string): Promise<string>;
}

/** `text` as `deno fmt` formats Markdown (it wraps prose at 80 columns). */
async function denoFmtMarkdown(text: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  if (code !== 0) {
    throw new Error(`deno fmt failed: ${new TextDecoder().decode(stderr)}`);
  }
  return new TextDecoder().decode(stdout);
}

const MARKDOWN_MARKERS: Markers = {
  begin: (name) =>
    `<!-- generated: ${name} by deno task docs (scripts/gen_docs.ts); do not edit -->`,
  end: (name) => `<!-- end generated: ${name} -->`,
  format: denoFmtMarkdown,
};

const ROFF_MARKERS: Markers = {
  begin: (name) =>
    `.\\" generated: ${name} by deno task docs (scripts/gen_docs.ts); do not edit`,
  end: (name) => `.\\" end generated: ${name}`,
  format: (text) => Promise.resolve(text),
};

/** Each generated file: its markers, and its sections by name. */
export const GENERATED: Record<
  string,
  { markers: Markers; sections: Record<string, () => string> }
> = {
  "docs/usage.md": {
    markers: MARKDOWN_MARKERS,
    sections: {
      "serve options": () => markdownServe(SERVE_FLAGS),
      "connect options": () => markdownList(CONNECT_FLAGS),
      "check options": () => markdownList(CHECK_FLAGS),
    },
  },
  "docs/greeter.1": {
    markers: ROFF_MARKERS,
    sections: {
      "title": roffTitle,
      "serve options": () => roffServe(SERVE_FLAGS),
      "connect options": () => roffList(CONNECT_FLAGS),
      "check options": () => roffList(CHECK_FLAGS),
    },
  },
};

/**
 * `text` (the file `path`) with each of its generated sections rewritten,
 * and laid out as `deno fmt` would.
 *
 * @throws {Error} If a section's markers are missing or out of order.
 */
export async function renderFile(path: string, text: string): Promise<string> {
  const { markers, sections } = GENERATED[path];
  for (const [name, render] of Object.entries(sections)) {
    const begin = markers.begin(name);
    const end = markers.end(name);
    const from = text.indexOf(`${begin}\n`);
    const to = text.indexOf(`\n${end}`, from);
    if (from === -1 || to === -1) {
      throw new Error(
        `${path} has no generated section "${name}": add the lines\n` +
          `${begin}\n${end}`,
      );
    }
    text = `${text.slice(0, from + begin.length + 1)}${render()}${
      text.slice(to)
    }`;
  }
  return await markers.format(text);
}

/** The generated files whose committed text is not what would be written. */
export async function staleFiles(): Promise<string[]> {
  const stale: string[] = [];
  for (const path of Object.keys(GENERATED)) {
    const text = await Deno.readTextFile(new URL(path, ROOT));
    if (await renderFile(path, text) !== text) stale.push(path);
  }
  return stale;
}

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  if (check) {
    const stale = await staleFiles();
    for (const path of stale) {
      console.error(`gen_docs: ${path} is out of date: run deno task docs`);
    }
    Deno.exit(stale.length === 0 ? 0 : 1);
  }
  for (const path of Object.keys(GENERATED)) {
    const url = new URL(path, ROOT);
    const text = await Deno.readTextFile(url);
    const next = await renderFile(path, text);
    if (next !== text) {
      await Deno.writeTextFile(url, next);
      console.log(`Wrote ${path}`);
    }
  }
}
