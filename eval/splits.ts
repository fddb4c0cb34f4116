/**
 * Seeded subsets of a split: the train/held-out split that picks hyper-parameters, and the
 * stratified sample behind `--limit-train` / `--limit-val`.
 *
 * The held-out part of train picks hyper-parameters; the reported split is never used for
 * selection. Sizes follow the official code: classification keeps
 * `round((1 - fraction) * n)` for fitting (capi eval_classification.py, Python's round),
 * segmentation holds out `n // 10` (eval_segmentation.py). The permutation comes from
 * model/rng.ts (the official code uses numpy's generator, which we do not reproduce).
 *
 * @module
 */
import { Rng } from "../model/rng.ts";
import { pyRound } from "../datasets/transforms.ts";

export interface HoldoutSplit {
  /** Indices the candidates are fitted on (ascending). */
  fit: Int32Array;
  /** Indices they are scored on (ascending). */
  hold: Int32Array;
}

/** How many of `n` samples are held out: `round` (classification) or `floor` (segmentation). */
export function holdoutCount(n: number, fraction: number, rule: "round" | "floor"): number {
  // 1e-9: 0.1 * 30 is 3.0000000000000004 in floats, but 0.1 * 70 must not floor below 7 either.
  const k = rule === "round" ? n - pyRound((1 - fraction) * n) : Math.floor(n * fraction + 1e-9);
  return Math.min(n - 1, Math.max(1, k));
}

/** A fixed share of `0..n-1` held out, at least one sample on each side. */
export function holdoutSplit(
  n: number,
  fraction: number,
  seed: number,
  label = "holdout",
  rule: "round" | "floor" = "round",
): HoldoutSplit {
  if (n < 2) throw new Error(`holdoutSplit: need at least 2 training samples to hold some out, got ${n}`);
  const nHold = holdoutCount(n, fraction, rule);
  const perm = Rng.from(seed, "eval", label).permutation(n);
  const hold = perm.slice(0, nHold).sort();
  const fit = perm.slice(nHold).sort();
  return { fit, hold };
}

/**
 * `count` of the samples, stratified by class and seeded (ascending indices). Each class gets
 * its proportional share `count * n_c / n` rounded down, and the samples left over go to the
 * largest remainders (ties: the larger class, then the smaller class id), so the quotas depend
 * only on the class counts; which samples of a class are taken is a seeded random choice.
 * Labels below 0 (segmentation images carry none) make it a seeded uniform sample.
 */
export function stratifiedSubset(labels: ArrayLike<number>, count: number, seed: number): Int32Array {
  const n = labels.length;
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`stratifiedSubset: count must be >= 1, got ${count}`);
  if (count >= n) return Int32Array.from({ length: n }, (_, i) => i);
  const rng = Rng.from(seed, "eval", "limit");
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const c = labels[i] < 0 ? -1 : labels[i];
    let list = byClass.get(c);
    if (!list) byClass.set(c, list = []);
    list.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const quota = new Map(classes.map((c) => [c, Math.floor((count * byClass.get(c)!.length) / n)]));
  let left = count - [...quota.values()].reduce((a, b) => a + b, 0);
  const rem = (c: number) => (count * byClass.get(c)!.length) / n - quota.get(c)!;
  const order = [...classes].sort((a, b) =>
    rem(b) - rem(a) || byClass.get(b)!.length - byClass.get(a)!.length || a - b
  );
  for (const c of order) {
    if (left === 0) break;
    quota.set(c, quota.get(c)! + 1);
    left--;
  }
  const out: number[] = [];
  for (const c of classes) {
    const members = byClass.get(c)!;
    const perm = rng.fork("class", c).permutation(members.length);
    for (let j = 0; j < quota.get(c)!; j++) out.push(members[perm[j]]);
  }
  return Int32Array.from(out).sort();
}
