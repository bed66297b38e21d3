/**
 * Tarpit mode as the library and the command line see it: its styles,
 * options and counters, the check of its options, and what a connection
 * hands a client to ({@linkcode Tarpit}). The tarpit itself is in
 * tarpit_host.ts, which uses the server's connections: this module uses
 * none of the server, so the options and the connections read it without
 * an import cycle.
 *
 * @module
 */
import type { Slot } from "./connection_table.ts";
import { MAX_TIMER_MS } from "./wait.ts";

/**
 * What a tarpit sends: `ssh` (endlessh's random printable lines, never
 * starting with `SSH-`, so an SSH client keeps waiting for the version line
 * of RFC 4253 §4.2), `greeting` (the greeting itself, dripped and repeated
 * without end) or `http` (an `HTTP/1.1 200 OK` status line, then header
 * lines without end).
 *
 * @example Usage
 * ```ts
 * import { TARPIT_STYLES, type TarpitStyle } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const style: TarpitStyle = "http";
 * assertEquals(TARPIT_STYLES.includes(style), true);
 * ```
 */
export type TarpitStyle = "ssh" | "greeting" | "http";

/** The tarpit styles, the default first. */
export const TARPIT_STYLES: readonly TarpitStyle[] = [
  "ssh",
  "greeting",
  "http",
];

/** How often a held client is sent more, by default, in milliseconds. */
export const DEFAULT_TARPIT_INTERVAL = 10_000;

/** The longest line sent by default, CRLF included, in bytes. */
export const DEFAULT_TARPIT_LINE_LENGTH = 32;

/** The longest line there may be: RFC 4253 caps SSH's lines at 255 bytes. */
export const MAX_TARPIT_LINE_LENGTH = 255;

/** The shortest line of the http style, CRLF included: `X-a: b` and CRLF. */
export const MIN_HTTP_LINE_LENGTH = 8;

/**
 * Serving in tarpit mode; see {@linkcode ServeGreetingOptions.tarpit}.
 *
 * @example Hold SSH scanners, one line every 10 s
 * ```ts
 * import { serveGreeting, type TarpitOptions } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const tarpit: TarpitOptions = { style: "ssh", interval: 10_000 };
 * await using server = serveGreeting({ hostname: "127.0.0.1", port: 0, tarpit });
 * assertEquals(server.tarpit?.clients, 0);
 * ```
 */
export interface TarpitOptions {
  /**
   * What is sent.
   *
   * @default {"ssh"}
   */
  style?: TarpitStyle;
  /**
   * How often each held client is sent one line (ssh, http) or one chunk
   * of the greeting, in milliseconds.
   *
   * @default {10000}
   */
  interval?: number;
  /**
   * The longest line of the ssh and http styles, CRLF included (3 to 255
   * bytes; 8 at least for http); for the greeting style, the most bytes of
   * the greeting sent per interval.
   *
   * @default {32}
   */
  lineLength?: number;
}

/**
 * What a tarpit has done so far, as {@linkcode GreetingServer.tarpit}
 * shows it.
 *
 * @example Usage
 * ```ts
 * import { serveGreeting, type TarpitStats } from "../../mod.ts";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   tarpit: {},
 * });
 * const stats: Readonly<TarpitStats> = server.tarpit!;
 * assertEquals(stats.bytesSent, 0);
 * ```
 */
export interface TarpitStats {
  /** Clients held now. */
  clients: number;
  /** Bytes sent to held clients, in total. */
  bytesSent: number;
}

/** The tarpit options with every default filled in. */
export type ResolvedTarpit = Required<TarpitOptions>;

/** A tarpit that holds clients (made by tarpit_host.ts's `createTarpit`). */
export interface Tarpit {
  /** Its counters (live). */
  readonly stats: Readonly<TarpitStats>;
  /**
   * Holds an admitted client until it leaves. `greeting` is its greeting
   * (used by the greeting style); the slot's per-IP place, if it holds
   * one, is released as it ends.
   */
  hold(slot: Slot, greeting: Uint8Array): void;
  /** Releases every held client at once (shutdown), as `aborted`. */
  releaseAll(): void;
  /**
   * Ends the hold of a slot the connection table closed (its timeout),
   * between two of its lines; nothing for a slot it does not hold.
   */
  released(slot: Slot): void;
}

/**
 * Checks the tarpit options and fills in the defaults.
 * `invalid(option, value, expected, Kind)` makes the error for an option
 * out of range (the server's own option errors).
 */
export function resolveTarpit(
  options: TarpitOptions,
  invalid: (...args: [string, unknown, string, typeof TypeError?]) => Error,
): ResolvedTarpit {
  if (typeof options !== "object" || options === null) {
    throw invalid("tarpit", options, "an object", TypeError);
  }
  const {
    style = "ssh",
    interval = DEFAULT_TARPIT_INTERVAL,
    lineLength = DEFAULT_TARPIT_LINE_LENGTH,
  } = options;
  const http = style === "http";
  const min = http ? MIN_HTTP_LINE_LENGTH : 3;
  const note = http ? " for the http style" : "";
  // Each number's name, value, range, and what its range is of and for.
  const numbers = [
    ["interval", interval, 1, MAX_TIMER_MS, " of milliseconds", ""],
    ["lineLength", lineLength, min, MAX_TARPIT_LINE_LENGTH, "", note],
  ] as const;
  const nan = numbers.find(([, value]) => typeof value !== "number");
  if (nan) throw invalid(`tarpit.${nan[0]}`, nan[1], "a number", TypeError);
  if (!TARPIT_STYLES.includes(style)) {
    throw invalid("tarpit.style", style, TARPIT_STYLES.join(", "));
  }
  for (const [name, value, from, to, unit, note] of numbers) {
    if (!Number.isInteger(value) || value < from || value > to) {
      throw invalid(
        `tarpit.${name}`,
        value,
        `a whole number${unit} from ${from} to ${to}${note}`,
      );
    }
  }
  return { style, interval, lineLength };
}
