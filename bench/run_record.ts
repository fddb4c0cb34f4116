/**
 * The run record: one JSON file per cell, the only thing the leaderboard is built from.
 *
 * It carries every number's provenance (STYLE rule 6): the identity hash and the resolved
 * settings behind it, the runtime knobs, metrics as `<probe>/<metric>` with their main score
 * and direction, the protocol id and version, git commit and dirty flag, runtime versions,
 * backend and device, timings, throughput and peak memory, and whether CI produced it.
 * The fields map onto Hugging Face `model-index` (`toModelIndex`) and hold what
 * lm-evaluation-harness stores (config, versions, git hash, seeds, timings).
 *
 * @module
 */
import { z } from "zod";
import { atomicWriteJson } from "./atomic_write.ts";
import { PROBE_NAMES } from "./suite.ts";
import { EvalProtocol } from "../eval/protocols.ts";

// v2: probe status (protocol, convergence, constant prediction) and the record's eval protocol.
export const RUN_RECORD_SCHEMA_VERSION = 2;

const Hash = z.string().regex(/^[0-9a-f]{64}$/).describe("SHA-256, lowercase hex");

/** A dataset as records name it, with the hash of its file list. */
export const ResolvedData = z.strictObject({
  kind: z.string(),
  name: z.string(),
  root: z.string().describe("folder it was read from (informational: the hash identifies it)"),
  split: z.string(),
  fileListHash: Hash,
  numFiles: z.number().int().nonnegative(),
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
    subject: z.string().describe("capi | mae | simmim | random_init.<method> | raw_pixels"),
    subjectKind: z.enum(["pretrained", "random_init", "raw_pixels"]),
    method: z.string().nullable(),
    model: z.string().describe("preset name, with '+' when overridden"),
    arch: z.string().nullable().describe("timm-style architecture of the evaluated encoder"),
    data: ResolvedData.describe("pretraining data (for baselines: the data the suite groups them under)"),
    budget: z.strictObject({ steps: z.number().int().nonnegative(), batchSize: z.number().int().nonnegative() }),
  }),
  seed: z.number().int().nonnegative(),
  protocol: z.strictObject({ id: z.string(), version: z.number().int(), evalProtocol: EvalProtocol, hash: Hash }),
  config: z.strictObject({
    resolved: z.record(z.string(), z.unknown()).describe("model/method config as the code resolved it"),
    runtime: z.record(z.string(), z.unknown()).describe("knobs outside the identity (backend, batches, cadence)"),
  }),
  results: z.array(ProbeResult).min(1),
  metrics: z.record(z.string(), z.number()).describe("all probes' metrics, flattened"),
  pretraining: z.strictObject({
    steps: z.number().int().nonnegative(),
    imagesSeen: z.number().int().nonnegative(),
    lossCurve: z.array(LossPoint),
    finalLoss: z.number().nullable(),
    imagesPerSec: z.number().nonnegative().nullable(),
    resumedFromStep: z.number().int().nonnegative().nullable(),
    reusedCheckpoint: z.boolean().describe("a finished checkpoint with the same identity was reused"),
    checkpoint: z.string().nullable(),
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
  provenance: z.strictObject({
    git: z.strictObject({ commit: z.string(), dirty: z.boolean() }),
    versions: z.record(z.string(), z.string()).describe("deno, v8, typescript, tfjs, onnxruntime, zod, ..."),
    backend: z.string(),
    device: z.strictObject({
      cpu: z.string(),
      cores: z.number().int().positive(),
      gpu: z.string().nullable(),
      memoryBytes: z.number().int().nonnegative(),
      os: z.string(),
    }),
    ci: z.boolean().describe("env CI=true"),
    startedAt: z.string().datetime(),
    finishedAt: z.string().datetime(),
  }),
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

/** Parse a record read from `path`; the error names the file and the failing fields. */
export function parseRunRecord(path: string, value: unknown): RunRecord {
  const parsed = RunRecord.safeParse(value);
  if (!parsed.success) {
    throw new Error(
      `'${path}' is not a valid run record (schema v${RUN_RECORD_SCHEMA_VERSION}):\n${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/** Every `*.json` run record under `dir` (recursively), sorted by path. */
export async function readRunRecords(dir: string): Promise<{ path: string; record: RunRecord }[]> {
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
  for (const path of paths) out.push({ path, record: parseRunRecord(path, JSON.parse(await Deno.readTextFile(path))) });
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
