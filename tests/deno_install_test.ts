// The README's `deno install` command, run as written (into a scratch
// --root instead of ~/.deno): the `greeter` command it makes runs the
// clone's main.ts and serves.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { ROOT } from "./_helpers.ts";

const decoder = new TextDecoder();

Deno.test("README's deno install command makes a greeter command that runs", {
  ignore: Deno.build.os === "windows",
}, async () => {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  const line = readme.split("\n").find((l) => l.startsWith("deno install -g"));
  assert(line, "README.md shows no deno install -g command");
  const root = await Deno.makeTempDir({ prefix: "greeter-deno-install-" });
  try {
    const args = line.split(" ").slice(1);
    const install = await new Deno.Command(Deno.execPath(), {
      args: [args[0], "--root", root, ...args.slice(1)],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    assertEquals(install.code, 0, decoder.decode(install.stderr));
    // From another directory, as a user would run it.
    const version = await new Deno.Command(`${root}/bin/greeter`, {
      args: ["--version"],
      cwd: root,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(version.code, 0, decoder.decode(version.stderr));
    assertMatch(decoder.decode(version.stdout), /^greeter \d+\.\d+\.\d+\n$/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
