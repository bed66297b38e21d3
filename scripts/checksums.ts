/**
 * SHA-256 checksums in the format `sha256sum` writes and `sha256sum -c`,
 * `shasum -a 256 -c` and greeter's installers read: one `HEX  NAME` line per
 * file.
 *
 * @module
 */

/** The name of the checksum file next to the binaries. */
export const CHECKSUMS_FILE = "SHA256SUMS";

/** The SHA-256 of `bytes` as lowercase hex. */
export async function sha256Hex(
  bytes: Uint8Array<ArrayBuffer>,
): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}

/** The SHA-256 of the file at `path` as lowercase hex. */
export async function sha256File(path: string): Promise<string> {
  return await sha256Hex(await Deno.readFile(path));
}

/** One line per file, sorted by name, each ending in "\n". */
export function formatChecksums(sums: Map<string, string>): string {
  return [...sums.keys()].sort()
    .map((name) => `${sums.get(name)}  ${name}\n`)
    .join("");
}
