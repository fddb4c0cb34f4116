/**
 * Trajectory replay: run a `mim-trajectory-v1` fixture (model/fixture.ts) through any `TrainEngine`
 * (model/train_engine.ts) and compare every step's scalars and the final state.
 *
 * A fixture holds the initial state, T steps of inputs (images and every random draw) with the schedule
 * values each step used, the scalars each step logged and the state after step T (tools/fixtures/
 * traj_manifest.py). Replaying it checks what one iteration cannot: Adam's moments after the first step,
 * weight decay, the EMA teacher, the clustering head's optimizer, the schedules, stochastic depth.
 *
 * What is generic lives here: the per-step `StepHyper` (the fixture's per-group values mapped onto the
 * method's groups by parameter membership), the tolerance that grows with the step, the comparison and
 * its report. What is per method is a `TrajectoryAdapter`: the method's `TrainStepSpec` from the fixture's
 * config and initial parameters, and step t's `StepDraws` from the fixture's `input.*[t]`.
 *
 * Tolerance (written into each fixture by its generator, `trajectory.tolerance`): step t's scalar passes
 * at `|ours - ref| / max(1, |ref|) <= max(floor, margin * a * exp(rate * t))`, `a` and `rate` the
 * exponential envelope of the divergence the generator measured between a float32 and a float64 run of
 * the same reference (rounding differences grow with the steps; margin 10 for a different float32
 * implementation); each final tensor at `max |ours - ref| / max |ref| <= final`.
 *
 * @module
 */
import type { Fixture, HostTensor, TrajectorySection } from "./fixture.ts";
import type { EngineState, TrainEngine } from "./train_engine.ts";
import type { StepDraws, StepHyper, TrainStepSpec } from "./train_step.ts";

/**
 * The glue between a method and its trajectory fixtures (model/trajectory_adapters.ts has one per
 * method). What each does (the fixtures' tensors are described in their manifests; tools/fixtures/README.md):
 *
 * - CAPI (`capi_traj*.json`): config from `capiConfigFromFixture(fx.config)` (drop path from
 *   `model.transformers_kwargs.drop_path_rate`); parameters `student.*`, `ema.*`, `teacher_head.*` from
 *   `param.*`; optimizers `student` and `clustering`; EMA pairs `ema.X <- student.X`. Step t's draws:
 *   `input.images[t]`, the absolute `input.visible_indices[t]` and `input.predict_indices[t]` (what
 *   `collateMasks` gives; `input.masks`, `input.collate_rand` and `input.mask_draws` with the manifest's
 *   `mask_draws.uniform` reproduce them through model/capi/masking.ts), and with drop path
 *   `input.drop_path_perms[t]` `[branches, B]`: encoder blocks then decoder blocks, residual1 then
 *   residual2, each keeping `perm[:n_keep]`, `n_keep = max(floor(B (1 - rate)), 1)`, scaled by `B / n_keep`.
 *   Metrics `loss`, `loss_capi`, `loss_clustering`, `target_entropy`.
 * - MAE (`mae_traj.json`): `maeConfigFromFixture`; `input.noise[t]` `[B, L]` decides the masking
 *   (`maskingFromNoise`); optimizer `main` (groups `decay`, `no_decay`; the sin-cos position embeddings
 *   are frozen, outside the optimizer). Metric `loss`.
 * - SimMIM (`simmim_traj.json`): `simmimConfigFromFixture`; `input.mask[t]` `[B, Gh, Gw]` (1 = masked;
 *   from `input.mask_permutation[t]`); optimizer `main` clipping at the fixture's `clip_grad_norm` (0.05,
 *   not the method's default 5); no drop path. Metric `loss`.
 *
 * Every method: betas, eps and clipping of the spec's optimizers must be the fixture's (checked by
 * `replayTrajectory`); learning rates and weight decays come from the fixture (`stepHyper`), so the
 * method's own schedules are not used.
 */
export interface TrajectoryAdapter {
  /** The method's step spec, built from `fx.config` with `param.*` as the initial parameter values. */
  spec(fx: Fixture): TrainStepSpec;
  /** Step t's draws under the names the method's loss reads, from `input.*[t]` (see `stepInput`). */
  draws(fx: Fixture, t: number): StepDraws;
}

/** The trajectory section, or an error naming the file. */
export function trajectoryOf(fx: Fixture): TrajectorySection {
  const tr = fx.trajectory;
  if (!tr) throw new Error(`${fx.path}: not a trajectory fixture (format ${fx.manifest.format})`);
  return tr;
}

/** `input.<name>[t]`: the leading `[T]` axis dropped. */
export function stepInput(fx: Fixture, name: string, t: number): HostTensor {
  const full = fx.tensor(`input.${name}`);
  const [steps, ...shape] = full.shape;
  if (t < 0 || t >= steps) throw new Error(`${fx.path}: step ${t} is outside input.${name} (${steps} steps)`);
  const n = full.data.length / steps;
  return { shape, data: full.data.slice(t * n, (t + 1) * n) };
}

/**
 * Step t's `StepHyper` for `spec`'s optimizers: each spec group takes the lr and weight decay of the
 * fixture group its parameters belong to (all of them must agree). A parameter the fixture trains but
 * the spec does not is accepted only at lr 0 for every step (torch keeps RoPE's frozen `freqs` in the
 * optimizer at lr x0); one the spec trains and the fixture does not is an error.
 */
export function stepHyper(fx: Fixture, spec: TrainStepSpec, t: number): StepHyper {
  const tr = trajectoryOf(fx);
  const h = tr.hyper[t];
  if (!h) throw new Error(`${fx.path}: no trajectory.hyper[${t}] (${tr.num_steps} steps)`);
  const groupOf = new Map<string, { opt: string; group: string }>();
  for (const o of tr.optimizers) {
    for (const g of o.groups) for (const p of g.params) groupOf.set(p, { opt: o.id, group: g.id });
  }
  const specParams = new Set<string>();
  const groups: StepHyper["groups"] = {};
  for (const o of spec.optimizers) {
    groups[o.id] = {};
    for (const g of o.groups) {
      let value: { lr: number; weightDecay: number } | null = null;
      let from = "";
      for (const p of g.params) {
        specParams.add(p);
        const fg = groupOf.get(p);
        if (!fg) throw new Error(`${fx.path}: the method trains '${p}' (${o.id}/${g.id}); the trajectory does not`);
        if (fg.opt !== o.id) {
          throw new Error(`${fx.path}: '${p}' is in optimizer '${o.id}' of the method, '${fg.opt}' of the trajectory`);
        }
        const v = h.groups[fg.opt][fg.group];
        const here = { lr: v.lr, weightDecay: v.weight_decay };
        if (value && (value.lr !== here.lr || value.weightDecay !== here.weightDecay)) {
          throw new Error(
            `${fx.path}: step ${t}: method group ${o.id}/${g.id} mixes trajectory groups ${from} and ${fg.group} ` +
              `(lr ${value.lr} vs ${here.lr}, wd ${value.weightDecay} vs ${here.weightDecay})`,
          );
        }
        value = here;
        from = fg.group;
      }
      if (value) groups[o.id][g.id] = value;
    }
  }
  for (const [p, fg] of groupOf) {
    if (specParams.has(p)) continue;
    const moving = tr.hyper.findIndex((s) => s.groups[fg.opt][fg.group].lr !== 0);
    if (moving >= 0) {
      throw new Error(`${fx.path}: the trajectory trains '${p}' (lr > 0 at step ${moving}); the method does not`);
    }
  }
  return h.ema_momentum === undefined ? { groups } : { groups, emaMomentum: h.ema_momentum };
}

/** The spec's optimizers must be the fixture's: same ids, betas, eps and gradient clipping. */
export function checkOptimizers(fx: Fixture, spec: TrainStepSpec): void {
  const tr = trajectoryOf(fx);
  for (const o of spec.optimizers) {
    const f = tr.optimizers.find((x) => x.id === o.id);
    if (!f) {
      throw new Error(
        `${fx.path}: the method has optimizer '${o.id}'; the trajectory has ${tr.optimizers.map((x) => x.id)}`,
      );
    }
    const same = f.betas[0] === o.betas[0] && f.betas[1] === o.betas[1] && f.eps === o.eps &&
      f.clip_grad_norm === o.clipGradNorm;
    if (!same) {
      throw new Error(
        `${fx.path}: optimizer '${o.id}' has betas [${o.betas}], eps ${o.eps}, clip ${o.clipGradNorm}; the trajectory ` +
          `[${f.betas}], ${f.eps}, ${f.clip_grad_norm} (build the spec from the fixture's config)`,
      );
    }
  }
}

/** Allowed relative error of a scalar at 0-based step t (the fixture's rule, step counted from 1). */
export function scalarTolerance(tr: TrajectorySection, t: number): number {
  const tol = tr.tolerance;
  return Math.max(tol.floor, tol.margin * tol.a * Math.exp(tol.rate * (t + 1)));
}

/** `|ours - ref| / max(1, |ref|)`; NaN stays NaN (and fails). */
export function scalarError(ours: number, ref: number): number {
  return Math.abs(ours - ref) / Math.max(1, Math.abs(ref));
}

/** `max |ours - ref| / max |ref|` over the elements outside `skip` ([start, end) flat). */
export function stateError(ours: ArrayLike<number>, ref: ArrayLike<number>, skip?: [number, number]): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    if (skip && i >= skip[0] && i < skip[1]) continue;
    const d = Math.abs(ours[i] - ref[i]);
    if (Number.isNaN(d)) return NaN;
    diff = Math.max(diff, d);
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return diff === 0 ? 0 : diff / Math.max(scale, 1e-30);
}

export type TrajectoryStatus = "pass" | "fail" | "skip" | "excused";

export interface TrajectoryRow {
  name: string;
  status: TrajectoryStatus;
  /** Worst error (scalars: over the steps). */
  err?: number;
  /** Its tolerance (scalars: at the worst step relative to its tolerance). */
  tol?: number;
  /** Scalars: 1-based step of the first failure. */
  firstFailStep?: number;
  note?: string;
}

/**
 * Rows for `traj.<metric>` and every `final.*` tensor. Untouched ones are skipped and fail the replay:
 * a runner cannot pass by not reporting a metric or a tensor. `traj.diag.*` are diagnostics, not rows.
 */
export class TrajectoryReport {
  readonly fx: Fixture;
  readonly tr: TrajectorySection;
  readonly #scalars = new Map<string, (number | null)[]>();
  readonly #rows = new Map<string, TrajectoryRow>();

  constructor(fx: Fixture) {
    this.fx = fx;
    this.tr = trajectoryOf(fx);
  }

  /** Record step t's logged scalars (the engine's `read()`); metrics absent from `values` stay missing. */
  step(t: number, values: Record<string, number>): void {
    for (const m of this.tr.metrics) {
      const arr = this.#scalars.get(m) ?? new Array<number | null>(this.tr.num_steps).fill(null);
      arr[t] = m in values ? values[m] : null;
      this.#scalars.set(m, arr);
    }
  }

  /** Compare the engine's state after the last step with `final.*`. */
  finalState(state: EngineState): void {
    const noise = new Map(this.tr.noise_elements.map((n) => [n.tensor, n.range]));
    const inert = new Set(this.tr.inert_state);
    const ours = new Map<string, HostTensor<Float32Array>>();
    for (const [n, t] of state.params) ours.set(`final.param.${n}`, t);
    for (const [id, o] of Object.entries(state.optimizers)) {
      for (const [k, t] of o.tensors) ours.set(`final.optim.${id}.${k}`, t);
      const want = this.tr.final_optimizer_steps[id];
      if (want !== undefined && want !== o.step) {
        this.#rows.set(`final.optim.${id}.step`, {
          name: `final.optim.${id}.step`,
          status: "fail",
          note: `optimizer '${id}' took ${o.step} steps, the trajectory ${want}`,
        });
      }
    }
    for (const name of this.fx.names().filter((n) => n.startsWith("final."))) {
      const t = ours.get(name);
      if (!t) {
        if (inert.has(name)) {
          this.#rows.set(name, { name, status: "excused", note: "inert: lr x0 parameter's moments" });
        }
        continue;
      }
      const ref = this.fx.f32(name);
      if (ref.data.length !== t.data.length) {
        this.#rows.set(name, { name, status: "fail", note: `${t.data.length} elements vs ${ref.data.length}` });
        continue;
      }
      const skip = noise.get(name);
      const err = stateError(t.data, ref.data, skip);
      const tol = this.tr.tolerance.final;
      this.#rows.set(name, {
        name,
        status: err <= tol ? "pass" : "fail",
        err,
        tol,
        note: skip ? `elements [${skip[0]}, ${skip[1]}) not compared: rounding noise` : undefined,
      });
    }
  }

  /** Every row, scalars first; untouched reference tensors are skipped (and fail). */
  rows(): TrajectoryRow[] {
    const out: TrajectoryRow[] = [];
    for (const m of this.tr.metrics) out.push(this.#scalarRow(m));
    for (const name of this.fx.names().filter((n) => n.startsWith("final."))) {
      out.push(this.#rows.get(name) ?? { name, status: "skip", note: "not compared" });
    }
    for (const [name, r] of this.#rows) if (!this.fx.has(name)) out.push(r);
    return out;
  }

  #scalarRow(m: string): TrajectoryRow {
    const name = `traj.${m}`;
    const got = this.#scalars.get(m);
    if (!got) return { name, status: "skip", note: "never reported by the engine" };
    const ref = this.fx.f32(name).data;
    let worst = -1, worstErr = 0, worstTol = 0, firstFail: number | undefined;
    for (let t = 0; t < ref.length; t++) {
      const v = got[t];
      if (v === null) return { name, status: "skip", note: `not reported at step ${t + 1}` };
      const err = scalarError(v, ref[t]), tol = scalarTolerance(this.tr, t);
      const ratio = Number.isNaN(err) ? Infinity : err / tol;
      if (ratio > 1 && firstFail === undefined) firstFail = t + 1;
      if (ratio > worst) [worst, worstErr, worstTol] = [ratio, err, tol];
    }
    return {
      name,
      status: firstFail === undefined ? "pass" : "fail",
      err: worstErr,
      tol: worstTol,
      firstFailStep: firstFail,
      note: firstFail === undefined ? undefined : `first above tolerance at step ${firstFail}`,
    };
  }

  summary(): { passed: boolean; compared: number; skipped: number; failed: number; worstRatio: number } {
    const rows = this.rows();
    const compared = rows.filter((r) => r.status === "pass" || r.status === "fail").length;
    const skipped = rows.filter((r) => r.status === "skip").length;
    const failed = rows.filter((r) => r.status === "fail").length;
    const worstRatio = rows.reduce((w, r) => (r.err === undefined || !r.tol ? w : Math.max(w, r.err / r.tol)), 0);
    return { passed: failed === 0 && skipped === 0 && compared > 0, compared, skipped, failed, worstRatio };
  }
}

/**
 * Replay `fx` on the engine `makeEngine` builds from the adapter's spec: T steps with the fixture's
 * draws and schedule values, every logged scalar compared, then the final parameters and moments.
 */
export async function replayTrajectory(
  fx: Fixture,
  adapter: TrajectoryAdapter,
  makeEngine: (spec: TrainStepSpec) => Promise<TrainEngine> | TrainEngine,
): Promise<TrajectoryReport> {
  const tr = trajectoryOf(fx);
  const spec = adapter.spec(fx);
  checkOptimizers(fx, spec);
  const engine = await makeEngine(spec);
  const report = new TrajectoryReport(fx);
  try {
    for (let t = 0; t < tr.num_steps; t++) {
      const res = await engine.step(adapter.draws(fx, t), stepHyper(fx, spec, t));
      try {
        report.step(t, await res.read());
      } finally {
        res.dispose();
      }
    }
    report.finalState(await engine.snapshot());
  } finally {
    engine.dispose();
  }
  return report;
}
