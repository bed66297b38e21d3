/**
 * greeter's warnings: one line on stderr, `greeter: warning: ...`, or the
 * same as a JSON line under `--log-format json`, so that every line greeter
 * writes has the shape its log format promises.
 *
 * @module
 */
import { escapeControl } from "../observe/escape.ts";
import {
  formatJsonWarningLine,
  type LogFormat,
} from "../observe/log_format.ts";

/** Writes `text` (without the `greeter: warning: ` prefix) to stderr. */
export function warn(text: string, format: LogFormat = "text"): void {
  const line = `greeter: warning: ${escapeControl(text)}`;
  console.error(format === "json" ? formatJsonWarningLine(line) : line);
}

const held: [string, LogFormat][] = [];

/**
 * Holds a warning until greeter serves ({@linkcode sayHeldWarnings}): a
 * start that fails says only why, in one line.
 */
export function warnOnceServing(text: string, format: LogFormat = "text") {
  held.push([text, format]);
}

/** Writes the warnings held by {@linkcode warnOnceServing}, once. */
export function sayHeldWarnings(): void {
  for (const [text, format] of held.splice(0)) warn(text, format);
}
