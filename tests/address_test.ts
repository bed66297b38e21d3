import { assertEquals, assertThrows } from "@std/assert";
import { formatAddress, parseHostPort, parsePort } from "../lib/net/address.ts";

const defaults = { hostname: "localhost", port: 8080 };

Deno.test("formatAddress() brackets IPv6 hosts", () => {
  assertEquals(
    formatAddress({ transport: "tcp", hostname: "127.0.0.1", port: 1 }),
    "127.0.0.1:1",
  );
  assertEquals(
    formatAddress({ transport: "tcp", hostname: "::1", port: 80 }),
    "[::1]:80",
  );
});

Deno.test("parseHostPort() fills in what is missing", () => {
  assertEquals(parseHostPort("example.com", defaults), {
    hostname: "example.com",
    port: 8080,
  });
  assertEquals(parseHostPort(":9000", defaults), {
    hostname: "localhost",
    port: 9000,
  });
  assertEquals(parseHostPort("10.0.0.1:0", defaults), {
    hostname: "10.0.0.1",
    port: 0,
  });
  assertEquals(parseHostPort("[::1]:9", defaults), {
    hostname: "::1",
    port: 9,
  });
  assertEquals(parseHostPort("[::1]", defaults), {
    hostname: "::1",
    port: 8080,
  });
  assertEquals(parseHostPort("fe80::1", defaults), {
    hostname: "fe80::1",
    port: 8080,
  });
});

Deno.test("parseHostPort() rejects bad ports, hosts and brackets", () => {
  assertThrows(
    () => parseHostPort("a:65536", defaults),
    RangeError,
    'Invalid port "65536"',
  );
  assertThrows(
    () => parseHostPort("a:x", defaults),
    RangeError,
    'Invalid port "x"',
  );
  assertThrows(
    () => parseHostPort("[::1:80", defaults),
    RangeError,
    "write IPv6 addresses as",
  );
  assertThrows(
    () => parseHostPort("[]:80", defaults),
    RangeError,
    "the host is empty",
  );
});

Deno.test("parsePort() accepts 0-65535 only", () => {
  assertEquals(parsePort("0"), 0);
  assertEquals(parsePort("65535"), 65535);
  for (
    const bad of ["-1", "65536", "1.5", "", " 80", "0x50", "1e3", "999999"]
  ) {
    assertThrows(
      () => parsePort(bad),
      RangeError,
      "use a whole number from 0 to 65535",
    );
  }
});

Deno.test("formatAddress() escapes control characters of paths and hosts", () => {
  // An operator's --unix path or --host must not split a log line in two.
  assertEquals(
    formatAddress({ transport: "unix", path: "/tmp/s\nx.sock" }),
    "/tmp/s\\nx.sock",
  );
  assertEquals(
    formatAddress({ transport: "tcp", hostname: "a\r\x1bb", port: 1 }),
    "a\\r\\x1bb:1",
  );
});
