// explainCompileFailure on what deno compile 2.9.6 really printed (NO_COLOR)
// for each kind of failure.
import { assertEquals } from "@std/assert";
import { explainCompileFailure } from "../scripts/compile_failure.ts";

const TARGET = "aarch64-apple-darwin";

Deno.test("a runtime download that cannot resolve its host names the fixes", () => {
  const stderr = `Check main.ts
Compile main.ts to greeter
Download https://dl.deno.land/release/v2.9.6/denort-${TARGET}.zip
error: Writing deno compile executable to temporary file 'greeter.tmp-806205b8f9e62b43'

Caused by:
    0: Setting up base binary.
    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-${TARGET}.zip): client error (Connect): dns error: failed to lookup address information: Name or service not known
    2: client error (Connect)
    3: dns error
    4: failed to lookup address information: Name or service not known

Stack backtrace:
   0: <unknown>
`;
  assertEquals(
    explainCompileFailure(stderr, TARGET, 1),
    `Cannot download the Deno runtime (denort) for ${TARGET} from ` +
      `https://dl.deno.land/release/v2.9.6/denort-${TARGET}.zip: the host ` +
      "name does not resolve (no network access?); give this machine " +
      `network access, or set DENORT_BIN to a local denort ` +
      `${Deno.version.deno} for ${TARGET} and build that one target`,
  );
});

Deno.test("a DENORT_BIN that deno compile cannot find is named", () => {
  const stderr =
    `error: Writing deno compile executable to temporary file 'out2.tmp-f83533c728b1908c'

Caused by:
    0: Could not find denort at '/nonexistent'
    1: No such file or directory (os error 2)
`;
  assertEquals(
    explainCompileFailure(stderr, TARGET, 1),
    `DENORT_BIN points at "/nonexistent", which does not exist: set it to ` +
      `a denort ${Deno.version.deno} binary, or unset it to download one`,
  );
});

Deno.test("a type error names the error and where it is", () => {
  const stderr = `Check bad.ts
TS2322 [ERROR]: Type 'string' is not assignable to type 'number'.
const x: number = "s"; console.log(x);
      ^
    at file:///tmp/ctest/bad.ts:1:7

error: Type checking failed.
`;
  assertEquals(
    explainCompileFailure(stderr, TARGET, 1),
    `deno compile failed for ${TARGET}: type checking failed: TS2322 Type ` +
      "'string' is not assignable to type 'number'. (at " +
      "file:///tmp/ctest/bad.ts:1:7); run deno task check",
  );
});

Deno.test("any other failure keeps deno's error line, or the exit code", () => {
  assertEquals(
    explainCompileFailure("error: Module not found\n", TARGET, 1),
    `deno compile failed for ${TARGET}: Module not found`,
  );
  assertEquals(
    explainCompileFailure("", TARGET, 101),
    `deno compile failed for ${TARGET}: it exited with code 101 and said nothing`,
  );
});
