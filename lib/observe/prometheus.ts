/**
 * The Prometheus text exposition format (version 0.0.4), written once for
 * every renderer: a family's header, one unlabelled sample, a labelled
 * counter, and the escaping of label values.
 *
 * @module
 */

/** The kinds of family greeter exposes. */
export type FamilyType = "counter" | "gauge" | "histogram";

/** A family's `# HELP` and `# TYPE` lines, each ending in a line feed. */
export function family(name: string, type: FamilyType, help: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

/** A family of one unlabelled sample: its header and `name value`. */
export function metric(
  name: string,
  type: FamilyType,
  help: string,
  value: number,
): string {
  return `${family(name, type, help)}${name} ${value}\n`;
}

/**
 * A counter family with one sample per key, labelled `label`, in the order
 * of `keys` (by default the keys of `values`, sorted); a key missing from
 * `values` counts 0.
 */
export function labelledCounter(
  name: string,
  help: string,
  label: string,
  values: Readonly<Record<string, number>>,
  keys: readonly string[] = Object.keys(values).sort(),
): string {
  let text = family(name, "counter", help);
  for (const key of keys) {
    text += `${name}{${label}="${labelValue(key)}"} ${values[key] ?? 0}\n`;
  }
  return text;
}

/** Escapes a label value: backslash, double quote and line feed. */
export function labelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}
