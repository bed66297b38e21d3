import { assertEquals } from "@std/assert";
import {
  formatChecksums,
  sha256File,
  sha256Hex,
} from "../scripts/checksums.ts";
import { canRun } from "./_helpers.ts";

Deno.test("sha256Hex matches the FIPS 180-2 test vector", async () => {
  assertEquals(
    await sha256Hex(new TextEncoder().encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

const checker = await canRun("sha256sum")
  ? ["sha256sum"]
  : await canRun("shasum", ["-a", "256", "--version"])
  ? ["shasum", "-a", "256"]
  : undefined;

Deno.test({
  name: "formatChecksums writes what sha256sum -c verifies" +
    (checker ? "" : " (skipped: neither sha256sum nor shasum is installed)"),
  ignore: checker === undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "greeter-sums-" });
    try {
      const sums = new Map<string, string>();
      for (const [name, text] of [["b.exe", "bee"], ["a", "ay"]]) {
        await Deno.writeTextFile(`${dir}/${name}`, text);
        sums.set(name, await sha256File(`${dir}/${name}`));
      }
      const text = formatChecksums(sums);
      assertEquals(text.split("\n")[0].endsWith("  a"), true, "sorted");
      await Deno.writeTextFile(`${dir}/SHA256SUMS`, text);
      const check = async () =>
        await new Deno.Command(checker![0], {
          args: [...checker!.slice(1), "-c", "SHA256SUMS"],
          cwd: dir,
          stdout: "piped",
          stderr: "piped",
        }).output();
      assertEquals((await check()).code, 0);
      // And the tool does catch a changed file, so the check above means it.
      await Deno.writeTextFile(`${dir}/a`, "changed");
      assertEquals((await check()).success, false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
