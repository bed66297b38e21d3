/**
 * The escaping of values echoed in one-line messages, for the modules that
 * import it from here: it lives in `lib/net/escape.ts`, the lowest layer, so
 * that the client shows received bytes the way the log does.
 *
 * @module
 */
export { escapeBytes, escapeControl, quote } from "../net/escape.ts";
