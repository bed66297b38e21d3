/**
 * results.svg: server CPU per connection as bars, with the target ratios to
 * the C floor drawn as dashed lines.
 *
 * @module
 */
import { fmt } from "./format.ts";
import type { Row } from "./report.ts";

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The chart of `rows`, `floor` for the ratio lines. */
export function svgChart(rows: Row[], floor?: Row, subtitle = ""): string {
  const width = 760, left = 170, right = 110, rowH = 34, top = 64;
  const height = top + rows.length * rowH + 66;
  const maxVal = Math.max(...rows.map((r) => r.cpuUs), 1) * 1.05;
  const x = (v: number) => left + (v / maxVal) * (width - left - right);
  const color = (r: Row) =>
    r.result.spec.kind === "greeter"
      ? "#2f6fb3"
      : r.result.spec.kind === "floor"
      ? "#7a7a7a"
      : "#c98a2b";
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">Server CPU per connection (µs, lower is better)</text>`,
    `<text x="${left}" y="44" fill="#555">${escapeXml(subtitle)}</text>`,
  ];
  const axisBottom = top + rows.length * rowH;
  const step = maxVal > 100 ? 20 : maxVal > 40 ? 10 : maxVal > 15 ? 5 : 2;
  for (let v = 0; v <= maxVal; v += step) {
    parts.push(
      `<line x1="${x(v)}" y1="${top - 6}" x2="${
        x(v)
      }" y2="${axisBottom}" stroke="#e4e4e4"/>`,
      `<text x="${x(v)}" y="${
        axisBottom + 16
      }" text-anchor="middle" fill="#555">${v}</text>`,
    );
  }
  if (floor) {
    for (const [k, label] of [[1.5, "1.5× floor"], [1.6, "1.6×"]] as const) {
      const v = floor.cpuUs * k;
      if (v > maxVal) continue;
      parts.push(
        `<line x1="${x(v)}" y1="${top - 10}" x2="${
          x(v)
        }" y2="${axisBottom}" stroke="#b33" stroke-dasharray="4 3"/>`,
        `<text x="${x(v) + (k === 1.5 ? -4 : 4)}" y="${
          top - 12
        }" fill="#b33" ` +
          `font-size="11" text-anchor="${
            k === 1.5 ? "end" : "start"
          }">${label}</text>`,
      );
    }
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH + 6;
    const label = floor ? ` (${fmt(r.cpuUs / floor.cpuUs, 2)}× floor)` : "";
    parts.push(
      `<text x="${left - 8}" y="${y + 15}" text-anchor="end">${
        escapeXml(r.name)
      }</text>`,
      `<rect x="${left}" y="${y}" width="${
        Math.max(1, x(r.cpuUs) - left)
      }" height="20" fill="${color(r)}"/>`,
      `<text x="${x(r.cpuUs) + 6}" y="${y + 15}">${fmt(r.cpuUs, 2)}${
        escapeXml(label)
      }</text>`,
    );
  });
  parts.push(
    `<text x="16" y="${axisBottom + 38}" fill="#555" font-size="11">` +
      "utime+stime of the server process from /proc, median of rounds.</text>",
    `<text x="16" y="${axisBottom + 54}" fill="#555" font-size="11">` +
      "Blue: greeter; orange: runtime baselines; grey: C floor; dashed: target ratios to the floor.</text>",
    "</svg>",
  );
  return parts.join("\n") + "\n";
}
