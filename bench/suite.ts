/**
 * A benchmark suite: a typed matrix of subjects x model presets x pretraining (data, budget)
 * x seeds, every cell evaluated with the same probe protocol.
 *
 * Subjects are the pretrained methods (`capi`, `mae`, `simmim`) and two baselines that every
 * comparison needs beside them: `random_init.<method>` (the method's encoder at
 * initialisation, no training: the floor a pretraining method must beat) and `raw_pixels`
 * (flattened normalised pixels as features). At tiny budgets the baselines often win; a suite
 * that hid them would present noise as a ranking.
 *
 * The settings split as STYLE rule 4 asks: everything here except `runtime` identifies a result.
 *
 * @module
 */
import { z } from "zod";
import { BACKENDS } from "../model/engine.ts";
import { ENGINE_NAMES, ORT_EPS } from "../model/engine_choice.ts";
import { METHOD_NAMES } from "../model/method.ts";
import { EvalProtocol } from "../eval/protocols.ts";

export const DATA_KINDS = ["imagenet", "ade20k"] as const;

/** A data source: a folder in the ImageNet or ADE20K layout, read by that adapter. */
export const DataSpec = z.strictObject({
  kind: z.enum(DATA_KINDS).describe("layout and adapter: imagenet (class folders) or ade20k (images + masks)"),
  source: z.enum(["files", "synthetic"]).default("files").describe(
    "synthetic: the embedded procedural dataset, generated into `root` on first use (datasets/)",
  ),
  root: z.string().min(1).describe("folder holding the data in the adapter's layout"),
  synthetic: z.record(z.string(), z.unknown()).optional().describe(
    "source synthetic only: overrides of datasets/synthetic.ts SyntheticConfig (sizes, seed)",
  ),
  split: z.string().default("train").describe("split read by this use of the data"),
  name: z.string().min(1).describe("display name on the leaderboard, e.g. 'imagenet-1k'"),
});
export type DataSpec = z.infer<typeof DataSpec>;
export type DataSpecInput = z.input<typeof DataSpec>;

/** Published weights evaluated as they are (issue 14): no pretraining cell, the file is the subject. */
export const ReleasedSubject = z.strictObject({
  kind: z.literal("released"),
  name: z.string().regex(/^[a-z0-9_.]+$/).describe("row name, e.g. capi_vitl14_in1k"),
  method: z.enum(METHOD_NAMES),
  checkpoint: z.string().min(1).describe("hub name (bench/hub.ts) or a checkpoint file"),
  preset: z.string().optional().describe("the method's preset the file is checked against; none: read from shapes"),
  overrides: z.record(z.string(), z.unknown()).optional().describe("config keys replacing the preset's"),
  published: z.record(z.string(), z.number()).default({}).describe(
    "the authors' numbers by metric key (fractions, e.g. {'attentive/top1': 0.829}), shown beside ours; " +
      "not part of the identity",
  ),
});
export type ReleasedSubject = z.infer<typeof ReleasedSubject>;

export const Subject = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("pretrained"), method: z.enum(METHOD_NAMES) }),
  ReleasedSubject,
  z.strictObject({
    kind: z.literal("random_init"),
    method: z.enum(METHOD_NAMES).describe("whose encoder, at its seeded initialisation, is the floor"),
  }),
  z.strictObject({ kind: z.literal("raw_pixels") }),
]);
export type Subject = z.infer<typeof Subject>;

/** The leaderboard name of a subject: `capi`, `random_init.capi`, `raw_pixels`. */
export function subjectName(s: Subject): string {
  switch (s.kind) {
    case "pretrained":
      return s.method;
    case "random_init":
      return `random_init.${s.method}`;
    case "raw_pixels":
      return "raw_pixels";
    case "released":
      return s.name;
  }
}

export const ModelSpec = z.strictObject({
  preset: z.string().min(1).describe("the methods' shared preset name: tiny, vit_s, vit_b, vit_l"),
  overrides: z.record(z.string(), z.unknown()).default({}).describe("config keys replacing the preset's"),
});
export type ModelSpec = z.infer<typeof ModelSpec>;

/** Pretraining data and budget; the global batch changes results, the batch per device does not. */
export const PretrainSpec = z.strictObject({
  data: DataSpec,
  steps: z.number().int().positive().describe("optimizer steps; the schedules span exactly these"),
  batchSize: z.number().int().positive().describe("global batch (images per optimizer step)"),
});
export type PretrainSpec = z.infer<typeof PretrainSpec>;

export const PROBE_NAMES = ["knn", "linear", "attentive", "seg_knn", "seg_logreg"] as const;
export type ProbeName = typeof PROBE_NAMES[number];

/** HF model-index task of a probe. */
export function probeTask(probe: ProbeName): "image-classification" | "image-segmentation" {
  return probe === "seg_knn" || probe === "seg_logreg" ? "image-segmentation" : "image-classification";
}

export const ProbeSpec = z.strictObject({
  probe: z.enum(PROBE_NAMES),
  train: DataSpec.describe("data the probe is fitted on (its own held-out part selects hyper-parameters)"),
  eval: DataSpec.describe("data the probe's reported metrics come from; never used for selection"),
  mainMetric: z.string().min(1).describe("metric key without the probe prefix, e.g. 'top1', 'miou'"),
  config: z.record(z.string(), z.unknown()).default({}).describe("overrides of the probe's own zod config"),
});
export type ProbeSpec = z.infer<typeof ProbeSpec>;
export type ProbeSpecInput = z.input<typeof ProbeSpec>;

/** The probe protocol: every subject of a suite is measured with exactly this. */
export const ProbeProtocol = z.strictObject({
  id: z.string().min(1).describe("protocol name; records with different ids never merge"),
  version: z.number().int().positive().describe("bump when the protocol's code changes its numbers"),
  evalProtocol: EvalProtocol.default("cpu").describe(
    "settings every probe starts from before its `config` overrides: paper (the official evaluation code's) " +
      "or cpu (scaled for 2 cores); eval/protocols.ts",
  ),
  probes: z.array(ProbeSpec).min(1),
});
export type ProbeProtocol = z.infer<typeof ProbeProtocol>;

/** Runtime knobs: they do not change results and are not in any identity hash (`batchPerDevice` aside). */
export const RuntimeConfig = z.strictObject({
  engine: z.enum(ENGINE_NAMES).default("ort").describe(
    "what pretrains and extracts features: ort (each step one ONNX graph on onnxruntime) or tfjs (eager)",
  ),
  ep: z.enum(ORT_EPS).default("cpu").describe("onnxruntime execution provider of the ort engine"),
  backend: z.enum(BACKENDS).default("wasm").describe(
    "tfjs backend: probe heads always, pretraining and features with engine tfjs (wasm runs everywhere)",
  ),
  batchPerDevice: z.number().int().positive().optional().describe(
    "micro-batch of pretraining (gradients accumulated; must divide the global batch); defaults to the global " +
      "batch. The one knob here that changes results (CAPI's per-micro-batch stochastic depth, rounding): a split " +
      "batch enters the pretraining identity",
  ),
  evalBatchSize: z.number().int().positive().default(64).describe("feature extraction batch"),
  evalMemoryBytes: z.number().int().positive().default(512 * 2 ** 20).describe(
    "prepared training patches a segmentation probe keeps on the backend; the rest is re-read from disk",
  ),
  limitTrain: z.number().int().positive().optional().describe(
    "smoke runs only: at most this many probe-training images (changes results, so it enters the identity)",
  ),
  limitVal: z.number().int().positive().optional().describe(
    "smoke runs only: at most this many evaluation images (changes results, so it enters the identity)",
  ),
  hubCache: z.string().optional().describe("download cache of released weights (default .cache/hub)"),
  workers: z.number().int().positive().default(2).describe(
    "CPU threads: decode concurrency / 4 and onnxruntime intra-op threads",
  ),
  logEvery: z.number().int().positive().default(10).describe("steps between loss log lines"),
  checkpointEvery: z.number().int().positive().default(50).describe("steps between resumable checkpoints"),
});
export type RuntimeConfig = z.infer<typeof RuntimeConfig>;

/** How `.github/workflows/bench.yml` spreads the suite over GPU runners (not part of any identity). */
export const CiPlan = z.strictObject({
  shards: z.number().int().positive().describe(
    "matrix jobs, each running `--shard i/n`; chosen so that every shard holds at most one pretraining, " +
      "whose identity keys that job's checkpoint cache",
  ),
});
export type CiPlan = z.infer<typeof CiPlan>;

export const Suite = z.strictObject({
  name: z.string().regex(/^[a-z0-9_]+$/),
  description: z.string(),
  subjects: z.array(Subject).min(1),
  models: z.array(ModelSpec).min(1),
  pretraining: z.array(PretrainSpec).min(1),
  protocol: ProbeProtocol,
  seeds: z.array(z.number().int().nonnegative()).min(1).describe("at least 2 to show the seed spread"),
  runtime: RuntimeConfig.default(RuntimeConfig.parse({})),
  ci: CiPlan.default({ shards: 1 }),
}).superRefine((s, ctx) => {
  const m = s.runtime.batchPerDevice;
  for (const [i, p] of s.pretraining.entries()) {
    if (m !== undefined && m < p.batchSize && p.batchSize % m !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["runtime", "batchPerDevice"],
        message: `${m} does not divide pretraining[${i}].batchSize ${p.batchSize} (micro-batches are equal shares)`,
      });
    }
  }
});
export type Suite = z.infer<typeof Suite>;
export type SuiteInput = z.input<typeof Suite>;

/** One unit of work: one subject, model, pretraining and seed, measured with the protocol. */
export interface Cell {
  suite: string;
  subject: Subject;
  name: string;
  model: ModelSpec;
  /** `null` for the baselines, which are not pretrained. */
  pretrain: PretrainSpec | null;
  /** The pretraining data the row is grouped under (baselines keep the suite's for display). */
  groupData: DataSpec;
  protocol: ProbeProtocol;
  seed: number;
  runtime: RuntimeConfig;
}

/**
 * All cells of a suite in a deterministic order (model, pretraining, subject, seed).
 * A baseline is independent of the pretraining budget, so it appears once per model, data and seed.
 */
export function expandSuite(suite: Suite): Cell[] {
  const cells: Cell[] = [];
  const seen = new Set<string>();
  for (const model of suite.models) {
    for (const pretrain of suite.pretraining) {
      for (const subject of suite.subjects) {
        for (const seed of suite.seeds) {
          const pre = subject.kind === "pretrained" ? pretrain : null;
          const key = JSON.stringify([model, pre ?? pretrain.data, subject, seed]);
          if (seen.has(key)) continue;
          seen.add(key);
          cells.push({
            suite: suite.name,
            subject,
            name: subjectName(subject),
            model,
            pretrain: pre,
            groupData: pretrain.data,
            protocol: suite.protocol,
            seed,
            runtime: suite.runtime,
          });
        }
      }
    }
  }
  return cells;
}

/** Parse `--shard i/n` (1-based, as CI matrices count). */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) {
    throw new Error(`--shard: expected i/n with 1 <= i <= n (e.g. --shard 2/4), got '${text}'`);
  }
  return { index, count };
}

/** The cells shard `index` of `count` runs: round-robin over the deterministic order. */
export function selectShard<T>(cells: T[], shard: { index: number; count: number }): T[] {
  return cells.filter((_, i) => i % shard.count === shard.index - 1);
}

/** The settings that make a pretraining (its identity adds data file lists, code, engine): one per key. */
export function pretrainingKey(cell: Cell): string | null {
  if (!cell.pretrain || cell.subject.kind !== "pretrained") return null;
  return JSON.stringify([cell.subject.method, cell.model, cell.pretrain, cell.seed]);
}

/**
 * The GitHub Actions matrix of a suite: one job per `--shard i/n` of `suite.ci.shards`, with the
 * cells each runs. Refuses a shard count that leaves a shard empty or gives one shard two
 * pretrainings (its checkpoint cache is keyed by the one pretraining it holds).
 */
export function ciMatrix(suite: Suite): { include: { shard: string; cells: string[] }[] } {
  const all = expandSuite(suite);
  const n = suite.ci.shards;
  const include = [];
  for (let i = 1; i <= n; i++) {
    const cells = selectShard(all, { index: i, count: n });
    const pretrainings = new Set(cells.map(pretrainingKey).filter((k) => k !== null));
    if (cells.length === 0 || pretrainings.size > 1) {
      throw new Error(
        `suite '${suite.name}': ci.shards ${n} gives shard ${i}/${n} ${cells.length} cells and ` +
          `${pretrainings.size} pretrainings; choose a count where every shard has cells and at most one pretraining`,
      );
    }
    include.push({ shard: `${i}/${n}`, cells: cells.map((c) => `${c.name} seed ${c.seed}`) });
  }
  return { include };
}
