/**
 * Deterministic stand-in phases for testing the harness without models or data: metrics and
 * loss curves are pure functions of the cell (subject, seed, budget), pretraining writes a
 * checkpoint file per "step chunk" and can be told to die part-way, like a killed process.
 *
 * @module
 */
import { sha256Hex } from "../model/sha256.ts";
import {
  type BenchPhases,
  type CellReport,
  type EvaluateContext,
  type PretrainContext,
  type PretrainOutcome,
  runCells,
} from "./cell_runner.ts";
import type { RunContext } from "./cell_plan.ts";
import type { EngineDescription } from "../model/train_engine.ts";
import { type DataSpec, expandSuite, Suite, type SuiteInput } from "./suite.ts";

export interface FakeCalls {
  pretrain: string[];
  evaluate: string[];
  /** Step each pretraining call started from (0, or a resumed checkpoint's step). */
  resumedFrom: number[];
}

/** A small deterministic number in [0, 1) from a text key. */
function unit(key: string): number {
  let h = 2166136261;
  for (const ch of key) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return (h % 10007) / 10007;
}

/** Fake phases; `dieAfterStep` makes the next pretraining throw after saving that step. */
export function fakePhases(opts: { dieAfterStep?: number } = {}): { phases: BenchPhases; calls: FakeCalls } {
  const calls: FakeCalls = { pretrain: [], evaluate: [], resumedFrom: [] };
  let die = opts.dieAfterStep;
  const phases: BenchPhases = {
    async resolveData(spec: DataSpec) {
      return {
        kind: spec.kind,
        name: spec.name,
        root: spec.root,
        split: spec.split,
        fileListHash: await sha256Hex(`${spec.kind}:${spec.root}:${spec.split}`),
        numFiles: 100,
        skipped: { count: 0, examples: [] },
      };
    },
    async pretrain({ cell, checkpointDir }: PretrainContext): Promise<PretrainOutcome> {
      const steps = cell.pretrain!.steps;
      await Deno.mkdir(checkpointDir, { recursive: true });
      const ckpt = `${checkpointDir}/last_step.txt`;
      let start = 0;
      try {
        start = Number(await Deno.readTextFile(ckpt));
      } catch { /* fresh start */ }
      calls.pretrain.push(`${cell.name}/${cell.seed}`);
      calls.resumedFrom.push(start);
      for (let s = start + 1; s <= steps; s++) {
        await Deno.writeTextFile(ckpt, String(s));
        if (die !== undefined && s === die) {
          die = undefined;
          throw new Error(`killed after step ${s}`);
        }
      }
      const lossCurve = Array.from({ length: steps }, (_, i) => ({
        step: i + 1,
        loss: 2 / (1 + i) + 0.1 * unit(`${cell.name}/${cell.seed}/${i}`),
      }));
      // Logged every step. CAPI logs its two losses (summing to the total) and the target entropy.
      const loss = lossCurve.map((p) => p.loss);
      const components: Record<string, number[]> = cell.name === "capi"
        ? {
          loss,
          loss_capi: loss.map((v) => 0.4 * v),
          loss_clustering: loss.map((v) => 0.6 * v),
          target_entropy: loss.map((_, i) => 1 + 0.01 * i),
        }
        : { loss };
      return {
        steps,
        imagesSeen: steps * cell.pretrain!.batchSize,
        lossCurve,
        curves: { source: "log.jsonl", steps: lossCurve.map((p) => p.step), components },
        imagesPerSec: 100,
        resumedFromStep: start || null,
      };
    },
    evaluate({ cell }: EvaluateContext) {
      calls.evaluate.push(`${cell.name}/${cell.seed}`);
      const budget = cell.pretrain?.steps ?? 0;
      const probes = cell.protocol.probes.map((p) => {
        const v = 0.3 + 0.2 * unit(`${cell.name}/${p.probe}`) + 0.02 * unit(`${cell.seed}/${p.probe}`) + budget * 1e-4;
        return {
          probe: p.probe,
          metrics: { [`${p.probe}/${p.mainMetric}`]: v, [`${p.probe}/loss`]: 1 - v },
          config: { k: 20 },
          status: { protocol: cell.protocol.evalProtocol, converged: null, constantPrediction: false, notes: [] },
          seconds: 0.01,
        };
      });
      return Promise.resolve({
        arch: `vit_fake.${cell.name}`,
        resolvedConfig: { preset: cell.model.preset },
        extractSec: 0.01,
        probes,
      });
    },
  };
  return { phases, calls };
}

const data = (kind: "imagenet" | "ade20k", split: "train" | "val") => ({
  kind,
  root: `/fake/${kind}`,
  split,
  name: `fake-${kind}`,
});

/** A small suite with every subject kind, two seeds, one classification and one seg probe. */
export const FAKE_SUITE: SuiteInput = {
  name: "fake",
  description: "harness tests",
  subjects: [
    { kind: "pretrained", method: "capi" },
    { kind: "pretrained", method: "mae" },
    { kind: "random_init", method: "capi" },
    { kind: "random_init", method: "mae" },
    { kind: "raw_pixels" },
  ],
  models: [{ preset: "tiny" }],
  pretraining: [{ data: data("imagenet", "train"), steps: 5, batchSize: 4 }],
  protocol: {
    id: "fake.protocol",
    version: 1,
    probes: [
      { probe: "knn", train: data("imagenet", "train"), eval: data("imagenet", "val"), mainMetric: "top1" },
      { probe: "seg_knn", train: data("ade20k", "train"), eval: data("ade20k", "val"), mainMetric: "miou" },
    ],
  },
  seeds: [0, 1],
};

/** `FAKE_SUITE` with a second pretraining budget (8 steps): two budgets of each method. */
export const FAKE_SUITE_TWO_BUDGETS: SuiteInput = {
  ...FAKE_SUITE,
  pretraining: [FAKE_SUITE.pretraining[0], { ...FAKE_SUITE.pretraining[0], steps: 8 }],
};

/** Run the cells of `suite` (the first `limit` of them when given) on fake phases into `<root>/runs`, quietly. */
export function runFakeCells(root: string, suite: SuiteInput = FAKE_SUITE, limit?: number): Promise<CellReport[]> {
  const cells = expandSuite(Suite.parse(suite));
  return runCells(limit === undefined ? cells : cells.slice(0, limit), fakePhases().phases, {
    recordsDir: `${root}/runs`,
    checkpointsDir: `${root}/ckpt`,
    log: () => {},
    context: fakeContext(),
  });
}

/**
 * A run context for tests: code versions and engines as given (defaults: commit `c0ffee...`,
 * sources `a...`/`b...`, tfjs on `blas` with fixed versions training and probing (`engine` changes
 * both unless `trainEngine` is given), features on ORT's CPU EP).
 */
export function fakeContext(o: {
  commit?: string;
  pretrainingSources?: string;
  evaluationSources?: string;
  engine?: Partial<EngineDescription>;
  trainEngine?: EngineDescription;
} = {}): RunContext {
  const commit = o.commit ?? "c0ffee".padEnd(40, "0");
  const code = (sources: "pretraining" | "evaluation", sourceHash: string) => ({
    commit,
    dirty: false,
    sources,
    sourceHash,
    files: 120,
  });
  const engine: EngineDescription = {
    engine: "tfjs",
    device: "blas",
    versions: {
      "@tensorflow/tfjs-core": "4.22.0",
      "@tensorflow/tfjs-backend-wasm": "4.22.0",
      blas: "OpenBLAS 0.3.21",
    },
    ...o.engine,
  };
  return {
    code: {
      pretraining: code("pretraining", o.pretrainingSources ?? "a".repeat(64)),
      evaluation: code("evaluation", o.evaluationSources ?? "b".repeat(64)),
    },
    engine,
    trainEngine: o.trainEngine ?? engine,
    featureEngine: { engine: "ort", device: "cpu", versions: { "onnxruntime-node": "1.30.0" } },
    decoder: { sharp: "0.34.5", vips: "8.17.3" },
  };
}
