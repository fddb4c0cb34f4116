/**
 * L-BFGS as cuML's quasi-Newton solver runs it (the solver behind the official segmentation
 * logistic regression, capi eval_segmentation.py: `cuml.linear_model.LogisticRegression`,
 * L2, max_iter 1000, tol 1e-12, linesearch_max_iter 50, lbfgs_memory 5; cuML
 * `glm/qn/qn_solvers.cuh` `min_lbfgs`, `qn_util.cuh`, `qn_linesearch.cuh`):
 *
 * - start at the given point, first step `1 / ||g||_2` along `-g`, then step 1 along the
 *   two-loop-recursion direction with `m` pairs (an update with `s.y <= eps * y.y` is skipped
 *   and the previous direction kept);
 * - backtracking line search on the Armijo condition `f(x + a d) <= f(x) + ftol * a * g.d`,
 *   halving `a`, at most `maxLinesearch` evaluations; `ftol = changeTol / 10` (cuML sets it so
 *   when a change tolerance is given, otherwise 1e-4);
 * - converged when `max|g| <= gradTol * max(f, gradTol)` or, with `changeTol > 0`, when
 *   `|f_{k-10} - f_k| <= changeTol * max(f, gradTol)` (cuML: `tol` and `delta = tol / 100`);
 * - a failed line search that did not raise f is accepted once and stops the run when it did
 *   not lower f either (cuML `update_and_check`), reported as `line_search_failed`.
 *
 * The solver is a generator: it yields each point it needs evaluated and receives `{f, g}`.
 * That lets the caller evaluate many independent problems (the C grid) in one pass over data
 * that does not fit in memory, while each problem keeps its own iterations and stopping rule.
 * State is float64 on the host (cuML runs float32 on float32 data: ours is at least as exact).
 *
 * @module
 */

/** Why the solver stopped. Only `converged` is a solution to the requested tolerance. */
export type LbfgsStatus = "converged" | "max_iter" | "line_search_failed" | "numeric_error";

export interface LbfgsOptions {
  maxIter: number;
  /** Gradient test: `max|g| <= gradTol * max(f, gradTol)`. */
  gradTol: number;
  /** Objective-change test over the last 10 iterations (0 disables it). */
  changeTol: number;
  /** Number of (s, y) pairs kept. */
  memory: number;
  /** Evaluations per line search. */
  maxLinesearch: number;
}

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  /** Completed iterations (0 when the start point already satisfies the test). */
  iterations: number;
  evaluations: number;
  status: LbfgsStatus;
  /** `max|g|` at the returned point. */
  gradNorm: number;
  /**
   * The decrease the quasi-Newton model still predicts from the returned point, `-g.d / 2`
   * along the last search direction (a float32 objective cannot resolve a smaller one).
   */
  predictedDecrease: number;
}

/** What the caller returns for a yielded point: the objective and its gradient there. */
export interface Evaluation {
  f: number;
  g: Float64Array;
}

const PAST = 10; // cuML: "even number - to detect zig-zags"
const MIN_STEP = 1e-20, MAX_STEP = 1e20, LS_DEC = 0.5;

type LsCode = "success" | "step_min" | "step_max" | "max_iters" | "invalid_dir" | "invalid_step";

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Minimise a smooth function from `x0`; yields points to evaluate, returns the result. */
export function* lbfgs(x0: Float64Array, o: LbfgsOptions): Generator<Float64Array, LbfgsResult, Evaluation> {
  const n = x0.length, m = o.memory;
  const ftol = o.changeTol > 0 ? o.changeTol * 0.1 : 1e-4;
  const past = o.changeTol > 0 ? PAST : 0;
  const hist = new Float64Array(past);
  let evaluations = 0;
  const evaluate = function* (x: Float64Array): Generator<Float64Array, Evaluation, Evaluation> {
    evaluations++;
    const e = yield x;
    if (e.g.length !== n) throw new Error(`lbfgs: gradient has ${e.g.length} entries, expected ${n}`);
    return e;
  };
  const converged = (k: number, f: number, gnorm: number): boolean => {
    const fmag = Math.max(f, o.gradTol);
    if (gnorm <= o.gradTol * fmag) return true;
    if (past > 0) {
      if (k >= past && Math.abs(hist[k % past] - f) <= o.changeTol * fmag) return true;
      hist[k % past] = f;
    }
    return false;
  };
  const done = (status: LbfgsStatus, k: number): LbfgsResult => ({
    x,
    f: fx,
    iterations: k,
    evaluations,
    status,
    gradNorm: maxAbs(grad),
    predictedDecrease: drt ? Math.max(0, -dot(grad, drt) / 2) : 0,
  });

  let drt: Float64Array | null = null;
  let x = Float64Array.from(x0);
  let { f: fx, g: grad } = yield* evaluate(x);
  grad = Float64Array.from(grad);
  if (past > 0) hist[0] = fx;
  if (!Number.isFinite(fx)) return done("numeric_error", 0);
  if (converged(0, fx, maxAbs(grad))) return done("converged", 0);

  const S = Array.from({ length: m }, () => new Float64Array(n));
  const Y = Array.from({ length: m }, () => new Float64Array(n));
  const ys = new Float64Array(m), alpha = new Float64Array(m);
  let end = 0, nVec = 0;
  drt = grad.map((v) => -v);
  let step = 1 / Math.sqrt(dot(drt, drt));

  for (let k = 1; k <= o.maxIter; k++) {
    const xp = x, gradp = grad, fxp = fx;
    // Backtracking line search (Armijo), cuML ls_backtrack.
    let ls: LsCode = "max_iters";
    const dgInit = dot(gradp, drt);
    if (!(step > 0)) ls = "invalid_step";
    else if (dgInit > 0) ls = "invalid_dir";
    else {
      for (let it = 0; it < o.maxLinesearch; it++) {
        const trial = new Float64Array(n);
        for (let i = 0; i < n; i++) trial[i] = xp[i] + step * drt[i];
        const e = yield* evaluate(trial);
        x = trial;
        fx = e.f;
        grad = Float64Array.from(e.g);
        if (!(fx > fxp + step * ftol * dgInit)) { // NaN passes here and fails as numeric_error below, as in cuML
          ls = "success";
          break;
        }
        if (step < MIN_STEP) {
          ls = "step_min";
          break;
        }
        if (step > MAX_STEP) {
          ls = "step_max";
          break;
        }
        step *= LS_DEC;
      }
    }
    // cuML update_and_check.
    const valid = Number.isFinite(fx);
    const nonCritical = ls === "step_min" || ls === "max_iters";
    const inDoubt = valid && fx <= fxp + ftol && nonCritical;
    const lsOk = ls === "success" || inDoubt;
    const conv = valid && converged(k, fx, maxAbs(grad));
    let stop: LbfgsStatus | null = null;
    if (!lsOk && !conv) stop = "line_search_failed";
    else if (!valid) stop = "numeric_error";
    else if (conv) stop = "converged";
    else if (inDoubt && fx + ftol >= fxp) stop = "line_search_failed";
    if (!lsOk || !valid) {
      x = xp;
      grad = gradp;
      fx = fxp;
    }
    if (stop) return done(stop, k);
    // New pair and direction (cuML lbfgs_search_dir).
    const s = S[end], y = Y[end];
    for (let i = 0; i < n; i++) {
      s[i] = x[i] - xp[i];
      y[i] = grad[i] - gradp[i];
    }
    const sy = dot(s, y), yy = dot(y, y);
    if (sy > Number.EPSILON * yy) {
      nVec++;
      ys[end] = sy;
      for (let i = 0; i < n; i++) drt[i] = -grad[i];
      const bound = Math.min(m, nVec);
      end = (end + 1) % m;
      let j = end;
      for (let t = 0; t < bound; t++) {
        j = (j + m - 1) % m;
        alpha[j] = dot(S[j], drt) / ys[j];
        for (let i = 0; i < n; i++) drt[i] -= alpha[j] * Y[j][i];
      }
      for (let i = 0; i < n; i++) drt[i] *= sy / yy;
      for (let t = 0; t < bound; t++) {
        const beta = dot(Y[j], drt) / ys[j];
        for (let i = 0; i < n; i++) drt[i] += (alpha[j] - beta) * S[j][i];
        j = (j + 1) % m;
      }
    } // else: no usable curvature; keep the previous direction (cuML does the same)
    step = 1;
  }
  return done("max_iter", o.maxIter);
}

/** Run one problem to the end with a synchronous objective (tests, small problems). */
export function minimize(
  fun: (x: Float64Array) => Evaluation,
  x0: Float64Array,
  o: LbfgsOptions,
): LbfgsResult {
  const it = lbfgs(x0, o);
  let r = it.next();
  while (!r.done) r = it.next(fun(r.value));
  return r.value;
}
