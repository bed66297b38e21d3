/**
 * The platforms greeter's binaries are built for, and the release asset
 * names that carry the version and the platform.
 *
 * @module
 */

/** Every target `deno compile` (Deno 2.9) can build, in release order. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
  "aarch64-pc-windows-msvc",
] as const;

/** One of {@linkcode TARGETS}. */
export type Target = typeof TARGETS[number];

/** Whether `text` names a target greeter is built for. */
export function isTarget(text: string): text is Target {
  return (TARGETS as readonly string[]).includes(text);
}

/** The target of the machine this runs on, if greeter is built for it. */
export function hostTarget(): Target | undefined {
  return isTarget(Deno.build.target) ? Deno.build.target : undefined;
}

/**
 * The file name of greeter's binary for `target`, as it appears in `dist/`,
 * on the release page and in SHA256SUMS: `greeter-0.1.0-x86_64-pc-windows-msvc.exe`.
 */
export function assetName(version: string, target: Target): string {
  const extension = target.endsWith("-windows-msvc") ? ".exe" : "";
  return `greeter-${version}-${target}${extension}`;
}
