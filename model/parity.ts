/**
 * `ParityReport`: compares our tensors with a fixture's reference tensors.
 *
 * Error per tensor = max over elements of `|ours - ref| / max(1, |ref|)`; a tensor passes
 * at <= `PARITY_TOLERANCE`. Reference tensors that a runner neither compared nor
 * explicitly excused count as skipped, and any skip fails the fixture: a runner cannot
 * pass by forgetting a tensor.
 *
 * @module
 */
import type { Fixture } from "./fixture.ts";

/** Largest accepted relative error (issue #2: 1e-4 against float64 references). */
export const PARITY_TOLERANCE = 1e-4;

/** Inputs and parameters are given, not computed. */
const GIVEN_PREFIXES = ["input.", "param."];

export type ParityStatus = "pass" | "fail" | "skip" | "excused";

export interface ParityRow {
  name: string;
  status: ParityStatus;
  /** Max relative error (compared rows). */
  err?: number;
  /** Elements compared. */
  n?: number;
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

export class ParityReport {
  readonly fixture: Fixture;
  readonly tolerance: number;
  readonly #rows = new Map<string, ParityRow>();

  constructor(fixture: Fixture, tolerance = PARITY_TOLERANCE) {
    this.fixture = fixture;
    this.tolerance = tolerance;
  }

  /**
   * Compare `ours` with reference tensor `name` (same element count, row-major).
   * `keep` limits the comparison to some elements; say why in `note`.
   */
  compare(
    name: string,
    ours: ArrayLike<number>,
    opts: { shape?: number[]; keep?: (i: number) => boolean; note?: string } = {},
  ): ParityRow {
    const ref = this.fixture.tensor(name);
    if (opts.shape && opts.shape.join(",") !== ref.shape.join(",")) {
      return this.#set({ name, status: "fail", note: `shape [${opts.shape}] vs reference [${ref.shape}]` });
    }
    if (ours.length !== ref.data.length) {
      return this.#set({ name, status: "fail", note: `${ours.length} elements vs reference ${ref.data.length}` });
    }
    const err = maxRelErr(ours, ref.data, opts.keep);
    let n = ref.data.length;
    if (opts.keep) {
      n = 0;
      for (let i = 0; i < ref.data.length; i++) if (opts.keep(i)) n++;
    }
    const status = err <= this.tolerance ? "pass" : "fail";
    return this.#set({ name, status, err, n, note: opts.note });
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

  summary(): { passed: boolean; compared: number; skipped: number; failed: number; maxRelErr: number } {
    const rows = this.rows();
    const compared = rows.filter((r) => r.status === "pass" || r.status === "fail").length;
    const skipped = rows.filter((r) => r.status === "skip").length;
    const failed = rows.filter((r) => r.status === "fail").length;
    const maxRel = rows.reduce((m, r) => (r.err === undefined ? m : Math.max(m, r.err)), 0);
    return { passed: failed === 0 && skipped === 0 && compared > 0, compared, skipped, failed, maxRelErr: maxRel };
  }
}
