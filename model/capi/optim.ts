/**
 * CAPI optimisation rules (capi:utils.py:121-191, train_capi.py:280-314, SPEC 1.8):
 * parameter-group multipliers from names, the groups they form, and the three truncated
 * warmup-cosine schedules. The EMA update itself is the engine's (model/train_step.ts `EmaSpec`).
 *
 * @module
 */
import { warmupThenCosine } from "../schedules.ts";
import type { CapiOptimConfig } from "./config.ts";

/** lr and weight-decay multipliers of a student parameter (`get_params_groups`). */
export interface GroupMults {
  lrMult: number;
  wdMult: number;
}

/**
 * Multipliers from the official name rules; `name` without the `student.` prefix
 * (`backbone.patch_embed.bias`, `head.last_layer.weight_g`).
 */
export function paramGroupMults(name: string, o: CapiOptimConfig): GroupMults {
  let wdMult = 1, lrMult = 1;
  if (name.endsWith(".bias") || name.includes("gamma")) wdMult = 0;
  else if (name.includes("norm") && name.includes("weight")) wdMult = o.normWdMult;
  if (name.includes("patch_embed")) lrMult = o.patchEmbedLrMult;
  else if (name.includes("rope")) lrMult = o.ropeLrMult;
  return { lrMult, wdMult };
}

/** The run-length-dependent schedules: student lr, clustering lr, EMA momentum at `it`. */
export function capiSchedules(o: CapiOptimConfig, it: number): { lr: number; clusteringLr: number; momentum: number } {
  const common = {
    totalIters: o.totalIters,
    warmupIters: Math.round(o.warmupFraction * o.totalIters),
    truncateCos: o.truncateCos,
  };
  return {
    lr: warmupThenCosine({ ...common, baseValue: o.lr, finalValue: 0 }, it),
    clusteringLr: warmupThenCosine({ ...common, baseValue: o.clusteringLr, finalValue: 0 }, it),
    // Starts at exactly 1.0 (teacher frozen during the first step), dips to momentumBase, back towards 1.
    momentum: warmupThenCosine({ ...common, baseValue: o.momentumBase, finalValue: 1, startWarmupValue: 1 }, it),
  };
}

/** Student parameters that share multipliers: one AdamW param group of the official code. */
export interface CapiGroup extends GroupMults {
  /** `lr<mult>_wd<mult>`, e.g. `lr0.2_wd0` for the patch embedding bias. */
  id: string;
  params: string[];
}

/** The official param groups of the student parameters `names` (without `student.`), in name order. */
export function capiParamGroups(names: string[], o: CapiOptimConfig): CapiGroup[] {
  const groups = new Map<string, CapiGroup>();
  for (const name of names) {
    const m = paramGroupMults(name, o);
    const id = `lr${m.lrMult}_wd${m.wdMult}`;
    let g = groups.get(id);
    if (!g) groups.set(id, g = { id, ...m, params: [] });
    g.params.push(name);
  }
  return [...groups.values()];
}
