/**
 * `@std/assert` for greeter: the JavaScript of `npm:deno-std@1.4.0` (JSR is
 * unreachable here), typed by `assert.d.ts` so misuse fails `deno check`.
 * To use JSR instead, point `@std/assert` in deno.json at
 * `jsr:@std/assert@^1`; nothing else changes.
 *
 * @module
 */
// @ts-types="./assert.d.ts"
export * from "npm:deno-std@1.4.0/assert/mod.js";
