/**
 * "Did you mean …?" for a mistyped flag or command.
 *
 * @module
 */

/** Words longer than this get no suggestion: the distance costs O(n·m). */
const MAX_WORD = 64;

/**
 * The optimal string alignment distance between `a` and `b` (restricted
 * Damerau-Levenshtein): how many insertions, deletions, substitutions and
 * swaps of two neighbouring characters turn one into the other, no
 * substring edited twice. `prot` → `port` is one swap.
 */
export function editDistance(a: string, b: string): number {
  // The whole table: words are short (see MAX_WORD).
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      // A deletion or an insertion, else a substitution (or a match).
      const edit = Math.min(d[i - 1][j], d[i][j - 1]) + 1;
      d[i][j] = Math.min(edit, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** The word without leading dashes, in lower case: what the distance compares. */
function stem(word: string): string {
  return word.replace(/^-+/, "").toLowerCase();
}

/**
 * The candidate `word` was most likely meant to be, or `undefined` if none
 * is close. Leading dashes and case are ignored when comparing, and the
 * candidate is returned as given. A candidate counts as close when it is
 * within a few edits, fewer for shorter words (swaps count as one; see {@linkcode editDistance}), or
 * when the word is the start of exactly one candidate and at least three
 * characters long (`--time` → `--timeout`). The closest wins; of equals,
 * the one listed first. A word that is itself a candidate gets nothing.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { suggest } from "./suggest.ts";
 *
 * const flags = ["--port", "--host", "--timeout"];
 * assertEquals(suggest("--prot", flags), "--port");
 * assertEquals(suggest("--tiemout", flags), "--timeout");
 * assertEquals(suggest("--zzzzzz", flags), undefined);
 * ```
 */
export function suggest(
  word: string,
  candidates: readonly string[],
): string | undefined {
  if (candidates.includes(word)) return undefined;
  const typed = stem(word);
  if (typed.length === 0 || typed.length > MAX_WORD) return undefined;
  // The most edits a suggestion may be away, by the length of the word as
  // typed: none for one or two characters (`-x` is not a typo of `-p`), one
  // up to five, two up to eight, three beyond. Any more and the
  // "suggestion" is a different word.
  const length = typed.length;
  const limit = length <= 2 ? 0 : length <= 5 ? 1 : length <= 8 ? 2 : 3;
  // The closest within the limit; of equals, the first.
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    // Lengths that differ by more than the limit cannot be within it.
    if (Math.abs(stem(candidate).length - length) > limit) continue;
    const distance = editDistance(typed, stem(candidate));
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  if (best !== undefined || typed.length < 3) return best;
  const extensions = candidates.filter((candidate) =>
    stem(candidate).startsWith(typed)
  );
  return extensions.length === 1 ? extensions[0] : undefined;
}
