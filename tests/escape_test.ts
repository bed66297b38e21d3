import { assert, assertEquals } from "@std/assert";
import { escapeControl, quote } from "../lib/net/escape.ts";

/** Every code unit a terminal or viewer could act on, as a regular expression. */
const RAW_UNSAFE = new RegExp(
  "[\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200b\\u200e\\u200f\\u2028\\u2029" +
    "\\u202a-\\u202e\\u2066-\\u2069\\ufeff]",
);

Deno.test("escapeControl() writes C0 controls as short or \\x escapes", () => {
  assertEquals(
    escapeControl("a\nb\rc\td\x00e\x1b[31mf\x07g\x08h\x0bi\x0cj\x1f"),
    "a\\nb\\rc\\td\\x00e\\x1b[31mf\\x07g\\x08h\\x0bi\\x0cj\\x1f",
  );
});

Deno.test("escapeControl() writes DEL and C1 controls as \\x escapes", () => {
  assertEquals(
    escapeControl("\x7f\x80\x85\x9b\x9f"),
    "\\x7f\\x80\\x85\\x9b\\x9f",
  );
});

Deno.test("escapeControl() writes line separators, bidi and invisible characters as \\u escapes", () => {
  assertEquals(
    escapeControl("a\u2028b\u2029c"),
    "a\\u2028b\\u2029c",
  );
  for (let code = 0x202a; code <= 0x202e; code++) {
    const char = String.fromCharCode(code);
    assertEquals(escapeControl(`x${char}y`), `x\\u${code.toString(16)}y`);
  }
  for (let code = 0x2066; code <= 0x2069; code++) {
    const char = String.fromCharCode(code);
    assertEquals(escapeControl(`x${char}y`), `x\\u${code.toString(16)}y`);
  }
  assertEquals(
    escapeControl("\u200e\u200f\u061c\u200b\ufeff"),
    "\\u200e\\u200f\\u061c\\u200b\\ufeff",
  );
});

Deno.test("escapeControl() escapes lone surrogates and keeps pairs", () => {
  assertEquals(escapeControl("a\ud800b"), "a\\ud800b");
  assertEquals(escapeControl("a\udc00b"), "a\\udc00b");
  assertEquals(escapeControl("end\ud83d"), "end\\ud83d");
  assertEquals(escapeControl("\ud83d\ude00"), "\ud83d\ude00");
});

Deno.test("escapeControl() keeps printable text, backslashes, quotes, non-ASCII and joiners", () => {
  for (
    const text of [
      "",
      "plain text",
      'C:\\dir\\"file"',
      "café ü ñ ß",
      "日本語",
      "שלום عربى",
      "👨\u200d👩\u200d👧",
      "\u00a0\u00ff\u0100",
    ]
  ) {
    assertEquals(escapeControl(text), text);
  }
});

Deno.test("escapeControl() leaves no line break or control and is idempotent (fuzz)", () => {
  // A fixed seed: the same inputs every run, so a failure can be replayed.
  let seed = 0x2545f491;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x1_0000_0000;
  };
  const interesting = [0, 9, 10, 13, 27, 0x22, 0x5c, 0x7f, 0x85, 0x9b, 0x2028];
  for (let round = 0; round < 2000; round++) {
    let text = "";
    const length = Math.floor(random() * 24);
    for (let i = 0; i < length; i++) {
      const pick = random();
      text += String.fromCharCode(
        pick < 0.3
          ? interesting[Math.floor(random() * interesting.length)]
          : pick < 0.6
          ? Math.floor(random() * 0x100)
          : Math.floor(random() * 0x10000),
      );
    }
    const escaped = escapeControl(text);
    assert(!RAW_UNSAFE.test(escaped), `raw control in ${JSON.stringify(text)}`);
    assert(
      !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
        .test(escaped),
      `lone surrogate in ${JSON.stringify(text)}`,
    );
    assertEquals(escapeControl(escaped), escaped);
    const quoted = quote(text);
    assert(!RAW_UNSAFE.test(quoted));
    // Unambiguous: the escapes read back as the original.
    assertEquals(unquote(quoted), text);
  }
});

/** Reads back what {@linkcode quote} wrote. */
function unquote(quoted: string): string {
  assert(quoted.startsWith('"') && quoted.endsWith('"'));
  return quoted.slice(1, -1).replace(
    /\\(x[0-9a-f]{2}|u[0-9a-f]{4}|.)/g,
    (_, escape: string) =>
      escape === "n"
        ? "\n"
        : escape === "r"
        ? "\r"
        : escape === "t"
        ? "\t"
        : escape.length > 1
        ? String.fromCharCode(parseInt(escape.slice(1), 16))
        : escape,
  );
}

Deno.test("quote() escapes backslashes and double quotes as well", () => {
  assertEquals(quote('say "hi"\n'), '"say \\"hi\\"\\n"');
  assertEquals(quote("C:\\dir"), '"C:\\\\dir"');
  assertEquals(quote(""), '""');
  assertEquals(quote("\x1b]0;title\x07"), '"\\x1b]0;title\\x07"');
  assertEquals(quote("IPv6 fe80::1/200"), '"IPv6 fe80::1/200"');
});

Deno.test("quote() keeps a value that JSON.stringify would lose to the terminal", () => {
  // JSON.stringify escapes C0 but passes these through raw.
  const text = "a\x9bb\u2028c\u202ed";
  assertEquals(JSON.stringify(text), `"${text}"`);
  assertEquals(quote(text), '"a\\x9bb\\u2028c\\u202ed"');
});
