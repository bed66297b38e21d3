import { assertEquals } from "@std/assert";
import { admissionOf } from "../lib/server/admission.ts";
import { parseCidr } from "../lib/net/ip.ts";

Deno.test("admissionOf() lets deny win over allow", () => {
  const admission = admissionOf({
    allow: [parseCidr("10.0.0.0/8"), parseCidr("::1")],
    deny: [parseCidr("10.0.0.66")],
  })!;
  assertEquals(admission.admit("10.1.2.3", 0), undefined);
  assertEquals(admission.admit("::1", 0), undefined);
  assertEquals(admission.admit("::ffff:10.1.2.3", 0), undefined);
  assertEquals(admission.admit("10.0.0.66", 0), "denied");
  assertEquals(admission.admit("192.168.0.1", 0), "denied");
});

Deno.test("admissionOf() caps open connections per source", () => {
  const admission = admissionOf({ maxPerIp: 2 })!;
  assertEquals(admission.admit("10.0.0.1", 0), undefined);
  assertEquals(admission.admit("10.0.0.1", 0), undefined);
  assertEquals(admission.admit("10.0.0.1", 0), "per_ip_limit");
  assertEquals(admission.admit("10.0.0.2", 0), undefined);
  admission.release("10.0.0.1");
  assertEquals(admission.admit("10.0.0.1", 0), undefined);
});

Deno.test("admissionOf() counts an IPv6 /64 as one source", () => {
  const admission = admissionOf({ maxPerIp: 1 })!;
  assertEquals(admission.admit("2001:db8::1", 0), undefined);
  assertEquals(admission.admit("2001:db8::2", 0), "per_ip_limit");
  assertEquals(admission.admit("2001:db8:0:1::1", 0), undefined);
});

Deno.test("admissionOf() rate-limits with a token bucket", () => {
  const admission = admissionOf({ ratePerIp: 2 })!;
  assertEquals(admission.admit("10.0.0.1", 0), undefined);
  assertEquals(admission.admit("10.0.0.1", 0), undefined);
  assertEquals(admission.admit("10.0.0.1", 0), "rate_limit");
  assertEquals(admission.admit("10.0.0.2", 0), undefined);
  assertEquals(admission.admit("10.0.0.1", 499), "rate_limit");
  assertEquals(admission.admit("10.0.0.1", 500), undefined);
  assertEquals(admission.admit("10.0.0.1", 5000), undefined);
  assertEquals(admission.admit("10.0.0.1", 5000), undefined);
  assertEquals(admission.admit("10.0.0.1", 5000), "rate_limit");
});

Deno.test("admissionOf() keeps serving a flood of distinct sources", () => {
  const admission = admissionOf({ ratePerIp: 1 })!;
  for (let i = 0; i < 200_000; i++) {
    const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    assertEquals(admission.admit(address, i), undefined);
  }
});
