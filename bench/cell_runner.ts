/**
 * Runs the cells of a suite: pretrain (or reuse a finished checkpoint with the same identity,
 * or resume an interrupted one), extract features, run the probes, write one run record.
 *
 * The phases are injected (`BenchPhases`), so that the bookkeeping here (identities, skipping,
 * checkpoint reuse, records, progress) is tested with fakes and the real trainer and probes
 * plug in from `bench_phases.ts`. Nothing is lost on a kill: a record is written atomically
 * once its cell is complete, and a pretraining run is marked finished (atomically) only after
 * the trainer returned; until then the trainer's own checkpoints carry the progress.
 *
 * @module
 */
import { atomicWriteJson, readJsonIfExists } from "./atomic_write.ts";
import { identityHash } from "./identity.ts";
import { deviceInfo, gitState, isCi, peakRssBytes, runtimeVersions } from "./provenance.ts";
import {
  type ProbeResult,
  readRunRecords,
  type ResolvedData,
  RUN_RECORD_SCHEMA_VERSION,
  type RunRecord,
  writeRunRecord,
} from "./run_record.ts";
import { type Cell, type DataSpec, type ProbeName, probeTask } from "./suite.ts";
import type { ProbeStatus } from "../eval/probes.ts";

/** What the trainer reports back; also stored as the checkpoint folder's `pretrain_done.json`. */
export interface PretrainOutcome {
  steps: number;
  imagesSeen: number;
  lossCurve: { step: number; loss: number }[];
  imagesPerSec: number | null;
  resumedFromStep: number | null;
  /** Wall seconds of the pretraining that produced the checkpoint (set by the runner). */
  wallSec?: number;
}

export interface PretrainContext {
  cell: Cell;
  /** Folder for this identity's checkpoints; the trainer resumes from what it finds there. */
  checkpointDir: string;
  /** Identity hash of the pretraining (the trainer refuses to resume another run's checkpoint). */
  pretrainHash: string;
  log: (line: string) => void;
}

export interface EvaluateContext {
  cell: Cell;
  /** The finished checkpoint folder, or `null` for baselines (random init, raw pixels). */
  checkpointDir: string | null;
  resolveData: (spec: DataSpec) => Promise<ResolvedData>;
  log: (line: string) => void;
}

/** One probe's raw outcome: metrics keyed `<probe>/<metric>`, and whether they are a measurement. */
export interface ProbeOutcome {
  probe: ProbeName;
  metrics: Record<string, number>;
  config: Record<string, unknown>;
  status: ProbeStatus;
  seconds: number;
}

export interface EvaluateOutcome {
  arch: string | null;
  resolvedConfig: Record<string, unknown>;
  extractSec: number;
  probes: ProbeOutcome[];
}

/** The three things a cell does, injected so that the harness is testable without models. */
export interface BenchPhases {
  resolveData(spec: DataSpec): Promise<ResolvedData>;
  pretrain(ctx: PretrainContext): Promise<PretrainOutcome>;
  evaluate(ctx: EvaluateContext): Promise<EvaluateOutcome>;
}

export interface RunCellsOptions {
  recordsDir: string;
  checkpointsDir: string;
  log?: (line: string) => void;
}

export interface CellReport {
  cell: Cell;
  status: "done" | "skipped" | "failed";
  recordPath: string | null;
  record: RunRecord | null;
  error?: string;
}

/** Cache data resolution (file-list hashing walks the folder once per spec). */
function dataResolver(phases: BenchPhases): (spec: DataSpec) => Promise<ResolvedData> {
  const cache = new Map<string, Promise<ResolvedData>>();
  return (spec) => {
    const key = JSON.stringify([spec.kind, spec.root, spec.split]);
    if (!cache.has(key)) cache.set(key, phases.resolveData(spec));
    return cache.get(key)!;
  };
}

/** A dataset's identity: where it lives is not part of it, its file list is. */
const dataIdentity = (d: ResolvedData) => ({ kind: d.kind, split: d.split, fileListHash: d.fileListHash });

/** The settings hashed into the cell's and its checkpoint's identities. */
export async function cellIdentity(cell: Cell, resolve: (spec: DataSpec) => Promise<ResolvedData>) {
  const probes = [];
  for (const p of cell.protocol.probes) {
    probes.push({ ...p, train: dataIdentity(await resolve(p.train)), eval: dataIdentity(await resolve(p.eval)) });
  }
  const protocol = {
    id: cell.protocol.id,
    version: cell.protocol.version,
    evalProtocol: cell.protocol.evalProtocol,
    probes,
  };
  const pretrain = cell.pretrain && cell.subject.kind === "pretrained"
    ? {
      method: cell.subject.method,
      model: cell.model,
      data: dataIdentity(await resolve(cell.pretrain.data)),
      steps: cell.pretrain.steps,
      batchSize: cell.pretrain.batchSize,
      seed: cell.seed,
    }
    : null;
  const settings = { subject: cell.subject, model: cell.model, pretrain, protocol, seed: cell.seed };
  return {
    settings,
    hash: await identityHash(settings),
    pretrainHash: pretrain ? await identityHash(pretrain) : null,
    protocolHash: await identityHash(protocol),
  };
}

/** The record's file name: readable, and unique through the identity hash. */
export function recordFileName(cell: Cell, hash: string): string {
  const budget = cell.pretrain ? `${cell.pretrain.steps}x${cell.pretrain.batchSize}` : "0";
  return `${cell.name}.${cell.model.preset}.${cell.groupData.name}.${budget}.seed${cell.seed}.${
    hash.slice(0, 12)
  }.json`;
}

function higherIsBetter(metric: string): boolean {
  return !/(loss|error|err)$/i.test(metric);
}

/** Run `cells` in order; finished cells (a valid record with the same identity) are skipped. */
export async function runCells(cells: Cell[], phases: BenchPhases, opts: RunCellsOptions): Promise<CellReport[]> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const resolve = dataResolver(phases);
  const existing = new Map<string, { path: string; record: RunRecord }>();
  for (const r of await readRunRecords(opts.recordsDir)) existing.set(r.record.identity.hash, r);
  const [git, versions, device] = await Promise.all([gitState(), runtimeVersions(), deviceInfo()]);
  // Resolve every dataset first (generating the synthetic one if needed): a missing folder stops
  // the run here with one clear message instead of failing every cell.
  for (const c of cells) {
    for (const d of [c.groupData, c.pretrain?.data, ...c.protocol.probes.flatMap((p) => [p.train, p.eval])]) {
      if (d) await resolve(d);
    }
  }

  const reports: CellReport[] = [];
  for (const [i, cell] of cells.entries()) {
    const tag = `[${i + 1}/${cells.length}] ${cell.name} ${cell.model.preset} ${cell.groupData.name} ` +
      `${cell.pretrain ? `${cell.pretrain.steps}x${cell.pretrain.batchSize}` : "no-pretraining"} seed ${cell.seed}`;
    try {
      const id = await cellIdentity(cell, resolve);
      const done = existing.get(id.hash);
      if (done) {
        log(`${tag}: skip, done in ${done.path}`);
        reports.push({ cell, status: "skipped", recordPath: done.path, record: done.record });
        continue;
      }
      log(`${tag}: start (identity ${id.hash.slice(0, 12)})`);
      const startedAt = new Date().toISOString();
      const t0 = performance.now();

      let pretraining: RunRecord["pretraining"] = null;
      let checkpointDir: string | null = null;
      let pretrainSec = 0;
      if (cell.pretrain && id.pretrainHash) {
        checkpointDir = `${opts.checkpointsDir}/${id.pretrainHash}`;
        const donePath = `${checkpointDir}/pretrain_done.json`;
        let outcome = await readJsonIfExists(donePath) as PretrainOutcome | null;
        const reused = outcome !== null;
        if (outcome) log(`${tag}: reusing finished pretraining in ${checkpointDir}`);
        else {
          outcome = await phases.pretrain({ cell, checkpointDir, pretrainHash: id.pretrainHash, log });
          outcome = { ...outcome, wallSec: (performance.now() - t0) / 1000 };
          await atomicWriteJson(donePath, outcome);
        }
        // A reused checkpoint reports the wall time of the run that made it (0 if unknown).
        pretrainSec = outcome.wallSec ?? 0;
        const last = outcome.lossCurve.at(-1);
        pretraining = {
          steps: outcome.steps,
          imagesSeen: outcome.imagesSeen,
          lossCurve: outcome.lossCurve,
          finalLoss: last ? last.loss : null,
          imagesPerSec: outcome.imagesPerSec,
          resumedFromStep: outcome.resumedFromStep,
          reusedCheckpoint: reused,
          checkpoint: checkpointDir,
        };
        log(
          `${tag}: pretrained ${outcome.steps} steps` +
            (outcome.imagesPerSec ? ` at ${outcome.imagesPerSec.toFixed(1)} img/s` : "") +
            (last ? `, final loss ${last.loss.toFixed(4)}` : ""),
        );
      }

      const t1 = performance.now();
      const ev = await phases.evaluate({ cell, checkpointDir, resolveData: resolve, log });
      const evalSec = (performance.now() - t1) / 1000;
      const results: ProbeResult[] = [];
      for (const spec of cell.protocol.probes) {
        const out = ev.probes.find((p) => p.probe === spec.probe);
        if (!out) throw new Error(`evaluate returned no result for probe '${spec.probe}'`);
        const main = `${spec.probe}/${spec.mainMetric}`;
        if (!(main in out.metrics)) {
          throw new Error(`probe '${spec.probe}' returned no '${main}' (got ${Object.keys(out.metrics).join(", ")})`);
        }
        const data = await resolve(spec.eval);
        results.push({
          probe: spec.probe,
          task: { type: probeTask(spec.probe), name: spec.probe },
          dataset: { name: data.name, type: data.kind, split: data.split, fileListHash: data.fileListHash },
          metrics: out.metrics,
          mainScore: main,
          higherIsBetter: Object.fromEntries(Object.keys(out.metrics).map((k) => [k, higherIsBetter(k)])),
          config: out.config,
          status: out.status,
          seconds: out.seconds,
        });
      }
      const record: RunRecord = {
        schemaVersion: RUN_RECORD_SCHEMA_VERSION,
        kind: "mim-bench-run",
        identity: { hash: id.hash, pretrainHash: id.pretrainHash, settings: id.settings },
        suite: cell.suite,
        row: {
          subject: cell.name,
          subjectKind: cell.subject.kind,
          method: cell.subject.kind === "raw_pixels" ? null : cell.subject.method,
          model: cell.model.preset + (Object.keys(cell.model.overrides).length ? "+" : ""),
          arch: ev.arch,
          data: await resolve(cell.groupData),
          budget: cell.pretrain
            ? { steps: cell.pretrain.steps, batchSize: cell.pretrain.batchSize }
            : { steps: 0, batchSize: 0 },
        },
        seed: cell.seed,
        protocol: {
          id: cell.protocol.id,
          version: cell.protocol.version,
          evalProtocol: cell.protocol.evalProtocol,
          hash: id.protocolHash,
        },
        config: { resolved: ev.resolvedConfig, runtime: { ...cell.runtime } },
        results,
        metrics: Object.assign({}, ...results.map((r) => r.metrics)),
        pretraining,
        timings: {
          pretrainSec,
          extractSec: ev.extractSec,
          probeSec: Math.max(0, evalSec - ev.extractSec),
          totalSec: (performance.now() - t0) / 1000,
        },
        peakRssBytes: peakRssBytes(),
        provenance: {
          git,
          versions,
          backend: cell.runtime.backend,
          device,
          ci: isCi(),
          startedAt,
          finishedAt: new Date().toISOString(),
        },
      };
      const path = `${opts.recordsDir}/${recordFileName(cell, id.hash)}`;
      await writeRunRecord(path, record);
      existing.set(id.hash, { path, record });
      const mains = results.map((r) => `${r.mainScore}=${r.metrics[r.mainScore].toFixed(4)}`).join(" ");
      log(`${tag}: done in ${record.timings.totalSec.toFixed(1)}s ${mains} -> ${path}`);
      reports.push({ cell, status: "done", recordPath: path, record });
    } catch (err) {
      const message = (err as Error).message;
      log(`${tag}: FAILED: ${message}`);
      reports.push({ cell, status: "failed", recordPath: null, record: null, error: message });
    }
  }
  return reports;
}
