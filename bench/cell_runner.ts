/**
 * Runs the cells of a suite: pretrain (or reuse a finished checkpoint with the same pretraining
 * identity, or resume an interrupted one), extract features, run the probes, write one run record.
 *
 * The phases are injected (`BenchPhases`), so that the bookkeeping here (identities, deciding
 * what re-runs, checkpoint reuse, records, progress) is tested with fakes and the real trainer
 * and probes plug in from `bench_phases.ts`. What decides a re-run is in `cell_plan.ts`: a
 * finished cell is skipped only when its record was computed by the same code (source hash),
 * engine and libraries as this run would use.
 *
 * Nothing is lost on a kill: a record is written atomically once its cell is complete, and a
 * pretraining is marked finished (`pretrain_done.json`, atomically, with its identity and
 * provenance) only after the trainer returned; until then the trainer's checkpoints carry it.
 *
 * @module
 */
import { type CellIdentity, cellIdentity, decide, type Decision, type RunContext } from "./cell_plan.ts";
import { deviceInfo, engineLabel, isCi, peakRssBytes, runtimeVersions } from "./provenance.ts";
import {
  type LossCurves,
  type OutdatedRecordError,
  type ProbeResult,
  readRunRecords,
  type ResolvedData,
  RUN_RECORD_SCHEMA_VERSION,
  type RunRecord,
  writeRunRecord,
} from "./run_record.ts";
import { type Machine, pretrainCell } from "./pretrain_cell.ts";
import { type Cell, type DataSpec, type ProbeName, probeTask } from "./suite.ts";
import type { ProbeStatus } from "../eval/probes.ts";

export { cellIdentity, type RunContext } from "./cell_plan.ts";
export { PretrainDone } from "./pretrain_cell.ts";

/** What the trainer reports back. */
export interface PretrainOutcome {
  steps: number;
  imagesSeen: number;
  lossCurve: { step: number; loss: number }[];
  /** Every logged loss component (the trainer's log.jsonl). */
  curves?: LossCurves;
  imagesPerSec: number | null;
  resumedFromStep: number | null;
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
  /** Released weights: the file evaluated. */
  checkpoint?: { name: string; sha256: string; format: string };
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
  /** What computes the numbers of this run: code versions, engines, decoder. */
  context: RunContext;
  /** Keep a finished cell computed otherwise when its record's commit starts with this (`--reuse-from`). */
  reuseFrom?: string | null;
  /** Only decide and report what each cell would do (`--plan`): nothing runs, nothing is written. */
  plan?: boolean;
  log?: (line: string) => void;
}

export interface CellReport {
  cell: Cell;
  status: "done" | "skipped" | "reused" | "failed" | "planned";
  recordPath: string | null;
  record: RunRecord | null;
  /** The cell's identities (absent when they could not be computed). */
  identity?: CellIdentity;
  /** What was (or, with `plan`, would be) done and why. */
  decision?: Decision;
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

/** Run one cell end to end and write its record; returns the record's path and the record. */
async function runCell(
  cell: Cell,
  id: CellIdentity,
  phases: BenchPhases,
  resolve: (spec: DataSpec) => Promise<ResolvedData>,
  opts: RunCellsOptions,
  machine: Machine,
  log: (line: string) => void,
): Promise<{ path: string; record: RunRecord }> {
  const t0 = performance.now();
  const pre = cell.pretrain && id.pretrainHash ? await pretrainCell(cell, id, phases, opts, machine, log) : null;
  const startedAt = new Date().toISOString();
  const t1 = performance.now();
  const ev = await phases.evaluate({ cell, checkpointDir: pre?.checkpointDir ?? null, resolveData: resolve, log });
  const evalSec = (performance.now() - t1) / 1000;
  const finishedAt = new Date().toISOString();
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
  const read = new Map<string, ResolvedData>();
  for (const d of [cell.pretrain?.data, ...cell.protocol.probes.flatMap((p) => [p.train, p.eval])]) {
    if (d) read.set(JSON.stringify([d.kind, d.root, d.split]), await resolve(d));
  }
  const c = opts.context;
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
      ...(cell.subject.kind === "released" ? { published: cell.subject.published } : {}),
      ...(ev.checkpoint ? { checkpoint: ev.checkpoint } : {}),
    },
    seed: cell.seed,
    data: [...read.values()],
    protocol: {
      id: cell.protocol.id,
      version: cell.protocol.version,
      evalProtocol: cell.protocol.evalProtocol,
      hash: id.protocolHash,
    },
    config: { resolved: ev.resolvedConfig, runtime: { ...cell.runtime } },
    results,
    metrics: Object.assign({}, ...results.map((r) => r.metrics)),
    pretraining: pre?.pretraining ?? null,
    timings: {
      pretrainSec: pre?.sec ?? 0,
      extractSec: ev.extractSec,
      probeSec: Math.max(0, evalSec - ev.extractSec),
      totalSec: (performance.now() - t0) / 1000,
    },
    peakRssBytes: peakRssBytes(),
    provenance: {
      code: c.code.evaluation,
      engine: c.engine,
      decoder: c.decoder,
      ...machine,
      startedAt,
      finishedAt,
      featureEngine: c.featureEngine,
      runtime: runtimeVersions(),
      reuse: null,
    },
  };
  const path = `${opts.recordsDir}/${recordFileName(cell, id.hash)}`;
  await writeRunRecord(path, record);
  return { path, record };
}

/** Run `cells` in order; a cell whose record was computed as this run would compute it is skipped. */
export async function runCells(cells: Cell[], phases: BenchPhases, opts: RunCellsOptions): Promise<CellReport[]> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const resolve = dataResolver(phases);
  const existing = new Map<string, { path: string; record: RunRecord }>();
  const onOutdated = (e: OutdatedRecordError) => log(`${e.path}: record of schema v${e.version}: its cell re-runs`);
  for (const r of await readRunRecords(opts.recordsDir, { onOutdated })) existing.set(r.record.identity.hash, r);
  const machine: Machine = { device: await deviceInfo(), ci: isCi() };
  const c = opts.context;
  log(
    `bench: code ${c.code.evaluation.commit.slice(0, 10)}${c.code.evaluation.dirty ? " (dirty)" : ""}, ` +
      `evaluation sources ${c.code.evaluation.sourceHash.slice(0, 12)}, pretraining sources ` +
      `${c.code.pretraining.sourceHash.slice(0, 12)}; pretraining ${engineLabel(c.trainEngine)}, features ${
        engineLabel(c.featureEngine)
      }, probes ${engineLabel(c.engine)}`,
  );
  // Resolve every dataset first (generating the synthetic one, checking each strictly): a missing
  // folder or a data problem stops the run here with one clear message instead of failing every cell.
  for (const cell of cells) {
    for (const d of [cell.groupData, cell.pretrain?.data, ...cell.protocol.probes.flatMap((p) => [p.train, p.eval])]) {
      if (d) await resolve(d);
    }
  }

  const reports: CellReport[] = [];
  for (const [i, cell] of cells.entries()) {
    const tag = `[${i + 1}/${cells.length}] ${cell.name} ${cell.model.preset} ${cell.groupData.name} ` +
      `${cell.pretrain ? `${cell.pretrain.steps}x${cell.pretrain.batchSize}` : "no-pretraining"} seed ${cell.seed}`;
    const cellLog = (line: string) => log(line.startsWith("  ") ? line : `${tag}: ${line}`);
    let id: CellIdentity | undefined;
    try {
      id = await cellIdentity(cell, resolve, c);
      const decision = await decide(id, existing.get(id.hash), c, opts.reuseFrom ?? null);
      const why = decision.kind === "skip" ? "" : decision.reasons.map((r) => `\n    ${r}`).join("");
      if (opts.plan) {
        const what = decision.kind === "skip"
          ? `skip, done in ${decision.path}`
          : decision.kind === "reuse"
          ? `reuse ${decision.path} (computed by ${decision.record.provenance.code.commit.slice(0, 10)})`
          : decision.previous
          ? `re-run (identity ${id.hash.slice(0, 12)})`
          : `run (identity ${id.hash.slice(0, 12)})`;
        cellLog(`${what}${id.pretrainHash ? `, pretraining ${id.pretrainHash.slice(0, 12)}` : ""}${why}`);
        reports.push({ cell, status: "planned", recordPath: null, record: null, identity: id, decision });
        continue;
      }
      if (decision.kind === "skip") {
        cellLog(`skip, done in ${decision.path}`);
        reports.push({
          cell,
          status: "skipped",
          recordPath: decision.path,
          record: decision.record,
          identity: id,
          decision,
        });
        continue;
      }
      if (decision.kind === "reuse") {
        const record: RunRecord = {
          ...decision.record,
          provenance: {
            ...decision.record.provenance,
            reuse: {
              fromCommit: decision.record.provenance.code.commit,
              acceptedFor: decision.key,
              acceptedBy: c.code.evaluation,
              acceptedAt: new Date().toISOString(),
              reasons: decision.reasons,
            },
          },
        };
        await writeRunRecord(decision.path, record);
        existing.set(id.hash, { path: decision.path, record });
        cellLog(`reused (--reuse-from) from commit ${record.provenance.code.commit.slice(0, 10)}${why}`);
        reports.push({ cell, status: "reused", recordPath: decision.path, record, identity: id, decision });
        continue;
      }
      cellLog(`${decision.previous ? "re-run" : "start"} (identity ${id.hash.slice(0, 12)})${why}`);
      const { path, record } = await runCell(cell, id, phases, resolve, opts, machine, cellLog);
      existing.set(id.hash, { path, record });
      const mains = record.results.map((r) => `${r.mainScore}=${r.metrics[r.mainScore].toFixed(4)}`).join(" ");
      cellLog(`done in ${record.timings.totalSec.toFixed(1)}s ${mains} -> ${path}`);
      reports.push({ cell, status: "done", recordPath: path, record, identity: id, decision });
    } catch (err) {
      const message = (err as Error).message;
      cellLog(`FAILED: ${message}`);
      reports.push({ cell, status: "failed", recordPath: null, record: null, identity: id, error: message });
    }
  }
  return reports;
}
