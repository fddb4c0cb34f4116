/**
 * A cell's probes, run the way its protocol says (`bench_phases.ts` calls this with the
 * cell's encoder): every probe's config resolved under the suite's `evalProtocol`
 * (eval/protocols.ts), features extracted once per (data, input size) into a temporary
 * sharded disk store that the cached-feature probes stream (patch tokens kept when any probe
 * on that data needs them), and `online` class probes (the `paper` protocol) run on images
 * through the encoder in micro-batches of `batchPerDevice` instead, linear and attentive in one
 * pass when their settings match (as capi trains every source's classifiers together).
 *
 * @module
 */
import type { ImageDataset } from "../datasets/dataset.ts";
import type { VisionEncoder } from "../model/encoder.ts";
import { datasetSource } from "../eval/dataset_source.ts";
import { extractFeatures } from "../eval/features.ts";
import type { FeatureTable } from "../eval/feature_table.ts";
import type { EvalMethod } from "../eval/feature_sources.ts";
import {
  type ClassProbeName,
  type ProbeConfig,
  probeImageSize,
  probeInput,
  type ProbeOutput,
  resolveProbeConfig,
  runClassProbes,
  runProbe,
} from "../eval/probes.ts";
import type { ProbeOutcome } from "./cell_runner.ts";
import type { Cell, DataSpec } from "./suite.ts";

/** Where a cell's feature stores live while it is evaluated (deleted after the cell), one folder per process. */
const FEATURES_TMP = ".cache/bench/features";

/**
 * This process's folder for temporary feature stores under `root`. A killed run leaves its
 * stores behind (an ImageNet-scale store is tens of GB): the first call per root removes the
 * folders of processes that no longer run (Linux `/proc`; elsewhere nothing is removed), so a
 * resumed run cleans up after the killed one, while concurrent shards keep theirs.
 */
export async function processTempDir(root: string): Promise<string> {
  const mine = `${root}/${Deno.pid}`;
  if (swept.has(root)) return mine;
  swept.add(root);
  if (!existsSync("/proc/self")) return mine;
  try {
    for await (const e of Deno.readDir(root)) {
      if (e.isDirectory && /^\d+$/.test(e.name) && !existsSync(`/proc/${e.name}`)) {
        await Deno.remove(`${root}/${e.name}`, { recursive: true });
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return mine;
}
const swept = new Set<string>();

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

interface Plan {
  spec: Cell["protocol"]["probes"][number];
  cfg: ProbeConfig;
  input: { online: boolean; patches: boolean };
  size: [number, number];
}

/** One probe run per plan, except online linear + attentive with the same settings and data: one run. */
export function probeJobs<P extends Pick<Plan, "spec" | "cfg" | "input">>(plans: P[]): P[][] {
  const out: P[][] = [];
  const key = (p: P) => JSON.stringify([p.cfg, p.spec.train, p.spec.eval]);
  for (const p of plans) {
    const joinable = p.input.online && (p.spec.probe === "linear" || p.spec.probe === "attentive");
    const group = joinable
      ? out.find((g) => g[0].input.online && key(g[0]) === key(p) && g.every((x) => x.spec.probe !== p.spec.probe))
      : undefined;
    if (group) group.push(p);
    else out.push([p]);
  }
  return out;
}

const flagText = (o: ProbeOutput) =>
  [o.status.converged === false ? "NOT CONVERGED" : "", o.status.constantPrediction ? "CONSTANT" : ""]
    .filter(Boolean).join(", ");

/** Run the protocol's probes; returns their outcomes in the protocol's order and the extraction time. */
export async function runProtocolProbes(
  cell: Cell,
  encoder: VisionEncoder,
  method: EvalMethod,
  openSpec: (d: DataSpec, role: "train" | "eval") => Promise<ImageDataset>,
  log: (line: string) => void,
): Promise<{ extractSec: number; probes: ProbeOutcome[] }> {
  const protocol = cell.protocol.evalProtocol;
  const plans: Plan[] = cell.protocol.probes.map((spec) => {
    const cfg = resolveProbeConfig(spec.probe, protocol, { ...spec.config, seed: cell.seed });
    return { spec, cfg, input: probeInput(spec.probe, cfg), size: probeImageSize(spec.probe, cfg, encoder.info) };
  });
  type Role = "train" | "eval";
  const dataKey = (d: DataSpec, role: Role, size: number[]) =>
    JSON.stringify([d.kind, d.source, d.root, d.split, d.synthetic, role, size]);
  const wantsPatches = new Set(
    plans.filter((p) => !p.input.online && p.input.patches)
      .flatMap((p) => [dataKey(p.spec.train, "train", p.size), dataKey(p.spec.eval, "eval", p.size)]),
  );
  const datasets = new Map<string, Promise<ImageDataset>>();
  const open = (d: DataSpec, role: Role) => {
    const k = dataKey(d, role, []);
    if (!datasets.has(k)) datasets.set(k, openSpec(d, role));
    return datasets.get(k)!;
  };
  const tables = new Map<string, Promise<FeatureTable>>();
  let extractSec = 0;
  const features = (d: DataSpec, role: Role, size: [number, number]) => {
    const key = dataKey(d, role, size);
    if (!tables.has(key)) {
      tables.set(
        key,
        (async () => {
          const t0 = performance.now();
          const ds = await open(d, role);
          const src = datasetSource(ds, `${d.name}/${d.split}`, size, { concurrency: 4 * cell.runtime.workers });
          const table = await extractFeatures(encoder, src, {
            batchSize: cell.runtime.evalBatchSize,
            keepPatches: wantsPatches.has(key),
            tempDir: await processTempDir(FEATURES_TMP),
          });
          const sec = (performance.now() - t0) / 1000;
          extractSec += sec;
          log(`  features ${d.name}/${d.split}: ${ds.length} images in ${sec.toFixed(1)}s`);
          return table;
        })(),
      );
    }
    return tables.get(key)!;
  };
  try {
    const outcomes = new Map<Plan, ProbeOutput>();
    for (const group of probeJobs(plans)) {
      const { spec, cfg, input, size } = group[0];
      const [train, val] = [await open(spec.train, "train"), await open(spec.eval, "eval")];
      const online = {
        encoder,
        train,
        val,
        batchPerDevice: cell.runtime.batchPerDevice ?? cell.runtime.evalBatchSize,
        evalBatch: cell.runtime.evalBatchSize,
        concurrency: 4 * cell.runtime.workers,
      };
      const inputs = input.online
        ? { online }
        : { train: await features(spec.train, "train", size), val: await features(spec.eval, "eval", size) };
      const o = { method, classes: train.numClasses, protocol, config: cfg, memoryBytes: cell.runtime.evalMemoryBytes };
      const outs = group.length > 1
        ? await runClassProbes(group.map((g) => g.spec.probe as ClassProbeName), inputs, o)
        : [await runProbe(spec.probe, inputs, o)];
      group.forEach((g, i) => outcomes.set(g, outs[i]));
    }
    const probes = plans.map((plan): ProbeOutcome => {
      const out = outcomes.get(plan)!;
      const main = `${plan.spec.probe}/${plan.spec.mainMetric}`;
      log(
        `  ${plan.spec.probe}: ${main}=${out.metrics[main]?.toFixed(4)} (${out.seconds.toFixed(1)}s) ${flagText(out)}`
          .trimEnd(),
      );
      return {
        probe: plan.spec.probe,
        metrics: out.metrics,
        config: out.config,
        status: out.status,
        seconds: out.seconds,
      };
    });
    return { extractSec, probes };
  } finally {
    for (const t of tables.values()) await (await t.catch(() => null))?.close();
  }
}
