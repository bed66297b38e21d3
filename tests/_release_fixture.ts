// A greeter release that the installer tests build and serve themselves on
// 127.0.0.1, laid out like GitHub's release downloads:
//   /latest/download/NAME  and  /download/vVERSION/NAME
// The "binaries" are small shell scripts standing in for greeter: the tests
// are of the installer, not of the binary.
import { formatChecksums, sha256Hex } from "../scripts/checksums.ts";
import { assetName, type Target, TARGETS } from "../scripts/targets.ts";

/** The version the fixture release is of. */
export const FIXTURE_VERSION = "0.1.0";

/** A stand-in binary for `target` that prints what greeter's would. */
export function standInBinary(target: Target): string {
  return "#!/bin/sh\n" +
    `# Stands in for greeter's ${target} binary in the installer tests.\n` +
    `echo "greeter ${FIXTURE_VERSION}"\n`;
}

/** A stand-in binary that fails the way a binary for another CPU does. */
export const BROKEN_BINARY = "#!/bin/sh\n" +
  'echo "cannot execute binary file: Exec format error" >&2\nexit 126\n';

/** What a test release holds; each option breaks it in one way. */
export interface ReleaseOptions {
  /** Targets with a binary (default: all). */
  targets?: readonly Target[];
  /** Binaries' contents by target, instead of {@linkcode standInBinary}. */
  contents?: Partial<Record<Target, string>>;
  /** Targets whose SHA256SUMS line is wrong. */
  wrongChecksums?: readonly Target[];
  /** Targets listed in SHA256SUMS whose binary is not served. */
  unserved?: readonly Target[];
  /** Also serve scripts/install.sh as the release's `install.sh`. */
  installer?: boolean;
}

/** A release served on 127.0.0.1 until disposed. */
export interface ServedRelease extends AsyncDisposable {
  /** What GREETER_BASE_URL should be. */
  baseUrl: string;
  /** Every path requested so far, in order. */
  requests: string[];
  /** The bytes of the binary for `target`. */
  binary(target: Target): Uint8Array;
}

/** Builds a release as `options` say and serves it on a free port. */
export async function serveRelease(
  options: ReleaseOptions = {},
): Promise<ServedRelease> {
  const {
    targets = TARGETS,
    contents = {},
    wrongChecksums = [],
    unserved = [],
    installer = false,
  } = options;
  const encoder = new TextEncoder();
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  const sums = new Map<string, string>();
  const binaries = new Map<Target, Uint8Array>();
  for (const target of targets) {
    const name = assetName(FIXTURE_VERSION, target);
    const bytes = encoder.encode(contents[target] ?? standInBinary(target));
    binaries.set(target, bytes);
    sums.set(
      name,
      wrongChecksums.includes(target)
        ? await sha256Hex(encoder.encode("something else"))
        : await sha256Hex(bytes),
    );
    if (!unserved.includes(target)) files.set(name, bytes);
  }
  files.set("SHA256SUMS", encoder.encode(formatChecksums(sums)));
  if (installer) {
    files.set(
      "install.sh",
      await Deno.readFile(new URL("../scripts/install.sh", import.meta.url)),
    );
  }

  const requests: string[] = [];
  const prefixes = ["/latest/download/", `/download/v${FIXTURE_VERSION}/`];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
  }, (request) => {
    const path = new URL(request.url).pathname;
    requests.push(path);
    const prefix = prefixes.find((prefix) => path.startsWith(prefix));
    const file = prefix && files.get(path.slice(prefix.length));
    return file
      ? new Response(file, {
        headers: { "content-type": "application/octet-stream" },
      })
      : new Response("Not Found", { status: 404 });
  });
  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}`,
    requests,
    binary(target) {
      const bytes = binaries.get(target);
      if (!bytes) throw new Error(`No ${target} binary in this release`);
      return bytes;
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}
