/**
 * Do the PyTorch twins of `deno task speed --vs-torch` compute what our engines compute? On the same initial
 * weights and draws, the losses of the first two steps and how far every parameter moved over them (the L2
 * norm of its change: the optimizers with their parameter groups and clipping, CAPI's EMA and clustering head)
 * must agree within float32 noise.
 *
 * `compareTwin` is the check bench/speed.ts prints after every `--vs-torch` run. `TWIN_CHECKS` are small
 * models of the same code (batch 4) whose twin results are committed in `bench/testdata/speed_twins.json`, so
 * that speed_twin_check_test.ts checks both engines against the twins without Python. Regenerate that file
 * (needs python3-torch; about 1 min) after changing a method's initialisation, draws or a twin:
 *
 *   deno run -A bench/speed_twin_check.ts --write
 *
 * @module
 */
import { atomicWriteFile } from "../model/atomic_write.ts";
import type { RoundResult } from "./speed_round.ts";
import { type SpeedMethod, speedSubject, type SubjectOptions } from "./speed_subject.ts";
import { runTorchSpeed, writeTorchInputs } from "./speed_torch_runner.ts";

/** Relative agreement required of the first losses (observed: up to 3e-6 at batch 64). */
export const LOSS_TOLERANCE = 1e-4;
/** Relative agreement required of each parameter's update norm (observed: see the test). */
export const UPDATE_TOLERANCE = 1e-2;

/** What a twin reports of its check steps. */
export interface TwinResult {
  checkLosses: number[];
  checkUpdates: Record<string, [number, number]>;
}

/** `|a - b| / max(|a|, |b|)`, 0 when both are below `floor`. */
export function relDiff(a: number, b: number, floor = 1e-12): number {
  const m = Math.max(Math.abs(a), Math.abs(b));
  return m <= floor ? 0 : Math.abs(a - b) / m;
}

export interface TwinComparison {
  ok: boolean;
  /** Largest relative loss difference. */
  loss: number;
  /** Largest relative update-norm difference and its parameter. */
  update: { rel: number; name: string };
  /** One line for the log. */
  summary: string;
}

/** Our check steps against the twin's, within `tolerances`. */
export function compareTwin(
  ours: Pick<RoundResult, "checkLosses" | "checkUpdates">,
  torch: TwinResult,
  tolerances = { loss: LOSS_TOLERANCE, update: UPDATE_TOLERANCE },
): TwinComparison {
  const problems: string[] = [];
  if (torch.checkLosses.length !== ours.checkLosses.length) {
    problems.push(`${ours.checkLosses.length} check steps here, ${torch.checkLosses.length} in the twin`);
  }
  const losses = ours.checkLosses.map((a, i) => relDiff(a, torch.checkLosses[i] ?? NaN));
  const loss = Math.max(0, ...losses.map((r) => (Number.isNaN(r) ? Infinity : r)));
  const update = { rel: 0, name: "" };
  for (const [name, a] of ours.checkUpdates) {
    const b = torch.checkUpdates[name];
    if (b === undefined) {
      problems.push(`the twin has no parameter '${name}'`);
      continue;
    }
    // Both statistics relative to the update's size (the projection alone can cancel to ~0).
    const scale = Math.max(a[0], b[0]);
    const rel = scale <= 1e-12 ? 0 : Math.max(Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1])) / scale;
    if (!(rel <= update.rel)) Object.assign(update, { rel, name });
  }
  const extra = Object.keys(torch.checkUpdates).filter((n) => !ours.checkUpdates.has(n));
  if (extra.length) problems.push(`the twin has parameters we do not: ${extra.slice(0, 3).join(", ")}`);
  if (!(loss <= tolerances.loss)) problems.push(`losses differ by ${loss.toExponential(1)} > ${tolerances.loss}`);
  if (!(update.rel <= tolerances.update)) {
    problems.push(`'${update.name}' moved ${update.rel.toExponential(1)} differently > ${tolerances.update}`);
  }
  const steps = ours.checkLosses.map((a, i) =>
    `step ${i + 1} loss ours=${a.toPrecision(8)} torch=${torch.checkLosses[i]?.toPrecision(8)}`
  );
  const summary = `${steps.join(", ")} (max rel. diff ${loss.toExponential(1)}); parameter updates over ` +
    `${ours.checkUpdates.size} tensors: max rel. diff ${update.rel.toExponential(1)}` +
    (update.name ? ` (${update.name})` : "") +
    (problems.length ? `: DIFFERENT: ${problems.join("; ")}` : `: the twin computes what ours does`);
  return { ok: problems.length === 0, loss, update, summary };
}

/** A small model of the same code, and the twin's results on it. */
export interface TwinCheck {
  method: SpeedMethod;
  batch: number;
  options: SubjectOptions;
}

/**
 * Width 48 (3 heads), 2 blocks (CAPI and MAE: 1 decoder block), batch 4: every code path at a test's cost.
 * Weight decay is 10x the presets' so that a wrong decay shows above float32 noise (a 20% error moves the
 * update statistics by ~1e-2 then, by ~1e-3 at the presets' values).
 */
export const TWIN_CHECKS: TwinCheck[] = [
  { method: "vit", batch: 4, options: { vit: { img: 16, patch: 4, dim: 24, depth: 2, heads: 3, mlpRatio: 4 } } },
  {
    method: "capi",
    batch: 4,
    options: {
      overrides: {
        embedDim: 48,
        encoderDepth: 2,
        decoderDepth: 1,
        numClusters: 32,
        optim: { weightDecay: 1, clusteringWeightDecay: 0.1 },
      },
    },
  },
  {
    method: "mae",
    batch: 4,
    options: {
      overrides: { embedDim: 48, depth: 2, decoderEmbedDim: 32, decoderDepth: 1, optim: { weightDecay: 0.5 } },
    },
  },
  { method: "simmim", batch: 4, options: { overrides: { embedDim: 48, depth: 2, optim: { weightDecay: 0.5 } } } },
];

export const TWINS_FILE = new URL("./testdata/speed_twins.json", import.meta.url).pathname;

/** The committed twin results: `{ torch, checks: [{ method, batch, options, checkLosses, checkUpdates }] }`. */
export interface TwinsFile {
  generatedBy: string;
  torch: string;
  checks: (TwinCheck & TwinResult)[];
}

async function write(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "speed_twins" });
  const out: TwinsFile = { generatedBy: "deno run -A bench/speed_twin_check.ts --write", torch: "", checks: [] };
  try {
    for (const c of TWIN_CHECKS) {
      const inputs = `${dir}/${c.method}.safetensors`;
      await writeTorchInputs(inputs, speedSubject(c.method, c.batch, c.options), 2);
      const r = await runTorchSpeed({ inputs, steps: 1, warmup: 0, threads: 1 });
      if (!r.ok) throw new Error(`${c.method}: ${r.reason}`);
      out.torch = r.result.torch;
      out.checks.push({ ...c, checkLosses: r.result.checkLosses, checkUpdates: r.result.checkUpdates });
      console.log(`${c.method}: losses ${r.result.checkLosses.join(", ")}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await Deno.mkdir(new URL("./testdata/", import.meta.url), { recursive: true });
  await atomicWriteFile(TWINS_FILE, new TextEncoder().encode(JSON.stringify(out, null, 2) + "\n"));
  console.log(`wrote ${TWINS_FILE}`);
}

if (import.meta.main) {
  if (Deno.args.length !== 1 || Deno.args[0] !== "--write") {
    console.error(
      "usage: deno run -A bench/speed_twin_check.ts --write   (regenerates bench/testdata/speed_twins.json)",
    );
    Deno.exit(2);
  }
  await write();
}
