import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertNotStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  compileTemplate,
  encodeGreeting,
  EncodingError,
  type GreetingContext,
  type GreetingSource,
  TEMPLATE_PLACEHOLDERS,
  TemplateError,
} from "../lib/greeting/template.ts";

const context: GreetingContext = {
  remoteAddr: { transport: "tcp", hostname: "::1", port: 5 },
  localAddr: { transport: "tcp", hostname: "127.0.0.1", port: 8080 },
  count: 7,
};

/** The bytes a source gives for `ctx`, as a string of byte values. */
function send(source: GreetingSource, ctx = context): string {
  const bytes = typeof source === "function" ? source(ctx) : source;
  return String.fromCharCode(...bytes);
}

/** Compiles a template that must vary per connection. */
function compileDynamic(
  message: string,
  options: Parameters<typeof compileTemplate>[1] = {},
): (context: GreetingContext) => Uint8Array {
  const source = compileTemplate(message, options);
  if (typeof source !== "function") {
    throw new Error("Expected a per-connection function, got bytes");
  }
  return source;
}

const LIST = "{remote_addr}, {remote_port}, {local_addr}, {local_port}, " +
  "{time}, {hostname}, {count}";

Deno.test("TEMPLATE_PLACEHOLDERS lists every placeholder", () => {
  assertEquals(TEMPLATE_PLACEHOLDERS, [
    "remote_addr",
    "remote_port",
    "local_addr",
    "local_port",
    "time",
    "hostname",
    "count",
  ]);
});

Deno.test("compileTemplate() returns encodeGreeting's bytes without placeholders", () => {
  for (
    const options of [
      {},
      { lineEnding: "lf" as const },
      { lineEnding: "none" as const, encoding: "latin1" as const },
      { encoding: "utf-8" as const },
    ]
  ) {
    for (const message of ["Connection Established", "a\r\nb\nc", "", "é"]) {
      if (message === "é" && !options.encoding) continue;
      const source = compileTemplate(message, options);
      assertInstanceOf(source, Uint8Array);
      assertEquals(source, encodeGreeting(message, options));
    }
  }
});

Deno.test("compileTemplate() turns {{ and }} into literal braces", () => {
  const source = compileTemplate("a{{b}}c {{count}} }}{{");
  assertInstanceOf(source, Uint8Array);
  assertEquals(send(source), "a{b}c {count} }{\r\n");
  assertEquals(send(compileDynamic("{{{count}}}")), "{7}\r\n");
});

Deno.test("compileTemplate() fills in every placeholder exactly", () => {
  const at = new Date("2026-11-25T03:15:39.987Z");
  const source = compileDynamic(
    "{remote_addr}|{remote_port}|{local_addr}|{local_port}|{time}|" +
      "{hostname}|{count}",
    { hostname: "box.example", now: () => at },
  );
  assertEquals(
    send(source),
    "::1|5|127.0.0.1|8080|2026-11-25T03:15:39Z|box.example|7\r\n",
  );
  assertEquals(
    send(source, {
      remoteAddr: { transport: "tcp", hostname: "192.0.2.1", port: 65535 },
      localAddr: { transport: "tcp", hostname: "::", port: 0 },
      count: 1_000_000,
    }),
    "192.0.2.1|65535|::|0|2026-11-25T03:15:39Z|box.example|1000000\r\n",
  );
});

Deno.test("compileTemplate() formats {time} per second in UTC", () => {
  let at = new Date("2026-11-25T03:15:39.001Z");
  const source = compileDynamic("{time}", {
    lineEnding: "none",
    now: () => at,
  });
  assertEquals(send(source), "2026-11-25T03:15:39Z");
  at = new Date("2026-11-25T03:15:39.999Z");
  assertEquals(send(source), "2026-11-25T03:15:39Z");
  at = new Date("2026-11-25T03:15:40.000Z");
  assertEquals(send(source), "2026-11-25T03:15:40Z");
  at = new Date("2000-01-01T00:00:00Z");
  assertEquals(send(source), "2000-01-01T00:00:00Z");
});

Deno.test("compileTemplate() uses the real clock by default", () => {
  const source = compileDynamic("{time}", { lineEnding: "none" });
  const before = new Date().toISOString().slice(0, 19) + "Z";
  const text = send(source);
  const after = new Date().toISOString().slice(0, 19) + "Z";
  assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(text), text);
  assert(before <= text && text <= after, `${before} ${text} ${after}`);
});

Deno.test("compileTemplate() applies the line ending to every literal line", () => {
  const message = "a\n{count}\r\nb{count}";
  assertEquals(send(compileDynamic(message)), "a\r\n7\r\nb7\r\n");
  assertEquals(
    send(compileDynamic(message, { lineEnding: "lf" })),
    "a\n7\nb7\n",
  );
  assertEquals(
    send(compileDynamic(message, { lineEnding: "none" })),
    "a\n7\nb7",
  );
  assertEquals(send(compileDynamic("{count}")), "7\r\n");
  assertEquals(send(compileDynamic("\n{count}\n")), "\r\n7\r\n\r\n");
});

Deno.test("compileTemplate() encodes literal text like encodeGreeting", () => {
  assertEquals(
    [
      ...compileDynamic("é{count}€", { encoding: "utf-8", lineEnding: "lf" })(
        context,
      ),
    ],
    [0xc3, 0xa9, 0x37, 0xe2, 0x82, 0xac, 0x0a],
  );
  assertEquals(
    [...compileDynamic("é{count}", { encoding: "latin1" })(context)],
    [0xe9, 0x37, 0x0d, 0x0a],
  );
  assertThrows(
    () => compileTemplate("{count} café"),
    RangeError,
    'Message has "é" (U+00E9) at position 12, which ascii cannot encode',
  );
  assertThrows(
    () => compileTemplate("{count}", { encoding: "utf-16" as "ascii" }),
    RangeError,
    'Unknown encoding "utf-16"',
  );
});

Deno.test("compileTemplate() gives each connection bytes of its own", () => {
  const source = compileDynamic("#{count}");
  const first = source({ ...context, count: 1 });
  const second = source({ ...context, count: 2 });
  assertNotStrictEquals(first, second);
  // Enough later greetings to fill several shared blocks: none overwrites.
  const later = Array.from(
    { length: 10_000 },
    (_, i) => source({ ...context, count: i + 3 }),
  );
  assertEquals(String.fromCharCode(...first), "#1\r\n");
  assertEquals(String.fromCharCode(...second), "#2\r\n");
  later.forEach((bytes, i) =>
    assertEquals(String.fromCharCode(...bytes), `#${i + 3}\r\n`)
  );
  // A large greeting gets a buffer of its own.
  const big = compileDynamic(`${"x".repeat(5000)}{count}`);
  const a = big({ ...context, count: 1 });
  const b = big({ ...context, count: 2 });
  assertEquals(a.length, 5003);
  assertEquals([...a.subarray(-3)], [0x31, 0x0d, 0x0a]);
  assertEquals([...b.subarray(-3)], [0x32, 0x0d, 0x0a]);
});

Deno.test("compileTemplate() refuses to send an address that is not ASCII", () => {
  const source = compileDynamic("{remote_addr}");
  assertThrows(
    () =>
      source({
        ...context,
        remoteAddr: { transport: "tcp", hostname: "hôte", port: 1 },
      }),
    RangeError,
    'Greeting value "hôte" is not ASCII and was not sent',
  );
});

Deno.test("compileTemplate() resolves {hostname} once, as static bytes", () => {
  const source = compileTemplate("Hello from {hostname}", {
    hostname: "box",
  });
  assertInstanceOf(source, Uint8Array);
  assertEquals(source, encodeGreeting("Hello from box"));
  assertEquals(
    send(compileDynamic("{hostname}#{count}", { hostname: "box" })),
    "box#7\r\n",
  );
  assertEquals(
    send(compileTemplate("{hostname}", { lineEnding: "none" })),
    Deno.hostname(),
  );
});

Deno.test("compileTemplate() encodes {hostname} in the greeting's encoding", () => {
  assertEquals(
    [
      ...(compileTemplate("{hostname}", {
        hostname: "é",
        encoding: "latin1",
        lineEnding: "none",
      }) as Uint8Array),
    ],
    [0xe9],
  );
  assertEquals(
    [
      ...(compileTemplate("{hostname}", {
        hostname: "é",
        encoding: "utf-8",
        lineEnding: "none",
      }) as Uint8Array),
    ],
    [0xc3, 0xa9],
  );
  assertThrows(
    () => compileTemplate("hi {hostname} {count}", { hostname: "hôte" }),
    EncodingError,
    'The host name "hôte" for {hostname} has "ô" (U+00F4) at position 2, ' +
      "which ascii cannot encode",
  );
});

Deno.test({
  name: "compileTemplate() needs --allow-sys=hostname only for {hostname}",
  permissions: { sys: false },
  fn() {
    assertThrows(
      () => compileTemplate("{hostname}"),
      TemplateError,
      "The message uses {hostname}, which needs the host name: run deno " +
        "with --allow-sys=hostname",
    );
    assertEquals(send(compileTemplate("{count}")), "7\r\n");
    assertEquals(
      send(compileTemplate("{hostname}", { hostname: "box" })),
      "box\r\n",
    );
  },
});

Deno.test("compileTemplate() names an unknown placeholder and lists the valid ones", () => {
  assertThrows(
    () => compileTemplate("Hi {name}!"),
    TemplateError,
    'Unknown placeholder "{name}" at position 4 of the message: use one of ' +
      `${LIST}, or write {{ and }} for literal braces`,
  );
  assertThrows(() => compileTemplate("{}"), TemplateError, 'placeholder "{}"');
  assertThrows(
    () => compileTemplate("{ count }"),
    TemplateError,
    'placeholder "{ count }"',
  );
  assertThrows(() => compileTemplate("{COUNT}"), TemplateError, '"{COUNT}"');
});

Deno.test("compileTemplate() refuses an unclosed {", () => {
  const expected = 'Unclosed "{" at position 4 of the message: write {{ ' +
    `for a literal brace, or use a placeholder: ${LIST}`;
  assertThrows(() => compileTemplate("abc{count"), TemplateError, expected);
  assertThrows(() => compileTemplate("abc{"), TemplateError, expected);
  assertThrows(() => compileTemplate("abc{a{count}"), TemplateError, expected);
  assertThrows(() => compileTemplate("abc{count\n}"), TemplateError, expected);
});

Deno.test("compileTemplate() refuses a lone }", () => {
  const expected = 'Lone "}" at position 4 of the message: write }} for a ' +
    `literal brace (placeholders are ${LIST})`;
  assertThrows(() => compileTemplate("abc}"), TemplateError, expected);
  assertThrows(() => compileTemplate("abc}}}"), TemplateError, "position 6");
  assertThrows(() => compileTemplate("{count}}"), TemplateError, "position 8");
  assertThrows(() => compileTemplate("{{count}"), TemplateError, "position 8");
});
