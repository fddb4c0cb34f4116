/**
 * Learning-rate, weight-decay and momentum schedules of the three methods,
 * as pure functions of the iteration (no state, exact known answers).
 *
 * @module
 */

/** capi `utils.py` `WarmupThenCosine` settings. */
export interface WarmupThenCosineOptions {
  baseValue: number;
  finalValue: number;
  totalIters: number;
  warmupIters: number;
  startWarmupValue?: number;
  /** Fraction of the half cosine actually run (0.8 in CAPI: the value never reaches `finalValue`). */
  truncateCos?: number;
}

/**
 * capi `WarmupThenCosine` (utils.py:162-191): `linspace(start, base, W)` for the first W
 * iterations (endpoint included), then `final + 0.5(base-final)(1+cos(pi*trunc*i/(T-W)))`,
 * and `final` from `T` on.
 */
export function warmupThenCosine(o: WarmupThenCosineOptions, it: number): number {
  const start = o.startWarmupValue ?? 0;
  const trunc = o.truncateCos ?? 1;
  const W = o.warmupIters;
  if (it >= o.totalIters) return o.finalValue;
  if (it < W) return W === 1 ? start : start + (o.baseValue - start) * it / (W - 1); // np.linspace(a, b, 1) == [a]
  const i = it - W;
  return o.finalValue + 0.5 * (o.baseValue - o.finalValue) * (1 + Math.cos(Math.PI * trunc * i / (o.totalIters - W)));
}

/**
 * MAE `util/lr_sched.py` `adjust_learning_rate`, evaluated per iteration on the fractional
 * epoch `e`: `lr*e/warmup` during warmup, then half-cycle cosine to `minLr`.
 */
export function maeLr(
  o: { lr: number; minLr: number; warmupEpochs: number; epochs: number },
  epoch: number,
): number {
  if (epoch < o.warmupEpochs) return o.lr * epoch / o.warmupEpochs;
  const progress = (epoch - o.warmupEpochs) / (o.epochs - o.warmupEpochs);
  return o.minLr + (o.lr - o.minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/**
 * SimMIM `lr_scheduler.py` (timm `MultiStepLRScheduler`, per iteration): linear warmup from
 * `warmupLr` to `baseLr` over `warmupSteps`, then `baseLr * gamma^k` after each milestone.
 */
export function simmimLr(
  o: { baseLr: number; warmupLr: number; warmupSteps: number; milestones: number[]; gamma: number },
  it: number,
): number {
  if (it < o.warmupSteps) return o.warmupLr + (o.baseLr - o.warmupLr) * it / o.warmupSteps;
  const passed = o.milestones.filter((m) => it >= m).length;
  return o.baseLr * o.gamma ** passed;
}
