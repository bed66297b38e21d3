/**
 * Reads which operating system and processor an executable is for from its
 * header, so that a binary built from the wrong runtime base (a DENORT_BIN
 * for another platform) is caught before it is shipped.
 *
 * @module
 */
import type { Target } from "./targets.ts";

/** What an executable runs on, as far as its header says. */
export interface ExecutableFormat {
  /** ELF is taken to mean Linux: greeter ships no other ELF platform. */
  os: "linux" | "darwin" | "windows";
  arch: "x86_64" | "aarch64";
}

/** How many bytes of a file {@linkcode readExecutableFormat} needs. */
export const HEADER_BYTES = 4096;

const ELF_MACHINES: Record<number, ExecutableFormat["arch"]> = {
  0x3e: "x86_64",
  0xb7: "aarch64",
};
const MACHO_CPUS: Record<number, ExecutableFormat["arch"]> = {
  0x01000007: "x86_64",
  0x0100000c: "aarch64",
};
const PE_MACHINES: Record<number, ExecutableFormat["arch"]> = {
  0x8664: "x86_64",
  0xaa64: "aarch64",
};

/**
 * The format of a 64-bit little-endian ELF, Mach-O or PE executable from its
 * first bytes, or undefined for anything else.
 */
export function readExecutableFormat(
  header: Uint8Array,
): ExecutableFormat | undefined {
  const view = new DataView(header.buffer, header.byteOffset, header.length);
  const has = (offset: number, length: number) =>
    offset >= 0 && offset + length <= header.length;
  if (!has(0, 4)) return undefined;
  const magic = view.getUint32(0, false);
  if (magic === 0x7f454c46) { // "\x7fELF"
    // EI_CLASS 2 is 64-bit, EI_DATA 1 little-endian; e_machine follows.
    if (!has(18, 2) || header[4] !== 2 || header[5] !== 1) return undefined;
    const arch = ELF_MACHINES[view.getUint16(18, true)];
    return arch && { os: "linux", arch };
  }
  if (magic === 0xcffaedfe) { // MH_MAGIC_64 as stored little-endian
    if (!has(4, 4)) return undefined;
    const arch = MACHO_CPUS[view.getUint32(4, true)];
    return arch && { os: "darwin", arch };
  }
  if (header[0] === 0x4d && header[1] === 0x5a) { // "MZ"
    if (!has(0x3c, 4)) return undefined;
    const pe = view.getUint32(0x3c, true);
    if (!has(pe, 6) || view.getUint32(pe, false) !== 0x50450000) { // "PE\0\0"
      return undefined;
    }
    const arch = PE_MACHINES[view.getUint16(pe + 4, true)];
    return arch && { os: "windows", arch };
  }
  return undefined;
}

/** The format a binary for `target` must have. */
export function targetFormat(target: Target): ExecutableFormat {
  const arch = target.startsWith("aarch64-") ? "aarch64" : "x86_64";
  const os = target.endsWith("-linux-gnu")
    ? "linux"
    : target.endsWith("-apple-darwin")
    ? "darwin"
    : "windows";
  return { os, arch };
}

/** Reads the format of the executable at `path`. */
export async function readExecutableFormatOf(
  path: string,
): Promise<ExecutableFormat | undefined> {
  using file = await Deno.open(path);
  const header = new Uint8Array(HEADER_BYTES);
  let filled = 0;
  while (filled < header.length) {
    const read = await file.read(header.subarray(filled));
    if (read === null) break;
    filled += read;
  }
  return readExecutableFormat(header.subarray(0, filled));
}

/** "linux x86_64", or "not a known executable" for undefined. */
export function describeFormat(format: ExecutableFormat | undefined): string {
  return format ? `${format.os} ${format.arch}` : "not a known executable";
}
