/**
 * Number formats and the Markdown table that every report line uses.
 *
 * @module
 */

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function fmt(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return "–";
  return n.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

export function pct(n: number): string {
  return Number.isFinite(n) ? `${Math.round(n * 100)}%` : "–";
}

export function table(
  header: string[],
  rows: string[][],
  align: string[],
): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, 3, ...rows.map((r) => r[i].length))
  );
  const cell = (s: string, i: number) =>
    align[i] === "r" ? s.padStart(widths[i]) : s.padEnd(widths[i]);
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => cell(c, i)).join(" | ")} |`;
  const rule = widths.map((w, i) =>
    align[i] === "r" ? "-".repeat(w - 1) + ":" : "-".repeat(w)
  );
  return [line(header), `| ${rule.join(" | ")} |`, ...rows.map(line)].join(
    "\n",
  );
}
