// The layering rules of lib/README.md, read from the
// real import graph that `deno info --json` reports.
import { assertEquals } from "@std/assert";
import { ROOT } from "./_helpers.ts";

const LIB = new URL("../lib/", import.meta.url).href;
/** The library's layers, lowest first; an import may only go down. */
const LAYERS = ["net", "greeting", "server", "client", "observe", "cli"];
/** Layers at the same level may not import each other either. */
const LEVEL: Record<string, number> = {
  net: 0,
  greeting: 1,
  server: 2,
  client: 3,
  observe: 3,
  cli: 4,
};

interface InfoModule {
  specifier: string;
  dependencies?: {
    specifier: string;
    code?: { specifier: string };
    type?: { specifier: string };
  }[];
}

/** Every local module reachable from `roots`, with its local imports. */
async function importGraph(roots: string[]): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const root of roots) {
    if (graph.has(new URL(root, `file://${ROOT}/`).href)) continue;
    const { stdout, success } = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", root],
      cwd: ROOT,
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!success) throw new Error(`deno info ${root} failed`);
    const info = JSON.parse(new TextDecoder().decode(stdout)) as {
      modules: InfoModule[];
    };
    for (const module of info.modules) {
      if (!module.specifier.startsWith("file:")) continue;
      graph.set(
        module.specifier,
        (module.dependencies ?? []).flatMap((dep) =>
          [dep.code?.specifier, dep.type?.specifier].filter((s): s is string =>
            s?.startsWith("file:") ?? false
          )
        ),
      );
    }
  }
  return graph;
}

function layerOf(specifier: string): string | undefined {
  if (!specifier.startsWith(LIB)) return undefined;
  const folder = specifier.slice(LIB.length).split("/")[0];
  return LAYERS.includes(folder) ? folder : "lib";
}

/** Every .ts file under lib/, as a path relative to the repository. */
function libFiles(dir = `${ROOT}/lib`, prefix = "lib"): string[] {
  return [...Deno.readDirSync(dir)].flatMap((entry) =>
    entry.isDirectory
      ? libFiles(`${dir}/${entry.name}`, `${prefix}/${entry.name}`)
      : entry.name.endsWith(".ts")
      ? [`${prefix}/${entry.name}`]
      : []
  );
}

const graph = await importGraph(["main.ts", "mod.ts", ...libFiles()]);

Deno.test("lib/ layers import only the layers below them", () => {
  const wrong: string[] = [];
  for (const [from, imports] of graph) {
    const fromLayer = layerOf(from);
    if (!fromLayer || fromLayer === "lib") continue;
    for (const to of imports) {
      const toLayer = layerOf(to);
      if (!toLayer || toLayer === "lib" || toLayer === fromLayer) continue;
      if (LEVEL[toLayer] >= LEVEL[fromLayer]) {
        wrong.push(`${from.slice(LIB.length)} -> ${to.slice(LIB.length)}`);
      }
    }
  }
  assertEquals(wrong, []);
});

Deno.test("lib/ has no import cycle", () => {
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === "open") {
        cycles.push(
          path.slice(path.indexOf(next)).concat(next).map((s) =>
            s.slice(LIB.length - 4)
          ).join(" -> "),
        );
      } else if (!state.has(next)) {
        visit(next);
      }
    }
    path.pop();
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  assertEquals(cycles, []);
});

Deno.test("mod.ts reaches no module of lib/cli", () => {
  const seen = new Set<string>();
  const stack = [new URL("../mod.ts", import.meta.url).href];
  while (stack.length) {
    const node = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    stack.push(...graph.get(node) ?? []);
  }
  assertEquals([...seen].filter((s) => layerOf(s) === "cli"), []);
});

Deno.test("the layering test sees the whole of lib/", () => {
  // A graph that missed files would pass the tests above for nothing.
  const missing = libFiles().filter((file) =>
    !graph.has(new URL(`../${file}`, import.meta.url).href)
  );
  assertEquals(missing, []);
  assertEquals(graph.size > 40, true);
});
