/**
 * `@std/cli/parse-args` for greeter: the JavaScript of `npm:deno-std@1.4.0`
 * (JSR is unreachable here), typed by `parse_args.d.ts` so misuse fails
 * `deno check`. To use JSR instead, point `@std/cli/parse-args` in deno.json
 * at `jsr:@std/cli@^1/parse-args`; nothing else changes.
 *
 * @module
 */
// @ts-types="./parse_args.d.ts"
export * from "npm:deno-std@1.4.0/cli/parse_args.js";
