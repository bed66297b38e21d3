import { assertEquals } from "@std/assert";
import { editDistance, suggest } from "../lib/cli/suggest.ts";

/** greeter's flags today, as the CLI would pass them. */
const FLAGS = [
  "--allow",
  "--backlog",
  "--deny",
  "--drain-timeout",
  "--encoding",
  "--help",
  "--host",
  "--line-ending",
  "--linger",
  "--log-format",
  "--log-rate",
  "--max-connections",
  "--max-per-ip",
  "--message",
  "--message-file",
  "--metrics",
  "--port",
  "--preset",
  "--quiet",
  "--quotes-file",
  "--rate-per-ip",
  "--refuse-message",
  "--timeout",
  "--tls-cert",
  "--tls-key",
  "--unix",
  "--version",
  "--workers",
  "-h",
  "-p",
  "-q",
  "-V",
];

Deno.test("editDistance() counts insertions, deletions, substitutions and swaps", () => {
  assertEquals(editDistance("", ""), 0);
  assertEquals(editDistance("", "abc"), 3);
  assertEquals(editDistance("abc", ""), 3);
  assertEquals(editDistance("port", "port"), 0);
  assertEquals(editDistance("prot", "port"), 1); // one swap
  assertEquals(editDistance("tiemout", "timeout"), 1);
  assertEquals(editDistance("kitten", "sitting"), 3);
  assertEquals(editDistance("ca", "abc"), 3); // OSA: no edit of a swapped pair
  assertEquals(editDistance("abcdef", "badcfe"), 3);
  assertEquals(editDistance("host", "hosts"), 1);
  assertEquals(editDistance("hosts", "host"), 1);
});

Deno.test("editDistance() is symmetric and within the bounds of the lengths (fuzz)", () => {
  let seed = 0x51ed270b;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x1_0000_0000;
  };
  const word = () =>
    Array.from(
      { length: Math.floor(random() * 8) },
      () => "abc"[Math.floor(random() * 3)],
    ).join("");
  for (let round = 0; round < 2000; round++) {
    const a = word();
    const b = word();
    const d = editDistance(a, b);
    assertEquals(editDistance(b, a), d, `${a} ${b}`);
    assertEquals(d >= Math.abs(a.length - b.length), true, `${a} ${b}`);
    assertEquals(d <= Math.max(a.length, b.length), true, `${a} ${b}`);
    assertEquals(d === 0, a === b, `${a} ${b}`);
  }
});

Deno.test("suggest() finds the flag a typo was meant to be", () => {
  const cases: [string, string][] = [
    ["--prot", "--port"],
    ["--tiemout", "--timeout"],
    ["--timout", "--timeout"],
    ["--hots", "--host"],
    ["--qiuet", "--quiet"],
    ["--max-conections", "--max-connections"],
    ["--maxconnections", "--max-connections"],
    ["--message-flie", "--message-file"],
    ["--metric", "--metrics"],
    ["--wrokers", "--workers"],
    ["--tls-crt", "--tls-cert"],
    ["--PORT", "--port"],
    ["-port", "--port"],
    ["---port", "--port"],
    ["--drain", "--drain-timeout"], // the start of exactly one flag
    ["--refuse", "--refuse-message"],
  ];
  for (const [typed, meant] of cases) {
    assertEquals(suggest(typed, FLAGS), meant, typed);
  }
});

Deno.test("suggest() offers nothing when no flag is close or the choice is ambiguous", () => {
  for (
    const typed of [
      "--zzzzzz",
      "--x",
      "-x",
      "--",
      "-",
      "",
      "--listen",
      "--verbose",
      "--max", // the start of two flags
      "--lo", // too short to complete
      "--a".repeat(40),
    ]
  ) {
    assertEquals(suggest(typed, FLAGS), undefined, typed);
  }
});

Deno.test("suggest() offers nothing for a word that is a candidate", () => {
  assertEquals(suggest("--port", FLAGS), undefined);
  assertEquals(suggest("-p", FLAGS), undefined);
});

Deno.test("suggest() prefers the closest candidate, then the first listed", () => {
  assertEquals(suggest("--hast", ["--host", "--hash"]), "--host");
  assertEquals(suggest("--hast", ["--hash", "--host"]), "--hash");
  assertEquals(suggest("--porrt", ["--sport", "--port"]), "--port");
  assertEquals(suggest("serve", ["connect", "check", "serve"]), undefined);
  assertEquals(suggest("serv", ["connect", "check", "serve"]), "serve");
  assertEquals(suggest("chekc", ["connect", "check", "serve"]), "check");
  assertEquals(suggest("--port", []), undefined);
});
