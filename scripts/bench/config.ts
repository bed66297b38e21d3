/**
 * Where the benchmark runs and writes, and the fixed choices every part of it
 * shares: the address, the greeting to expect, which core is whose.
 *
 * @module
 */

/** The repository root: every command runs from here. */
export const ROOT = new URL("../..", import.meta.url).pathname.replace(
  /\/$/,
  "",
);
/** Built helpers and server output (ignored by git). */
export const BUILD = `${ROOT}/.bench`;
/** Where results.md and results.svg are written, relative to ROOT. */
export const RESULTS = "scripts/bench/results";

export const GREETING = "Connection Established\r\n";
/** greeter's start-up line, whose time is measured besides the greeting. */
export const STARTUP_LINE = "Server is listening for incoming connections on";
export const HOST = "127.0.0.1";
export const SERVER_CPU = "1";
export const LOADGEN_CPU = "0";
/** Share of both cores busy with other work above which a round is redone. */
export const NOISE_LIMIT = 0.1;
