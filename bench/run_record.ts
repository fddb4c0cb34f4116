/**
 * The run record: one JSON file per cell, the only thing the leaderboard is built from.
 *
 * It carries every number's provenance (STYLE rule 6): the identity hash and the resolved
 * settings behind it, the runtime knobs, every data split read and what strict reading skipped,
 * metrics as `<probe>/<metric>` with their main score and direction, the protocol id and
 * version, timings, throughput and peak memory, and, separately for the pretraining (that made
 * the checkpoint) and the evaluation: the code version (commit, dirty flag, hash of the
 * result-computing sources), the engine as it actually ran (a fallback recorded as such), the
 * library versions, the machine, CI and start and finish times.
 * The fields map onto Hugging Face `model-index` (`toModelIndex`) and hold what
 * lm-evaluation-harness stores (config, versions, git hash, seeds, timings).
 *
 * @module
 */
import { z } from "zod";
import { atomicWriteJson } from "../model/atomic_write.ts";
import type { EngineDescription } from "../model/train_engine.ts";
import { type CodeVersion, SOURCE_SETS, type SourceSet } from "./code_version.ts";
import { PROBE_NAMES } from "./suite.ts";
import { EvalProtocol } from "../eval/protocols.ts";

// v2: provenance as it ran (code version, engines, decoder, per phase), skipped data.
// v3: probe status (protocol, convergence, constant prediction) and the record's eval protocol.
export const RUN_RECORD_SCHEMA_VERSION = 3;

const Hash = z.string().regex(/^[0-9a-f]{64}$/).describe("SHA-256, lowercase hex");

/** A dataset as records name it, with the hash of its file list. */
export const ResolvedData = z.strictObject({
  kind: z.string(),
  name: z.string(),
  root: z.string().describe("folder it was read from (informational: the hash identifies it)"),
  split: z.string(),
  fileListHash: Hash,
  numFiles: z.number().int().nonnegative(),
  skipped: z.strictObject({
    count: z.number().int().nonnegative().describe("problems skipped with --allow-missing (0 without it: they fail)"),
    examples: z.array(z.string()).max(20).describe("the first 'path: problem' lines"),
  }).describe("what strict reading left out (datasets/strict_dataset.ts)"),
});
export type ResolvedData = z.infer<typeof ResolvedData>;

/** Whether a probe's numbers are a measurement (eval/probes.ts `ProbeStatus`). */
export const ProbeStatus = z.strictObject({
  protocol: EvalProtocol,
  converged: z.boolean().nullable().describe(
    "the probe's training converged (class probes: the selected classifier's loss went down; seg_logreg: " +
      "L-BFGS met its test); null when nothing is trained (k-NN)",
  ),
  constantPrediction: z.boolean().describe("one class predicted for every val sample: not a measurement"),
  notes: z.array(z.string()).describe("why a flag is set, in words"),
});

/** One probe's outcome, shaped like an HF model-index result and an lm-eval task result. */
export const ProbeResult = z.strictObject({
  probe: z.enum(PROBE_NAMES),
  task: z.strictObject({
    type: z.enum(["image-classification", "image-segmentation"]).describe("HF pipeline tag"),
    name: z.string(),
  }),
  dataset: z.strictObject({ name: z.string(), type: z.string(), split: z.string(), fileListHash: Hash }),
  metrics: z.record(z.string(), z.number()).describe("keys `<probe>/<metric>`, e.g. `knn/top1`, fractions in [0,1]"),
  mainScore: z.string().describe("the metric key the leaderboard ranks this probe by"),
  higherIsBetter: z.record(z.string(), z.boolean()),
  config: z.record(z.string(), z.unknown()).describe("the probe's resolved config"),
  status: ProbeStatus.describe("a result with converged false or constantPrediction true is not a measurement"),
  seconds: z.number().nonnegative().describe("wall time of this probe (fit + predict)"),
});
export type ProbeResult = z.infer<typeof ProbeResult>;

export const LossPoint = z.strictObject({ step: z.number().int().nonnegative(), loss: z.number() });

/**
 * The pretraining curves as the trainer logged them (`log.jsonl`, one line every `logEvery` steps): every
 * loss component at every logged step, so that runs can be compared with each other and with published
 * curves (CAPI: `loss`, `loss_capi`, `loss_clustering`, `target_entropy`; MAE and SimMIM: `loss`).
 */
export const LossCurves = z.strictObject({
  source: z.literal("log.jsonl").describe("the trainer's JSONL log of the checkpoint folder"),
  steps: z.array(z.number().int().positive()).describe("logged steps (completed iterations), ascending"),
  components: z.record(z.string(), z.array(z.number().nullable())).describe(
    "per component, its logged value at each of `steps` (null: not logged at that step, or not finite)",
  ),
}).superRefine((c, ctx) => {
  for (let i = 1; i < c.steps.length; i++) {
    if (c.steps[i] <= c.steps[i - 1]) {
      ctx.addIssue({
        code: "custom",
        path: ["steps", i],
        message: `steps must ascend: ${c.steps[i - 1]}, ${c.steps[i]}`,
      });
      break;
    }
  }
  for (const [k, v] of Object.entries(c.components)) {
    if (v.length !== c.steps.length) {
      ctx.addIssue({
        code: "custom",
        path: ["components", k],
        message: `${v.length} values for ${c.steps.length} steps`,
      });
    }
  }
});
export type LossCurves = z.infer<typeof LossCurves>;

/** The code that computed a number (bench/code_version.ts). */
export const CodeVersionRecord = z.strictObject({
  commit: z.string().describe("git HEAD, or 'unknown' outside a git checkout"),
  dirty: z.boolean().describe("the hashed sources differ from the commit"),
  sources: z.enum(Object.keys(SOURCE_SETS) as [SourceSet, ...SourceSet[]]).describe(
    "which files were hashed (bench/code_version.ts SOURCE_SETS)",
  ),
  sourceHash: Hash.describe("SHA-256 of the result-computing sources as they were on disk"),
  files: z.number().int().nonnegative(),
}) satisfies z.ZodType<CodeVersion>;

/** An engine as it ran (model/train_engine.ts `EngineDescription`): a fallback is recorded as the fallback. */
export const EngineRecord = z.strictObject({
  engine: z.enum(["tfjs", "ort"]),
  device: z.string().describe("tfjs backend or onnxruntime execution provider that actually ran"),
  fallbackFrom: z.string().optional().describe("what was asked for when a fallback ran (blas without OpenBLAS)"),
  versions: z.record(z.string(), z.string()).describe("numeric libraries that computed: tfjs, its backend, BLAS, ORT"),
}) satisfies z.ZodType<EngineDescription>;

export const DeviceRecord = z.strictObject({
  cpu: z.string(),
  cores: z.number().int().positive(),
  gpu: z.string().nullable(),
  memoryBytes: z.number().int().nonnegative(),
  os: z.string(),
});

/** How and when one phase (pretraining, or evaluation) computed its numbers. */
export const PhaseProvenance = z.strictObject({
  code: CodeVersionRecord,
  engine: EngineRecord,
  decoder: z.record(z.string(), z.string()).describe("image decoding libraries (sharp, libvips, ...)"),
  device: DeviceRecord,
  ci: z.boolean().describe("env CI=true"),
  startedAt: z.string().datetime(),
  finishedAt: z.string().datetime(),
});
export type PhaseProvenance = z.infer<typeof PhaseProvenance>;

export const RunRecord = z.strictObject({
  schemaVersion: z.literal(RUN_RECORD_SCHEMA_VERSION),
  kind: z.literal("mim-bench-run"),
  identity: z.strictObject({
    hash: Hash.describe("over the result-changing settings only (identity.settings)"),
    pretrainHash: Hash.nullable().describe("identity of the pretrained checkpoint; null for baselines"),
    settings: z.record(z.string(), z.unknown()).describe("exactly what was hashed (canonical JSON)"),
  }),
  suite: z.string(),
  row: z.strictObject({
    subject: z.string().describe("capi | mae | simmim | random_init.<method> | raw_pixels | a released weights name"),
    subjectKind: z.enum(["pretrained", "random_init", "raw_pixels", "released"]),
    method: z.string().nullable(),
    model: z.string().describe("preset name, with '+' when overridden"),
    arch: z.string().nullable().describe("timm-style architecture of the evaluated encoder"),
    data: ResolvedData.describe("pretraining data (for baselines: the data the suite groups them under)"),
    budget: z.strictObject({ steps: z.number().int().nonnegative(), batchSize: z.number().int().nonnegative() }),
    published: z.record(z.string(), z.number()).optional().describe(
      "released weights: the authors' numbers by metric key, shown beside ours",
    ),
    checkpoint: z.strictObject({ name: z.string(), sha256: Hash, format: z.string() }).optional().describe(
      "released weights: the file that was evaluated",
    ),
  }),
  seed: z.number().int().nonnegative(),
  protocol: z.strictObject({ id: z.string(), version: z.number().int(), evalProtocol: EvalProtocol, hash: Hash }),
  config: z.strictObject({
    resolved: z.record(z.string(), z.unknown()).describe("model/method config as the code resolved it"),
    runtime: z.record(z.string(), z.unknown()).describe("knobs outside the identity (backend, batches, cadence)"),
  }),
  data: z.array(ResolvedData).min(1).describe(
    "every split this cell read (pretraining, each probe's fitting and evaluation data), with what was skipped",
  ),
  results: z.array(ProbeResult).min(1),
  metrics: z.record(z.string(), z.number()).describe("all probes' metrics, flattened"),
  pretraining: z.strictObject({
    steps: z.number().int().nonnegative(),
    imagesSeen: z.number().int().nonnegative(),
    lossCurve: z.array(LossPoint),
    curves: LossCurves.optional().describe("every logged loss component; absent in records written before it existed"),
    finalLoss: z.number().nullable(),
    imagesPerSec: z.number().nonnegative().nullable(),
    resumedFromStep: z.number().int().nonnegative().nullable(),
    reusedCheckpoint: z.boolean().describe("a finished checkpoint with the same identity was reused"),
    checkpoint: z.string().nullable(),
    provenance: PhaseProvenance.describe("the run that computed the checkpoint (this one unless reusedCheckpoint)"),
  }).nullable().describe("null for baselines"),
  timings: z.strictObject({
    pretrainSec: z.number().nonnegative(),
    extractSec: z.number().nonnegative(),
    probeSec: z.number().nonnegative(),
    totalSec: z.number().nonnegative(),
  }),
  peakRssBytes: z.number().int().nonnegative().describe(
    "peak resident memory of the bench process up to the end of this cell (Linux VmHWM; cells run in one process)",
  ),
  provenance: PhaseProvenance.extend({
    featureEngine: EngineRecord.describe("what extracted the features (onnxruntime, or the tfjs engine)"),
    runtime: z.record(z.string(), z.string()).describe("deno, v8, typescript (recorded, not compared)"),
    reuse: z.strictObject({
      fromCommit: z.string().describe("the commit whose code computed these numbers (= code.commit)"),
      acceptedFor: Hash.describe("the computation key (code, engines, libraries) the numbers were accepted for"),
      acceptedBy: CodeVersionRecord.describe("the code of the run that accepted them"),
      acceptedAt: z.string().datetime(),
      reasons: z.array(z.string()).describe("how the accepting run's computation differed"),
    }).nullable().describe("set when `deno task bench --reuse-from COMMIT` kept these numbers instead of re-running"),
  }).describe("the evaluation: its code, engines, libraries, machine and times (pretraining has its own)"),
});
export type RunRecord = z.infer<typeof RunRecord>;

/** Validate `record` (throwing with the paths of every problem) and write it atomically. */
export async function writeRunRecord(path: string, record: RunRecord): Promise<void> {
  const parsed = RunRecord.safeParse(record);
  if (!parsed.success) {
    throw new Error(`run record for '${path}' is invalid, not written:\n${z.prettifyError(parsed.error)}`);
  }
  await atomicWriteJson(path, parsed.data);
}

/** A record written by code with another record schema (it cannot be read, only recomputed). */
export class OutdatedRecordError extends Error {
  constructor(readonly path: string, readonly version: unknown) {
    super(
      `'${path}' is a run record of schema v${version}; this code reads v${RUN_RECORD_SCHEMA_VERSION}: ` +
        "run `deno task bench` to recompute its cell, or move the file away",
    );
    this.name = "OutdatedRecordError";
  }
}

/** Parse a record read from `path`; the error names the file and the failing fields. */
export function parseRunRecord(path: string, value: unknown): RunRecord {
  const version = (value as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (typeof version === "number" && version !== RUN_RECORD_SCHEMA_VERSION) {
    throw new OutdatedRecordError(path, version);
  }
  const parsed = RunRecord.safeParse(value);
  if (!parsed.success) {
    throw new Error(
      `'${path}' is not a valid run record (schema v${RUN_RECORD_SCHEMA_VERSION}):\n${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/**
 * Every `*.json` run record under `dir` (recursively), sorted by path. A record of another
 * schema version is an error, unless `onOutdated` takes it (the harness recomputes its cell).
 */
export async function readRunRecords(
  dir: string,
  opts: { onOutdated?: (e: OutdatedRecordError) => void } = {},
): Promise<{ path: string; record: RunRecord }[]> {
  const paths: string[] = [];
  async function walk(d: string): Promise<void> {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.isFile && e.name.endsWith(".json")) paths.push(p);
    }
  }
  try {
    await walk(dir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  paths.sort();
  const out = [];
  for (const path of paths) {
    let value: unknown;
    try {
      value = JSON.parse(await Deno.readTextFile(path));
    } catch (err) {
      throw new Error(`'${path}' is not valid JSON (${(err as Error).message}); delete it to recompute its cell`);
    }
    try {
      out.push({ path, record: parseRunRecord(path, value) });
    } catch (err) {
      if (!(err instanceof OutdatedRecordError && opts.onOutdated)) throw err;
      opts.onOutdated(err);
    }
  }
  return out;
}

/** The record as a Hugging Face `model-index` entry (the model card's YAML front matter). */
export function toModelIndex(r: RunRecord) {
  return [{
    name: `${r.row.arch ?? r.row.model}.${r.row.subject}_${r.row.data.name}_seed${r.seed}`,
    results: r.results.map((p) => ({
      task: { type: p.task.type, name: p.task.name },
      dataset: { name: p.dataset.name, type: p.dataset.type, split: p.dataset.split },
      metrics: Object.entries(p.metrics).map(([key, value]) => ({
        type: key.split("/").slice(1).join("/"),
        name: key,
        value,
        verified: false,
      })),
    })),
  }];
}
