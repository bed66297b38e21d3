import { assertEquals, assertThrows } from "@std/assert";
import { encodeGreeting } from "../lib/greeting/template.ts";
import { decodeMessageFile } from "../lib/greeting/message_file.ts";

const bytes = (text: string) => [...text].map((c) => c.charCodeAt(0));

Deno.test("encodeGreeting() encodes the default as ASCII with CRLF", () => {
  assertEquals(
    [...encodeGreeting("Connection Established")],
    bytes("Connection Established\r\n"),
  );
});

Deno.test("encodeGreeting() applies each line ending to every line", () => {
  assertEquals(
    [...encodeGreeting("a\nb", { lineEnding: "crlf" })],
    bytes("a\r\nb\r\n"),
  );
  assertEquals(
    [...encodeGreeting("a\r\nb", { lineEnding: "lf" })],
    bytes("a\nb\n"),
  );
  assertEquals(
    [...encodeGreeting("a\r\nb", { lineEnding: "none" })],
    bytes("a\nb"),
  );
  assertEquals([...encodeGreeting("", { lineEnding: "none" })], []);
});

Deno.test("encodeGreeting() encodes UTF-8 and Latin-1 exactly", () => {
  assertEquals([
    ...encodeGreeting("é€", { encoding: "utf-8", lineEnding: "lf" }),
  ], [
    0xc3,
    0xa9,
    0xe2,
    0x82,
    0xac,
    0x0a,
  ]);
  assertEquals([
    ...encodeGreeting("é", { encoding: "latin1", lineEnding: "none" }),
  ], [0xe9]);
});

Deno.test("encodeGreeting() refuses characters the encoding cannot carry", () => {
  assertThrows(
    () => encodeGreeting("café"),
    RangeError,
    'Message has "é" (U+00E9) at position 4, which ascii cannot encode',
  );
  assertThrows(
    () => encodeGreeting("€", { encoding: "latin1" }),
    RangeError,
    "latin1 cannot encode",
  );
  assertThrows(
    () => encodeGreeting("\ud800", { encoding: "utf-8" }),
    RangeError,
    "unpaired surrogate",
  );
});

Deno.test("decodeMessageFile() drops one trailing newline and checks bytes", () => {
  assertEquals(
    decodeMessageFile(new Uint8Array(bytes("hi\n\n")), "ascii"),
    "hi\n",
  );
  assertEquals(
    decodeMessageFile(new Uint8Array(bytes("hi\r\n")), "ascii"),
    "hi",
  );
  assertEquals(decodeMessageFile(new Uint8Array([0xe9]), "latin1"), "é");
  assertEquals(decodeMessageFile(new Uint8Array([0xc3, 0xa9]), "utf-8"), "é");
  assertThrows(
    () => decodeMessageFile(new Uint8Array([0xe9]), "ascii"),
    RangeError,
    "byte 0xE9 at offset 0",
  );
  assertThrows(
    () => decodeMessageFile(new Uint8Array([0xe9]), "utf-8"),
    RangeError,
    "not valid UTF-8",
  );
});

Deno.test("encodeGreeting() refuses an encoding or line ending named after an object property", () => {
  for (const name of ["constructor", "toString", "valueOf", "__proto__"]) {
    assertThrows(
      () => encodeGreeting("Hi", { lineEnding: name as "crlf" }),
      RangeError,
      `Unknown line ending "${name}": use one of crlf, lf, none`,
    );
    assertThrows(
      () => encodeGreeting("Hi", { encoding: name as "ascii" }),
      RangeError,
      `Unknown encoding "${name}"`,
    );
  }
});
