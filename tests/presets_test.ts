import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import { UsageError } from "../lib/cli/flags.ts";
import { loadPreset } from "./_load_preset.ts";
import {
  daytimeGreeting,
  packQuotes,
  PRESET_NAMES,
  presetGreeting,
  type PresetName,
  qotdGreeting,
  QuoteError,
  rfc868Seconds,
  timeGreeting,
} from "../lib/greeting/presets.ts";
import type {
  GreetingContext,
  GreetingSource,
} from "../lib/greeting/template.ts";

const context: GreetingContext = {
  remoteAddr: { transport: "tcp", hostname: "::1", port: 5 },
  localAddr: { transport: "tcp", hostname: "::1", port: 13 },
  count: 1,
};

function bytesOf(source: GreetingSource): Uint8Array {
  return typeof source === "function" ? source(context) : source;
}

function send(source: GreetingSource): string {
  return String.fromCharCode(...bytesOf(source));
}

function uint32(source: GreetingSource): number {
  const bytes = bytesOf(source);
  assertEquals(bytes.length, 4);
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
}

/** Writes `content` to a temporary file, runs `fn` with its path, removes it. */
async function withFile(
  content: string | Uint8Array,
  fn: (path: string) => Promise<void>,
): Promise<void> {
  const path = await Deno.makeTempFile({ suffix: ".txt" });
  try {
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("PRESET_NAMES lists the three services", () => {
  assertEquals(PRESET_NAMES, ["daytime", "qotd", "time"]);
});

Deno.test("daytimeGreeting() sends an RFC 867 line in UTC with CRLF", () => {
  let at = new Date("2026-11-25T03:15:39.500Z");
  const source = daytimeGreeting(() => at);
  assertEquals(send(source), "Wednesday, November 25, 2026 03:15:39-UTC\r\n");
  at = new Date("2027-01-05T23:04:00Z");
  assertEquals(send(source), "Tuesday, January 5, 2027 23:04:00-UTC\r\n");
});

Deno.test("daytimeGreeting() builds each second's line once", () => {
  let at = new Date("2026-11-25T03:15:39.000Z");
  const source = daytimeGreeting(() => at);
  const first = bytesOf(source);
  at = new Date("2026-11-25T03:15:39.999Z");
  assertStrictEquals(bytesOf(source), first);
  at = new Date("2026-11-25T03:15:40.000Z");
  assertEquals(send(source), "Wednesday, November 25, 2026 03:15:40-UTC\r\n");
});

Deno.test("daytimeGreeting() uses the real clock by default", () => {
  const text = send(daytimeGreeting());
  const year = new Date().getUTCFullYear();
  assertEquals(
    /^[A-Z][a-z]+day, [A-Z][a-z]+ \d{1,2}, (\d{4}) \d\d:\d\d:\d\d-UTC\r\n$/
      .exec(text)?.[1],
    String(year),
  );
});

Deno.test("timeGreeting() sends RFC 868 seconds since 1900, big-endian", () => {
  const expected = Date.UTC(2026, 10, 25, 3, 15, 39) / 1000 + 2208988800;
  const source = timeGreeting(() => new Date("2026-11-25T03:15:39.750Z"));
  assertEquals(uint32(source), expected);
  assertEquals(
    [...bytesOf(source)],
    [
      expected >>> 24,
      (expected >>> 16) & 0xff,
      (expected >>> 8) & 0xff,
      expected & 0xff,
    ],
  );
  assertEquals(uint32(timeGreeting(() => new Date(0))), 2208988800);
  assertEquals(
    uint32(timeGreeting(() => new Date("1900-01-01T00:00:00Z"))),
    0,
  );
});

Deno.test("timeGreeting() wraps modulo 2^32 at the 2036 rollover", () => {
  let at = new Date("2036-02-07T06:28:15Z");
  const source = timeGreeting(() => at);
  assertEquals(uint32(source), 0xffffffff);
  at = new Date("2036-02-07T06:28:16Z");
  assertEquals(uint32(source), 0);
  at = new Date("2036-02-07T06:28:17Z");
  assertEquals(uint32(source), 1);
  assertEquals(rfc868Seconds(new Date("1899-12-31T23:59:59Z")), 0xffffffff);
  assertEquals(
    rfc868Seconds(new Date(Date.UTC(2106, 1, 7, 6, 28, 16))),
    Date.UTC(2106, 1, 7, 6, 28, 16) / 1000 + 2208988800 - 2 ** 32,
  );
});

Deno.test("timeGreeting() uses the real clock by default", () => {
  const before = rfc868Seconds(new Date());
  const value = uint32(timeGreeting());
  const after = rfc868Seconds(new Date());
  // The test machine's clock is before 2036.
  assertEquals(value >= before && value <= after, true);
});

/** The quotes packQuotes reads from `text`, each line ending in LF. */
function parseQuotes(text: string | Uint8Array): string[] {
  const { bytes, ends } = packQuotes(
    typeof text === "string" ? new TextEncoder().encode(text) : text,
  );
  return [...ends].map((end, i) =>
    String.fromCharCode(...bytes.subarray(i === 0 ? 0 : ends[i - 1], end))
      .replaceAll("\r\n", "\n").slice(0, -1)
  );
}

Deno.test("packQuotes() reads one quote per non-blank line", () => {
  assertEquals(
    parseQuotes("first\n\n   \nsecond 100%\r\n  third  \n"),
    ["first", "second 100%", "  third  "],
  );
  // Lines of Unicode white space are blank too, as String.prototype.trim has it.
  assertEquals(parseQuotes("a\n\u00a0\u3000\n\ufeff\nb"), ["a", "b"]);
});

Deno.test("packQuotes() reads %-separated quotes when a line is exactly %", () => {
  assertEquals(
    parseQuotes(
      "\nOne\n  two lines\n\n%\r\nSecond\r\n%\n%\n\n \n%\n\nLast\n\nstill last\n",
    ),
    ["One\n  two lines", "Second", "Last\n\nstill last"],
  );
  assertEquals(parseQuotes("%\nonly\n%"), ["only"]);
  assertEquals(parseQuotes("a\n% \nb"), ["a", "% ", "b"]);
});

Deno.test("packQuotes() leaves out a UTF-8 byte order mark and keeps a lone CR", () => {
  assertEquals(parseQuotes("\ufeffFirst\n%\nSecond\r\n"), ["First", "Second"]);
  assertEquals(parseQuotes("a\rb\nc\r"), ["a\rb", "c\r"]);
});

Deno.test("packQuotes() refuses a file with no quotes", () => {
  for (const text of ["", "\n \n", "%", "%\n\n%\n", "\ufeff"]) {
    const error = assertThrows(
      () => parseQuotes(text),
      QuoteError,
      "Quotes file has no quotes: write one quote per line, or separate " +
        'quotes with lines holding only "%"',
    );
    assertEquals([error.quote, error.line], [0, undefined]);
  }
});

Deno.test("packQuotes() refuses a quote longer than 512 characters", () => {
  const longest = "x".repeat(512);
  assertEquals(parseQuotes(`a\n${longest}`), ["a", longest]);
  assertThrows(
    () => parseQuotes(`a\n\n${longest}y`),
    QuoteError,
    "Quote 2 (line 3) is 513 characters long, and RFC 865 allows at most " +
      "512: shorten or split it in the quotes file",
  );
  // Line breaks inside a quote count as one character each.
  const twoLines = `${"x".repeat(256)}\n${"x".repeat(256)}`;
  const error = assertThrows(
    () => parseQuotes(`a\n%\n\n${twoLines}\n%`),
    QuoteError,
    "Quote 2 (line 4) is 513 characters long",
  );
  assertEquals([error.quote, error.line], [2, 4]);
});

Deno.test("packQuotes() refuses characters outside ASCII, named as UTF-8 or else Latin-1", () => {
  const error = assertThrows(
    () => parseQuotes("fine\n%\nstill fine\nCafé au lait\n"),
    QuoteError,
    'Quote 2 (line 4) has "é" (U+00E9), which is not ASCII as RFC 865 ' +
      "requires: replace it in the quotes file",
  );
  // `line` is where the quote begins; the message names the character's.
  assertEquals([error.quote, error.line], [2, 3]);
  assertThrows(
    () => parseQuotes("ok\nsmile 😀"),
    QuoteError,
    'Quote 2 (line 2) has "😀" (U+1F600)',
  );
  assertThrows(
    () => parseQuotes("a\nb\ufeffc"),
    QuoteError,
    'Quote 2 (line 2) has "\ufeff" (U+FEFF)',
  );
  assertThrows(
    () => parseQuotes(Uint8Array.of(0x6f, 0x6b, 0x0a, 0x63, 0x61, 0x66, 0xe9)),
    QuoteError,
    'Quote 2 (line 2) has "é" (U+00E9)',
  );
});

Deno.test("qotdGreeting() picks a quote per connection with the random source", () => {
  let r = 0;
  const source = qotdGreeting(
    new TextEncoder().encode("one\n%\ntwo\nlines\n%\nthree"),
    () => r,
  );
  assertEquals(send(source), "one\r\n");
  r = 0.34;
  assertEquals(send(source), "two\r\nlines\r\n");
  r = 0.999999;
  assertEquals(send(source), "three\r\n");
  r = 1; // Out of contract: still a quote, not undefined.
  assertEquals(send(source), "three\r\n");
  // Each quote is encoded once: the same bytes of one shared buffer every
  // time it is picked, never encoded again.
  r = 0.5;
  const [first, again] = [bytesOf(source), bytesOf(source)];
  assertStrictEquals(first.buffer, again.buffer);
  assertEquals([first.byteOffset, first.length], [
    again.byteOffset,
    again.length,
  ]);
});

Deno.test("qotdGreeting() picks every quote with Math.random", () => {
  const source = qotdGreeting(new TextEncoder().encode("a\nb\n"));
  const seen = new Set<string>();
  for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(send(source));
  assertEquals([...seen].sort(), ["a\r\n", "b\r\n"]);
});

Deno.test("qotdGreeting() sends a single quote as static bytes", () => {
  const source = qotdGreeting(new TextEncoder().encode("only\r\none\n%\n"));
  assertInstanceOf(source, Uint8Array);
  assertEquals(send(source), "only\r\none\r\n");
});

Deno.test("loadPreset() builds daytime and time", async () => {
  assertEquals(typeof await loadPreset("daytime"), "function");
  assertEquals(/-UTC\r\n$/.test(send(await loadPreset("daytime"))), true);
  assertEquals(bytesOf(await loadPreset("time", {})).length, 4);
});

Deno.test("loadPreset() reads and checks the quotes file", async () => {
  await withFile("\ufeffFirst\n%\nSecond\r\n", async (path) => {
    const source = await loadPreset("qotd", { quotesFile: path });
    const seen = new Set<string>();
    for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(send(source));
    assertEquals([...seen].sort(), ["First\r\n", "Second\r\n"]);
  });
  await withFile("one\nnaïve\n", async (path) => {
    await assertRejects(
      () => loadPreset("qotd", { quotesFile: path }),
      UsageError,
      `Quote 2 (line 2) has "ï" (U+00EF), which is not ASCII as RFC 865 ` +
        `requires: replace it in the quotes file ("${path}")`,
    );
  });
  // Not UTF-8: shown as Latin-1, so the message names the right character.
  await withFile(
    new Uint8Array([0x6f, 0x6b, 0x0a, 0x63, 0x61, 0x66, 0xe9]),
    async (path) => {
      await assertRejects(
        () => loadPreset("qotd", { quotesFile: path }),
        UsageError,
        'Quote 2 (line 2) has "é" (U+00E9)',
      );
    },
  );
  await withFile("\n\n", async (path) => {
    await assertRejects(
      () => loadPreset("qotd", { quotesFile: path }),
      UsageError,
      `Quotes file has no quotes: write one quote per line, or separate ` +
        `quotes with lines holding only "%" ("${path}")`,
    );
  });
});

Deno.test("loadPreset() explains a quotes file it cannot read", async () => {
  await assertRejects(
    () => loadPreset("qotd", { quotesFile: "/nonexistent/quotes.txt" }),
    UsageError,
    'Cannot read quotes file "/nonexistent/quotes.txt": no such file',
  );
  const dir = await Deno.makeTempDir();
  try {
    await assertRejects(
      () => loadPreset("qotd", { quotesFile: dir }),
      UsageError,
      `Cannot read quotes file "${dir}": it is a directory`,
    );
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test({
  name: "loadPreset() asks for --allow-read for the quotes file",
  permissions: { read: false },
  async fn() {
    await assertRejects(
      () => loadPreset("qotd", { quotesFile: "quotes.txt" }),
      UsageError,
      'Cannot read quotes file "quotes.txt": greeter lacks read permission ' +
        "(run deno with --allow-read)",
    );
  },
});

Deno.test("loadPreset() refuses a missing or misplaced --quotes-file", async () => {
  await assertRejects(
    () => loadPreset("qotd"),
    UsageError,
    "--preset qotd needs --quotes-file PATH: a file with one quote per " +
      'line, or quotes separated by lines holding only "%"',
  );
  await assertRejects(
    () => loadPreset("time", { quotesFile: "quotes.txt" }),
    UsageError,
    "--quotes-file only applies to --preset qotd, not --preset time",
  );
});

Deno.test("presetGreeting() refuses an unknown preset, and --preset names it", async () => {
  assertThrows(
    () => presetGreeting("echo" as PresetName),
    RangeError,
    'Unknown preset "echo": use one of daytime, qotd, time',
  );
  await assertRejects(
    () => loadPreset("echo" as PresetName),
    UsageError,
    'Invalid value "echo" for --preset: use one of daytime, qotd, time',
  );
});

Deno.test("packQuotes() reads 300 random quotes files as the line-by-line reading of the rules does", () => {
  // The rules said once more, over strings: split at LF or CRLF, trim.
  const oracle = (text: string) => {
    const lines = text.split(/\r?\n/);
    const quotes: string[] = [];
    const take = (start: number, end: number) => {
      while (start < end && lines[start].trim() === "") start++;
      while (end > start && lines[end - 1].trim() === "") end--;
      if (start < end) quotes.push(lines.slice(start, end).join("\n"));
    };
    if (lines.includes("%")) {
      let first = 0;
      lines.forEach((line, i) => {
        if (line === "%") [take(first, i), first = i + 1];
      });
      take(first, lines.length);
    } else lines.forEach((_, i) => take(i, i + 1));
    return quotes;
  };
  let seed = 7;
  const next = () =>
    (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const pieces = ["a", "bc", " ", "\t", "%", "\n", "\r\n", "\n\n", "x y", "\r"];
  let read = 0;
  for (let file = 0; file < 300; file++) {
    const text = Array.from(
      { length: 1 + Math.floor(next() * 40) },
      () => pieces[Math.floor(next() * pieces.length)],
    ).join("") + (file % 3 === 0 ? "\n%\nlast" : "");
    const expected = oracle(text);
    if (expected.length === 0) {
      assertThrows(() => parseQuotes(text), QuoteError, "has no quotes");
      continue;
    }
    read++;
    assertEquals(parseQuotes(text), expected, JSON.stringify(text));
  }
  assert(read > 200, `only ${read} files had quotes`);
});
