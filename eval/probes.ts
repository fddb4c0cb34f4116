/**
 * The probe registry: one entry point that runs any probe on extracted features and
 * returns its metrics as `{ "<probe>/<metric>": value }` (STYLE: metric keys), plus the
 * details (selected hyper-parameters, per-source and per-candidate scores) for the record.
 *
 * Classification probes run once per feature source of the method (feature_sources.ts) and
 * report, as `<probe>/top1`, the source whose selected classifier scored best on the train
 * holdout (never on val); every source's val score is kept as `<probe>/<source>/top1`.
 *
 * @module
 */
import type { z } from "zod";
import { AttentiveProbeConfig, ClassProbeConfig, runClassProbe } from "./class_probe.ts";
import { KnnProbeConfig, runKnnProbe } from "./knn_probe.ts";
import { runSegKnn, SegKnnConfig } from "./seg_knn.ts";
import { runSegLogreg, SegLogregConfig } from "./seg_logreg.ts";
import type { ExtractedFeatures } from "./features.ts";
import { type EvalMethod, featureVectors, patchTokens, sourcesFor } from "./feature_sources.ts";

export const PROBES = ["linear", "attentive", "knn", "seg_knn", "seg_logreg"] as const;
export type ProbeName = typeof PROBES[number];

/** Per-probe config schemas (defaults are the CPU-scaled protocol, see each `.describe()`). */
export const PROBE_CONFIGS = {
  linear: ClassProbeConfig,
  attentive: AttentiveProbeConfig,
  knn: KnnProbeConfig,
  seg_knn: SegKnnConfig,
  seg_logreg: SegLogregConfig,
} as const;

export function parseProbe(name: string | undefined): ProbeName {
  if ((PROBES as readonly string[]).includes(name ?? "")) return name as ProbeName;
  throw new Error(`--probe: unknown probe '${name}'; expected one of ${PROBES.join(", ")}`);
}

/** Whether the probe needs all patch tokens kept at extraction. */
export function needsPatches(p: ProbeName): boolean {
  return p === "attentive" || p === "seg_knn" || p === "seg_logreg";
}

export function isSegmentation(p: ProbeName): boolean {
  return p === "seg_knn" || p === "seg_logreg";
}

export interface ProbeOutput {
  metrics: Record<string, number>;
  details: Record<string, unknown>;
  config: Record<string, unknown>;
  seconds: number;
}

function parseConfig<S extends z.ZodType>(schema: S, raw: unknown, probe: string): z.infer<S> {
  const r = schema.safeParse(raw ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`).join("\n");
    throw new Error(`${probe} probe config is invalid:\n${issues}`);
  }
  return r.data;
}

function labelsOf(f: ExtractedFeatures, split: string): Int32Array {
  if (!f.labels) {
    throw new Error(`${split} features carry no class labels (a segmentation dataset for a classification probe?)`);
  }
  return f.labels;
}

/** Run `probe` with `rawConfig` (validated) on train/val features of `method`'s encoder. */
export async function runProbe(
  probe: ProbeName,
  train: ExtractedFeatures,
  val: ExtractedFeatures,
  o: { method: EvalMethod; classes: number; config?: unknown; log?: (line: string) => void },
): Promise<ProbeOutput> {
  const t0 = performance.now();
  const metrics: Record<string, number> = {};
  const details: Record<string, unknown> = {};
  let config: Record<string, unknown>;
  switch (probe) {
    case "linear":
    case "knn": {
      const cfg = probe === "linear"
        ? parseConfig(ClassProbeConfig, o.config, probe)
        : parseConfig(KnnProbeConfig, o.config, probe);
      config = cfg;
      const ytr = labelsOf(train, "train"), yva = labelsOf(val, "val");
      let bestHold = -1;
      for (const source of sourcesFor(o.method, train)) {
        const tr = { x: featureVectors(train, source), labels: ytr };
        const va = { x: featureVectors(val, source), labels: yva };
        const r = probe === "linear"
          ? await runClassProbe("linear", tr, va, o.classes, cfg as ClassProbeConfig, o.log)
          : await runKnnProbe(tr, va, o.classes, cfg as KnnProbeConfig);
        metrics[`${probe}/${source}/top1`] = r.top1;
        details[source] = r;
        if (r.holdoutTop1 > bestHold) {
          bestHold = r.holdoutTop1;
          metrics[`${probe}/top1`] = r.top1;
          details.selectedSource = source;
        }
      }
      break;
    }
    case "attentive": {
      const cfg = parseConfig(AttentiveProbeConfig, o.config, probe);
      config = cfg;
      const r = await runClassProbe(
        "attentive",
        { x: patchTokens(train), labels: labelsOf(train, "train") },
        { x: patchTokens(val), labels: labelsOf(val, "val") },
        o.classes,
        cfg,
        o.log,
      );
      metrics["attentive/top1"] = r.top1;
      details.patch = r;
      break;
    }
    case "seg_knn":
    case "seg_logreg": {
      const seg = (f: ExtractedFeatures, split: string) => {
        if (!f.patches || !f.labelMaps) throw new Error(`${probe}: ${split} features need patch tokens and label maps`);
        return { feats: f.patches, labels: f.labelMaps };
      };
      const r = probe === "seg_knn"
        ? await runSegKnn(seg(train, "train"), seg(val, "val"), config = parseConfig(SegKnnConfig, o.config, probe))
        : await runSegLogreg(
          seg(train, "train"),
          seg(val, "val"),
          config = parseConfig(SegLogregConfig, o.config, probe),
        );
      metrics[`${probe}/miou`] = r.miou;
      metrics[`${probe}/pixel_acc`] = r.pixelAcc;
      details.result = r;
      break;
    }
    default: {
      const never: never = probe;
      throw new Error(`unknown probe '${never}'`);
    }
  }
  return { metrics, details, config, seconds: (performance.now() - t0) / 1000 };
}
