// What the server's first run downloads. Deno fetches every npm package of
// deno.lock, used or not, so the tests' own packages (kubernetes-models, ajv,
// @elastic/ecs, yaml...) live in tests/import_map.json and tests/deno.lock,
// which only `deno task test` and `deno task check` read. Here the server is
// started from an empty DENO_DIR against a stand-in registry on 127.0.0.1
// that records what it is asked for and has nothing: the run fails, and the
// packages it asked for are exactly those a real first run downloads.
import { assertEquals, assertNotEquals } from "@std/assert";
import { MAIN, ROOT } from "./_helpers.ts";

/** The npm package a request path is for: `/a/-/a-1.tgz`, `/@s/b`... */
function packageOf(path: string): string {
  const parts = decodeURIComponent(path).split("/").filter(Boolean);
  return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
}

Deno.test("deno run main.ts --version from an empty DENO_DIR fetches only deno-std", async () => {
  const asked = new Set<string>();
  await using registry = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      asked.add(packageOf(new URL(request.url).pathname));
      return new Response("Not in this registry", { status: 404 });
    },
  );
  const denoDir = await Deno.makeTempDir({ prefix: "greeter-first-run-" });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", MAIN, "--version"],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: {
        DENO_DIR: denoDir,
        // No ~/.npmrc naming another registry.
        HOME: denoDir,
        NPM_CONFIG_REGISTRY: `http://127.0.0.1:${registry.addr.port}/`,
        NO_COLOR: "1",
      },
    }).output();
    // Nothing could be downloaded, so it cannot have started.
    assertNotEquals(output.code, 0);
    assertEquals([...asked].sort(), ["deno-std"]);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

Deno.test("deno.lock holds only the server's one npm package", async () => {
  const lock = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.lock`));
  assertEquals(Object.keys(lock.npm ?? {}), ["deno-std@1.4.0"]);
  assertEquals(lock.workspace, undefined);
});
