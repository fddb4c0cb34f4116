/**
 * `ParityReport`: compares our tensors with a fixture's reference tensors.
 *
 * Two errors per compared tensor, both must hold for it to pass:
 * - `err`, max over elements of `|ours - ref| / max(1, |ref|)` <= `PARITY_TOLERANCE` (1e-4): relative
 *   for large entries, absolute for small ones;
 * - `scaleErr`, `max |ours - ref| / max |ref|` <= `SCALE_TOLERANCE` (1e-2): the error against the
 *   tensor's own scale. Without it a tensor whose entries are all below 1e-4 passes `err` whatever we
 *   compute, all zeros included (nine `simmim_tiny` gradients would; issue 12).
 * A tensor that the manifest's notes call analytically zero or noise has no scale to measure against:
 * a runner excuses it (`excuse`, quoting the note), or keeps the 1e-4 check and waives only the
 * scale rule (`compare(..., { noise: quote })`). Elements noted as noise are left out with `keep`.
 *
 * Optimizer-step tensors (`step.<p>`, after one AdamW step) leave out the elements whose reference
 * gradient is no larger than torch's own float32 error on that gradient (the manifest's
 * `tolerance_hints["grad.<p>"].max_abs_diff_f32_vs_f64`). AdamW's first step is `lr * g / (|g| + eps)`:
 * where float32 arithmetic does not determine `g` even in sign, it does not determine the step either,
 * and comparing it measures luck, not the port (measured: torch float32 itself fails 3 of 40 such CAPI
 * draws, tools/fixtures/precision_study.py). Those gradients are still checked in full as `grad.<p>`;
 * the row counts the elements left out.
 *
 * Reference tensors that a runner neither compared nor explicitly excused count as skipped, and any
 * skip fails the fixture: a runner cannot pass by forgetting a tensor.
 *
 * @module
 */
import type { Fixture } from "./fixture.ts";

/** Largest accepted error `|a-b| / max(1, |ref|)` (issue #2: 1e-4 against float64 references). */
export const PARITY_TOLERANCE = 1e-4;

/** Largest accepted scale-relative error `max|a-b| / max|ref|` (issue 12). */
export const SCALE_TOLERANCE = 1e-2;

/** Inputs and parameters are given, not computed. */
const GIVEN_PREFIXES = ["input.", "param."];

export type ParityStatus = "pass" | "fail" | "skip" | "excused";

export interface ParityRow {
  name: string;
  status: ParityStatus;
  /** Max `|a-b| / max(1, |ref|)` (compared rows). */
  err?: number;
  /** `max|a-b| / max|ref|` (compared rows); 0 when both are all zeros, Infinity when only ref is. */
  scaleErr?: number;
  /** `max|a-b|` (compared rows), for `vsTorchF32`. */
  maxAbs?: number;
  /** Elements compared. */
  n?: number;
  /** The scale rule was waived (the manifest's notes call this tensor noise). */
  noise?: boolean;
  /** Elements of an optimizer-step tensor left out as ill-conditioned (see the module header). */
  illConditioned?: number;
  note?: string;
}

/** Max over i of `|a_i - b_i| / max(1, |b_i|)`, restricted to `keep` where given. */
export function maxRelErr(
  ours: ArrayLike<number>,
  ref: ArrayLike<number>,
  keep?: (i: number) => boolean,
): number {
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    if (keep && !keep(i)) continue;
    const e = Math.abs(ours[i] - ref[i]) / Math.max(1, Math.abs(ref[i]));
    if (Number.isNaN(e)) return NaN; // a NaN anywhere fails the tensor
    if (e > worst) worst = e;
  }
  return worst;
}

/**
 * `max_i |a_i - b_i| / max_i |b_i|` over the elements `keep` selects: the error against the
 * reference tensor's scale. 0 when both are exactly equal (all-zero references included),
 * Infinity for a nonzero answer to an all-zero reference, NaN if any element is NaN.
 */
export function maxScaleErr(
  ours: ArrayLike<number>,
  ref: ArrayLike<number>,
  keep?: (i: number) => boolean,
): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    if (keep && !keep(i)) continue;
    const d = Math.abs(ours[i] - ref[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > diff) diff = d;
    const r = Math.abs(ref[i]);
    if (r > scale) scale = r;
  }
  return diff === 0 ? 0 : diff / scale;
}

/** `max_i |a_i - b_i|` over the elements `keep` selects (NaN if any is NaN). */
export function maxAbsErr(ours: ArrayLike<number>, ref: ArrayLike<number>, keep?: (i: number) => boolean): number {
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    if (keep && !keep(i)) continue;
    const d = Math.abs(ours[i] - ref[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > worst) worst = d;
  }
  return worst;
}

/** Median of `xs` (NaN for none). */
function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export class ParityReport {
  readonly fixture: Fixture;
  readonly tolerance: number;
  readonly scaleTolerance: number;
  readonly #rows = new Map<string, ParityRow>();

  constructor(fixture: Fixture, tolerance = PARITY_TOLERANCE, scaleTolerance = SCALE_TOLERANCE) {
    this.fixture = fixture;
    this.tolerance = tolerance;
    this.scaleTolerance = scaleTolerance;
  }

  /**
   * Compare `ours` with reference tensor `name` (same element count, row-major).
   * `keep` limits the comparison to some elements; say why in `note`. `noise` waives the scale rule
   * for a tensor the manifest's notes call noise: pass the note, quoted (it must be one of them).
   */
  compare(
    name: string,
    ours: ArrayLike<number>,
    opts: { shape?: number[]; keep?: (i: number) => boolean; note?: string; noise?: string } = {},
  ): ParityRow {
    if (opts.noise !== undefined && !this.fixture.manifest.notes.some((n) => n.includes(opts.noise!))) {
      throw new Error(`${this.fixture.path}: '${name}' is waived as noise by a note the manifest does not have`);
    }
    const ref = this.fixture.tensor(name);
    if (opts.shape && opts.shape.join(",") !== ref.shape.join(",")) {
      return this.#set({ name, status: "fail", note: `shape [${opts.shape}] vs reference [${ref.shape}]` });
    }
    if (ours.length !== ref.data.length) {
      return this.#set({ name, status: "fail", note: `${ours.length} elements vs reference ${ref.data.length}` });
    }
    const cond = this.#conditioned(name);
    const keep = cond && opts.keep ? (i: number) => opts.keep!(i) && cond.keep(i) : cond?.keep ?? opts.keep;
    const err = maxRelErr(ours, ref.data, keep);
    const scaleErr = maxScaleErr(ours, ref.data, keep);
    const maxAbs = maxAbsErr(ours, ref.data, keep);
    let n = ref.data.length;
    if (keep) {
      n = 0;
      for (let i = 0; i < ref.data.length; i++) if (keep(i)) n++;
    }
    const noise = opts.noise !== undefined;
    const scaleOk = noise ? !Number.isNaN(scaleErr) : scaleErr <= this.scaleTolerance;
    const status = err <= this.tolerance && scaleOk ? "pass" : "fail";
    const notes = [
      opts.note,
      noise && `scale rule waived, the manifest says: "${opts.noise}"`,
      cond && cond.left > 0 &&
      `${cond.left} element(s) left out: |${cond.grad}| <= ${cond.noise.toExponential(1)}, torch float32's own error`,
    ].filter(Boolean);
    return this.#set({
      name,
      status,
      err,
      scaleErr,
      maxAbs,
      n,
      noise,
      illConditioned: cond?.left,
      note: notes.length ? notes.join("; ") : undefined,
    });
  }

  /**
   * For an optimizer-step tensor `step.<p>`: the elements to compare, those whose reference gradient
   * exceeds torch float32's error on it (module header). `step.ema.<q>` follows `grad.student.<q>`
   * (the EMA moves by `(1 - m)` times the student's step). Null when the fixture lacks the gradient or
   * its hint.
   */
  #conditioned(name: string): { keep: (i: number) => boolean; left: number; grad: string; noise: number } | null {
    if (!name.startsWith("step.")) return null;
    const rest = name.slice("step.".length);
    const grad = [`grad.${rest}`, rest.startsWith("ema.") ? `grad.student.${rest.slice(4)}` : ""]
      .find((g) => g && this.fixture.has(g));
    if (!grad) return null;
    const hints = this.fixture.manifest.tolerance_hints as Record<string, { max_abs_diff_f32_vs_f64?: unknown }>;
    const noise = hints[grad]?.max_abs_diff_f32_vs_f64;
    if (typeof noise !== "number" || !(noise > 0)) return null;
    const g = this.fixture.tensor(grad).data;
    if (g.length !== this.fixture.tensor(name).data.length) return null;
    let left = 0;
    for (let i = 0; i < g.length; i++) if (Math.abs(g[i]) <= noise) left++;
    return { keep: (i) => Math.abs(g[i]) > noise, left, grad, noise };
  }

  /** Record that `name` could not be computed; it fails the fixture. */
  skip(name: string, reason: string): void {
    this.#set({ name, status: "skip", note: reason });
  }

  /** Excuse `name` because the manifest's notes say it is noise (quote them in `reason`). */
  excuse(name: string, reason: string): void {
    this.#set({ name, status: "excused", note: reason });
  }

  #set(row: ParityRow): ParityRow {
    if (!this.fixture.has(row.name)) throw new Error(`${this.fixture.path}: no reference tensor '${row.name}'`);
    this.#rows.set(row.name, row);
    return row;
  }

  /** All rows, with untouched computed tensors marked as skipped. */
  rows(): ParityRow[] {
    const out: ParityRow[] = [];
    for (const name of this.fixture.names()) {
      if (GIVEN_PREFIXES.some((p) => name.startsWith(p))) continue;
      out.push(this.#rows.get(name) ?? { name, status: "skip", note: "not computed" });
    }
    return out;
  }

  /**
   * How our float32 error compares with torch's: the median, over compared tensors that the manifest's
   * `tolerance_hints` give a positive `max_abs_diff_f32_vs_f64` (torch float32 against the float64
   * reference), of our `max|a-b|` divided by it. About 1 when our float32 is as precise as torch's; a
   * median, so the one-element lottery of ill-conditioned tensors (AdamW steps on gradients near eps)
   * does not move it. NaN when the fixture has no hints.
   */
  vsTorchF32(rows: ParityRow[] = this.rows()): number {
    const hints = this.fixture.manifest.tolerance_hints as Record<string, { max_abs_diff_f32_vs_f64?: unknown }>;
    const ratios: number[] = [];
    for (const r of rows) {
      const h = hints[r.name]?.max_abs_diff_f32_vs_f64;
      if (r.maxAbs === undefined || typeof h !== "number" || !(h > 0)) continue;
      ratios.push(r.maxAbs / h);
    }
    return median(ratios);
  }

  /**
   * Counts and worst errors. `maxScaleErr` is over the rows the scale rule applies to (rows waived
   * as noise are left out), so it is the number the 1e-2 bound is checked against.
   */
  summary(): {
    passed: boolean;
    compared: number;
    skipped: number;
    failed: number;
    maxRelErr: number;
    maxScaleErr: number;
    vsTorchF32: number;
  } {
    const rows = this.rows();
    const compared = rows.filter((r) => r.status === "pass" || r.status === "fail").length;
    const skipped = rows.filter((r) => r.status === "skip").length;
    const failed = rows.filter((r) => r.status === "fail").length;
    const maxRel = rows.reduce((m, r) => (r.err === undefined ? m : Math.max(m, r.err)), 0);
    const maxScale = rows.reduce(
      (m, r) => (r.scaleErr === undefined || r.noise ? m : Math.max(m, r.scaleErr)),
      0,
    );
    return {
      passed: failed === 0 && skipped === 0 && compared > 0,
      compared,
      skipped,
      failed,
      maxRelErr: maxRel,
      maxScaleErr: maxScale,
      vsTorchF32: this.vsTorchF32(rows),
    };
  }
}
