/**
 * The probe registry: one entry point that runs any probe and returns its metrics as
 * `{ "<probe>/<metric>": value }` (STYLE: metric keys), the details (selected
 * hyper-parameters, per-source and per-candidate scores) and a status that says whether the
 * number is a measurement: the protocol it ran under, whether its training converged (null
 * where nothing is trained) and whether it predicts one class everywhere.
 *
 * Classification probes report, as `<probe>/top1`, the source whose selected classifier scored
 * best on the train holdout (never on val); every source's val score is kept as
 * `<probe>/<source>/top1`.
 *
 * @module
 */
import type { z } from "zod";
import type { ImageDataset } from "../datasets/dataset.ts";
import type { EncoderInfo, VisionEncoder } from "../model/encoder.ts";
import { AttentiveProbeConfig, ClassProbeConfig, runClassProbe } from "./class_probe.ts";
import { cachedClassData } from "./class_data.ts";
import { onlineClassData } from "./class_online.ts";
import { KnnProbeConfig, runKnnProbe } from "./knn_probe.ts";
import { runSegKnn, SegKnnConfig } from "./seg_knn.ts";
import { runSegLogreg, SegLogregConfig } from "./seg_logreg.ts";
import type { FeatureTable } from "./feature_table.ts";
import { type EvalMethod, type FeatureSource, sourcesFor } from "./feature_sources.ts";
import { type EvalProtocol, protocolSettings } from "./protocols.ts";

export const PROBES = ["linear", "attentive", "knn", "seg_knn", "seg_logreg"] as const;
export type ProbeName = typeof PROBES[number];

/** Per-probe config schemas (defaults are the `cpu` protocol; protocols.ts has the `paper` values). */
export const PROBE_CONFIGS = {
  linear: ClassProbeConfig,
  attentive: AttentiveProbeConfig,
  knn: KnnProbeConfig,
  seg_knn: SegKnnConfig,
  seg_logreg: SegLogregConfig,
} as const;
export type ProbeConfig = z.infer<typeof PROBE_CONFIGS[ProbeName]>;

export function parseProbe(name: string | undefined): ProbeName {
  if ((PROBES as readonly string[]).includes(name ?? "")) return name as ProbeName;
  throw new Error(`--probe: unknown probe '${name}'; expected one of ${PROBES.join(", ")}`);
}

export function isSegmentation(p: ProbeName): boolean {
  return p === "seg_knn" || p === "seg_logreg";
}

/** A probe's config under `protocol` with `overrides` on top, validated (errors name the keys). */
export function resolveProbeConfig(probe: ProbeName, protocol: EvalProtocol, overrides: unknown = {}): ProbeConfig {
  const raw = { ...protocolSettings(probe, protocol), ...(overrides as Record<string, unknown> ?? {}) };
  const r = PROBE_CONFIGS[probe].safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`).join("\n");
    throw new Error(`${probe} probe config is invalid:\n${issues}`);
  }
  return r.data;
}

/** What a probe reads: extracted features (with or without patch tokens), or images on the fly. */
export function probeInput(probe: ProbeName, cfg: ProbeConfig): { online: boolean; patches: boolean } {
  const online = (probe === "linear" || probe === "attentive") && (cfg as ClassProbeConfig).features === "online";
  return { online, patches: probe === "attentive" || isSegmentation(probe) };
}

/** The input size a probe evaluates at; a fixed size must be the encoder's own. */
export function probeImageSize(probe: ProbeName, cfg: ProbeConfig, info: EncoderInfo): [number, number] {
  const r = (cfg as { resolution?: "encoder" | number }).resolution ?? "encoder";
  if (r === "encoder") return info.imageSize;
  if (info.imageSize[0] !== r || info.imageSize[1] !== r) {
    throw new Error(
      `${probe}: this protocol evaluates at ${r}x${r} (official resolution) but ${info.arch} takes ` +
        `${info.imageSize.join("x")}; use --protocol cpu, or set "resolution": "encoder" in --probe-config`,
    );
  }
  return [r, r];
}

/** Whether the number is a measurement: protocol, convergence (null: nothing trained), constant prediction. */
export interface ProbeStatus {
  protocol: EvalProtocol;
  converged: boolean | null;
  constantPrediction: boolean;
  notes: string[];
}

export interface ProbeOutput {
  metrics: Record<string, number>;
  details: Record<string, unknown>;
  config: Record<string, unknown>;
  status: ProbeStatus;
  seconds: number;
}

/** Inputs of one probe run: feature tables (cached probes) or encoder and datasets (online). */
export interface ProbeRunInputs {
  train?: FeatureTable;
  val?: FeatureTable;
  online?: {
    encoder: VisionEncoder;
    train: ImageDataset;
    val: ImageDataset;
    batchPerDevice: number;
    evalBatch: number;
    concurrency?: number;
  };
}

export interface ProbeRunOptions {
  method: EvalMethod;
  classes: number;
  protocol: EvalProtocol;
  config: ProbeConfig;
  /** Bytes of prepared training data a segmentation probe keeps on the backend (memory only). */
  memoryBytes?: number;
  log?: (line: string) => void;
}

function tables(probe: ProbeName, i: ProbeRunInputs): { train: FeatureTable; val: FeatureTable } {
  if (!i.train || !i.val) throw new Error(`${probe}: needs extracted train and val features`);
  return { train: i.train, val: i.val };
}

export type ClassProbeName = "linear" | "attentive";

/**
 * Linear and/or attentive probes trained in one pass over the data (as capi trains every
 * feature source's classifiers together: with online features the encoder runs once for
 * both). Each probe reports the source (of its own) that is best on the train holdout.
 */
export async function runClassProbes(
  probes: ClassProbeName[],
  inputs: ProbeRunInputs,
  o: ProbeRunOptions,
): Promise<ProbeOutput[]> {
  const t0 = performance.now();
  const cfg = o.config as ClassProbeConfig;
  // Online data drops the `cls` sources itself when the encoder has no global output.
  const hasGlobal = inputs.online ? true : inputs.train?.dims.global !== null;
  const own = (p: ClassProbeName): FeatureSource[] => p === "attentive" ? ["patch"] : sourcesFor(o.method, hasGlobal);
  const wanted = [...new Set(probes.flatMap(own))];
  const opts = { classes: o.classes, holdoutFraction: cfg.holdoutFraction, seed: cfg.seed };
  const data = inputs.online
    ? await onlineClassData(inputs.online.encoder, inputs.online.train, inputs.online.val, wanted, {
      ...opts,
      batchPerDevice: inputs.online.batchPerDevice,
      evalBatch: inputs.online.evalBatch,
      cropScale: cfg.cropScale,
      concurrency: inputs.online.concurrency,
    })
    : cachedClassData(tables(probes[0], inputs).train, tables(probes[0], inputs).val, wanted, opts);
  const r = await runClassProbe(data, wanted.filter((s) => s in data.shapes), o.classes, cfg, o.log);
  const seconds = (performance.now() - t0) / 1000;
  return probes.map((probe) => {
    const mine = r.sources.filter((s) => own(probe).includes(s.source));
    let sel = mine[0];
    for (const s of mine) if (s.holdoutTop1 > sel.holdoutTop1) sel = s;
    const metrics: Record<string, number> = {};
    for (const s of mine) metrics[`${probe}/${s.source}/top1`] = s.top1;
    metrics[`${probe}/top1`] = sel.top1;
    const notes = sel.converged ? [] : [`the selected classifier's training loss did not go down (${sel.source})`];
    const constantPrediction = sel.distinctPredictions === 1;
    if (constantPrediction) notes.push(CONSTANT_NOTE);
    return {
      metrics,
      details: { selectedSource: sel.source, sources: mine, trainedWith: probes },
      config: o.config as Record<string, unknown>,
      status: { protocol: o.protocol, converged: sel.converged, constantPrediction, notes },
      seconds,
    };
  });
}

const CONSTANT_NOTE = "predicts a single class on every val sample: not a measurement of the features";

/** Run `probe` with its resolved config on `inputs` of `method`'s encoder. */
export async function runProbe(probe: ProbeName, inputs: ProbeRunInputs, o: ProbeRunOptions): Promise<ProbeOutput> {
  const t0 = performance.now();
  const metrics: Record<string, number> = {};
  let details: Record<string, unknown>;
  let converged: boolean | null = null, distinct: number;
  const notes: string[] = [];
  switch (probe) {
    case "linear":
    case "attentive":
      return (await runClassProbes([probe], inputs, o))[0];
    case "knn": {
      const cfg = o.config as KnnProbeConfig;
      const { train, val } = tables(probe, inputs);
      let best: { hold: number; source: FeatureSource; distinct: number } | null = null;
      const per: Record<string, unknown> = {};
      for (const source of sourcesFor(o.method, train.dims.global !== null)) {
        const r = await runKnnProbe(train, val, source, o.classes, cfg);
        metrics[`knn/${source}/top1`] = r.top1;
        per[source] = r;
        if (!best || r.holdoutTop1 > best.hold) {
          best = { hold: r.holdoutTop1, source, distinct: r.distinctPredictions };
          metrics["knn/top1"] = r.top1;
        }
      }
      details = { selectedSource: best!.source, ...per };
      distinct = best!.distinct;
      break;
    }
    case "seg_knn": {
      const { train, val } = tables(probe, inputs);
      const r = await runSegKnn(train, val, o.config as SegKnnConfig, { memoryBytes: o.memoryBytes });
      metrics["seg_knn/miou"] = r.miou;
      metrics["seg_knn/pixel_acc"] = r.pixelAcc;
      details = { result: r };
      distinct = r.distinctPredictions;
      break;
    }
    case "seg_logreg": {
      const { train, val } = tables(probe, inputs);
      const r = await runSegLogreg(train, val, o.config as SegLogregConfig, { memoryBytes: o.memoryBytes, log: o.log });
      metrics["seg_logreg/miou"] = r.miou;
      metrics["seg_logreg/pixel_acc"] = r.pixelAcc;
      details = { result: r };
      distinct = r.distinctPredictions;
      const j = r.candidates.findIndex((c) => c.params.C === r.selected.C);
      converged = r.fits.final.converged && r.fits.selection[j].converged;
      if (!converged) {
        notes.push(
          `L-BFGS for the selected C=${r.selected.C}: selection fit ${r.fits.selection[j].status}, ` +
            `final fit ${r.fits.final.status} after ${r.fits.final.iterations} iterations`,
        );
      }
      const bad = r.fits.selection.filter((f) => !f.converged).length;
      if (bad) notes.push(`${bad} of ${r.fits.selection.length} C candidates did not converge`);
      break;
    }
    default: {
      const never: never = probe;
      throw new Error(`unknown probe '${never}'`);
    }
  }
  const constantPrediction = distinct === 1;
  if (constantPrediction) notes.push(CONSTANT_NOTE);
  return {
    metrics,
    details,
    config: o.config as Record<string, unknown>,
    status: { protocol: o.protocol, converged, constantPrediction, notes },
    seconds: (performance.now() - t0) / 1000,
  };
}
