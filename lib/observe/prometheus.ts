/**
 * The Prometheus text exposition format (version 0.0.4), written once for
 * every renderer: a table of families (type, name, samples, help) drives the
 * `# HELP` and `# TYPE` lines and the samples of each, labelled or not,
 * histograms included, and label values are escaped in one place.
 *
 * @module
 */

/** The kinds of family greeter exposes. */
export type FamilyType = "counter" | "gauge" | "histogram";

/** A histogram's buckets: upper bounds in seconds, counts not cumulative. */
export interface Buckets {
  /** The buckets' upper bounds, in seconds (+Inf is implied). */
  readonly bounds: readonly number[];
  /** Observations per bucket, not cumulative; the last is above every bound. */
  readonly counts: readonly number[];
  /** The sum of the observations, in milliseconds. */
  readonly sumMs: number;
  /** How many observations there were. */
  readonly count: number;
}

/**
 * A family's samples: one number; `[label, values, keys]`, one sample per
 * key labelled `label`, in the order of `keys` (by default the keys of
 * `values`, sorted; a key missing from `values` counts 0); or a histogram.
 */
export type Samples =
  | number
  | readonly [string, Readonly<Record<string, number>>, (readonly string[])?]
  | Buckets;

/** A family's `# HELP` and `# TYPE` lines, each ending in a line feed. */
export function family(name: string, type: FamilyType, help: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

/**
 * Renders families written one a line, `TYPE NAME ${samples} HELP`, in
 * their order, each whose {@linkcode Samples} are not undefined.
 */
export function expose(
  lines: TemplateStringsArray,
  ...samples: (Samples | undefined)[]
): string {
  let text = "";
  samples.forEach((value, i) => {
    if (value === undefined) return;
    const [type, name] = lines[i].split("\n").at(-1)!.trim().split(" ");
    const help = lines[i + 1].split("\n")[0].trim();
    text += family(name, type as FamilyType, help);
    if (typeof value === "number") text += `${name} ${value}\n`;
    else if ("bounds" in value) {
      let cumulative = 0;
      value.bounds.forEach((bound, i) => {
        cumulative += value.counts[i];
        text += `${name}_bucket{le="${bound}"} ${cumulative}\n`;
      });
      text += `${name}_bucket{le="+Inf"} ${value.count}\n` +
        `${name}_sum ${value.sumMs / 1000}\n${name}_count ${value.count}\n`;
    } else {
      const [label, counts, keys = Object.keys(counts).sort()] = value;
      for (const key of keys) {
        text += `${name}{${label}="${labelValue(key)}"} ${counts[key] ?? 0}\n`;
      }
    }
  });
  return text;
}

/** Escapes a label value: backslash, double quote and line feed. */
export function labelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}
