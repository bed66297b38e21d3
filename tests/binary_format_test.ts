import { assertEquals } from "@std/assert";
import {
  readExecutableFormat,
  readExecutableFormatOf,
  targetFormat,
} from "../scripts/binary_format.ts";
import { hostTarget, TARGETS } from "../scripts/targets.ts";

/** The first bytes of a 64-bit little-endian ELF for `machine`. */
function elf(machine: number): Uint8Array {
  const header = new Uint8Array(64);
  header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  new DataView(header.buffer).setUint16(18, machine, true);
  return header;
}

/** The first bytes of a 64-bit Mach-O for `cpu`. */
function macho(cpu: number): Uint8Array {
  const header = new Uint8Array(32);
  header.set([0xcf, 0xfa, 0xed, 0xfe]);
  new DataView(header.buffer).setUint32(4, cpu, true);
  return header;
}

/** The first bytes of a PE file for `machine`, its header at 0x80. */
function pe(machine: number): Uint8Array {
  const header = new Uint8Array(0x100);
  const view = new DataView(header.buffer);
  header.set([0x4d, 0x5a]);
  view.setUint32(0x3c, 0x80, true);
  header.set([0x50, 0x45, 0, 0], 0x80);
  view.setUint16(0x84, machine, true);
  return header;
}

Deno.test("readExecutableFormat tells every target's header apart", () => {
  const headers: Record<string, Uint8Array> = {
    "x86_64-unknown-linux-gnu": elf(0x3e),
    "aarch64-unknown-linux-gnu": elf(0xb7),
    "x86_64-apple-darwin": macho(0x01000007),
    "aarch64-apple-darwin": macho(0x0100000c),
    "x86_64-pc-windows-msvc": pe(0x8664),
    "aarch64-pc-windows-msvc": pe(0xaa64),
  };
  for (const target of TARGETS) {
    assertEquals(
      readExecutableFormat(headers[target]),
      targetFormat(target),
      target,
    );
  }
});

Deno.test("readExecutableFormat rejects what is not a 64-bit executable", () => {
  const elf32 = elf(0x3e);
  elf32[4] = 1;
  const cases: [string, Uint8Array][] = [
    ["empty", new Uint8Array()],
    ["a shell script", new TextEncoder().encode("#!/bin/sh\necho hi\n")],
    ["32-bit ELF", elf32],
    ["RISC-V ELF", elf(0xf3)],
    ["truncated ELF", elf(0x3e).subarray(0, 10)],
    ["32-bit x86 PE", pe(0x14c)],
    ["MZ without PE header", pe(0x8664).subarray(0, 0x40)],
    ["PowerPC Mach-O", macho(0x01000012)],
  ];
  for (const [label, bytes] of cases) {
    assertEquals(readExecutableFormat(bytes), undefined, label);
  }
});

Deno.test({
  name: "readExecutableFormatOf reads the running deno as the host target",
  ignore: hostTarget() === undefined,
  async fn() {
    assertEquals(
      await readExecutableFormatOf(Deno.execPath()),
      targetFormat(hostTarget()!),
    );
  },
});
