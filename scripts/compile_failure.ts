/**
 * Turns what a failed `deno compile` printed into one line that says what
 * happened and what fixes it.
 *
 * @module
 */

function downloadReason(stderr: string): string {
  if (/dns error|lookup address|Name or service not known/i.test(stderr)) {
    return "the host name does not resolve (no network access?)";
  }
  if (/connection refused/i.test(stderr)) return "the connection was refused";
  if (/timed out/i.test(stderr)) return "the connection timed out";
  if (/certificate/i.test(stderr)) return "the TLS certificate was rejected";
  return "the request failed";
}

/** The last line of deno's "Caused by:" list, without its number. */
function deepestCause(stderr: string): string | undefined {
  const causes = [...stderr.matchAll(/^\s+\d+: (.+)$/gm)]
    .map((match) => match[1].trim())
    .filter((line) => line !== "<unknown>");
  return causes.at(-1);
}

/**
 * One line for a failed `deno compile --target TARGET`, from its stderr
 * (printed with NO_COLOR) and its exit code.
 */
export function explainCompileFailure(
  stderr: string,
  target: string,
  code: number,
): string {
  const url = /error sending request for url \((\S+?)\)/.exec(stderr)?.[1];
  if (url) {
    return `Cannot download the Deno runtime (denort) for ${target} from ` +
      `${url}: ${downloadReason(stderr)}; give this machine network ` +
      `access, or set DENORT_BIN to a local denort ${Deno.version.deno} ` +
      `for ${target} and build that one target`;
  }
  const denort = /Could not find denort at '([^']*)'/.exec(stderr)?.[1];
  if (denort !== undefined) {
    return `DENORT_BIN points at "${denort}", which does not exist: set it ` +
      `to a denort ${Deno.version.deno} binary, or unset it to download one`;
  }
  if (/Setting up base binary/.test(stderr)) {
    return `Cannot set up the Deno runtime (denort) for ${target}: ` +
      `${deepestCause(stderr) ?? "unknown reason"}; check network access ` +
      "or DENORT_BIN";
  }
  const typeError = /^(TS\d+) \[ERROR\]: (.+)$/m.exec(stderr);
  if (typeError) {
    const where = /^\s+at (\S+)$/m.exec(stderr)?.[1];
    return `deno compile failed for ${target}: type checking failed: ` +
      `${typeError[1]} ${typeError[2]}${where ? ` (at ${where})` : ""}; ` +
      "run deno task check";
  }
  const error = /^error: (.+)$/m.exec(stderr)?.[1];
  return `deno compile failed for ${target}: ` +
    (error ?? `it exited with code ${code} and said nothing`);
}
