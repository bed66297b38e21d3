/**
 * A value that cannot be parsed, such as a port, an address or a CIDR
 * block. The fields let a caller say it in its own words (the CLI adds the
 * flag's name); the message alone is already a full sentence:
 * `Invalid port "x": use a whole number from 0 to 65535`.
 *
 * @example Usage
 * ```ts
 * import { parseCidr, ValueError } from "../../mod.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const error = assertThrows(() => parseCidr("10.0.0.0/33"), ValueError);
 * assertEquals(error.what, "CIDR");
 * assertEquals(error.value, "10.0.0.0/33");
 * ```
 */
export class ValueError extends RangeError {
  /** Builds the message from its parts. */
  constructor(
    /** What was being parsed: "port", "address" or "CIDR". */
    readonly what: string,
    /** The text as given. */
    readonly value: string,
    /** Why it is invalid and how to write it, without the value. */
    readonly reason: string,
  ) {
    super(`Invalid ${what} ${JSON.stringify(value)}: ${reason}`);
    this.name = "ValueError";
  }
}

/**
 * What `f` returns, or undefined if it throws: for a question whose failure
 * is its answer (no such descriptor, no permission, not Linux).
 */
export function attempt<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
