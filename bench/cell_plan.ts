/**
 * What a cell is, what computes it, and whether a finished record still stands for it.
 *
 * Two hashes, kept apart on purpose:
 * - the cell's identity (`cellIdentity().hash`): the settings that define the result (subject,
 *   model, pretraining data and budget, protocol, seed, data file lists; STYLE rule 4). It names
 *   the record and groups seeds on the leaderboard. Runtime knobs never enter it.
 * - the computation (`computationKey`): what computed the numbers. The pretraining identity
 *   (`pretrainHash`: its settings plus the pretraining code's source hash, the engine and the
 *   image decoder), the evaluation code's source hash, the tfjs engine, the feature-extraction
 *   engine and the decoder. Engines count by engine, device and library versions.
 *
 * A finished record is skipped only when both match; a record computed by other code or another
 * engine (`tensorflow` against a `blas` record, a fallback `wasm` against `blas`) re-runs, unless
 * `--reuse-from COMMIT` names the commit that computed it: then it is kept and the record says so.
 * Checkpoints live in one folder per pretraining identity, so a checkpoint is reused exactly
 * when settings, pretraining code, engine and libraries all match, by any suite or protocol.
 *
 * @module
 */
import type { EngineDescription } from "../model/train_engine.ts";
import type { CodeVersion } from "./code_version.ts";
import { identityHash } from "./identity.ts";
import { engineKey, engineLabel } from "./provenance.ts";
import type { ResolvedData, RunRecord } from "./run_record.ts";
import type { Cell, DataSpec } from "./suite.ts";

/** What computes the numbers of this run (measured once per run, before any cell). */
export interface RunContext {
  code: { pretraining: CodeVersion; evaluation: CodeVersion };
  /** What pretrains: the `ort` engine on its execution provider, or tfjs on its backend. */
  trainEngine: EngineDescription;
  /** The tfjs engine as initialised: the probe heads train on it. */
  engine: EngineDescription;
  /** What extracts features: the same engine as pretraining. */
  featureEngine: EngineDescription;
  /** Image decoder versions (sharp, libvips): they decode every input. */
  decoder: Record<string, string>;
}

/**
 * A dataset's identity: where it lives is not part of it, its file list is, and how many
 * problems `--allow-missing` skipped (absent when none, so clean data keeps its identity).
 */
const dataIdentity = (d: ResolvedData) => ({
  kind: d.kind,
  split: d.split,
  fileListHash: d.fileListHash,
  skipped: d.skipped.count > 0 ? d.skipped.count : undefined,
});

export interface CellIdentity {
  /** The result-defining settings (what `hash` covers). */
  settings: Record<string, unknown>;
  hash: string;
  /** The pretraining identity: settings plus the code, engine and decoder that compute it. */
  pretrainIdentity: Record<string, unknown> | null;
  pretrainHash: string | null;
  protocolHash: string;
}

/** Whether pretraining runs the global batch as several micro-batches of `runtime.batchPerDevice`. */
function microBatched(cell: Cell): boolean {
  const m = cell.runtime.batchPerDevice;
  return cell.pretrain !== null && m !== undefined && m < cell.pretrain.batchSize;
}

/** The identities of a cell under `ctx`. */
export async function cellIdentity(
  cell: Cell,
  resolve: (spec: DataSpec) => Promise<ResolvedData>,
  ctx: RunContext,
): Promise<CellIdentity> {
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
      // Micro-batches change results (CAPI draws its stochastic-depth subsets per micro-batch, as the
      // official code does per GPU; sums round differently), so a split batch is part of the identity.
      ...(microBatched(cell) ? { batchPerDevice: cell.runtime.batchPerDevice } : {}),
    }
    : null;
  // Published numbers are displayed, not measured: they stay out of the identity. Smoke-run limits change results.
  const subject = cell.subject.kind === "released" ? { ...cell.subject, published: undefined } : cell.subject;
  const { limitTrain, limitVal } = cell.runtime;
  const limits = limitTrain || limitVal ? { limits: { train: limitTrain ?? null, val: limitVal ?? null } } : {};
  const settings = { subject, model: cell.model, pretrain, protocol, seed: cell.seed, ...limits };
  const pretrainIdentity = pretrain
    ? {
      ...pretrain,
      computedBy: { code: ctx.code.pretraining.sourceHash, engine: engineKey(ctx.trainEngine), decoder: ctx.decoder },
    }
    : null;
  return {
    settings,
    hash: await identityHash(settings),
    pretrainIdentity,
    pretrainHash: pretrainIdentity ? await identityHash(pretrainIdentity) : null,
    protocolHash: await identityHash(protocol),
  };
}

/** The parts of a computation, taken from a record or from the current run. */
interface Computation {
  pretrainHash: string | null;
  evaluationCode: string;
  engine: EngineDescription;
  featureEngine: EngineDescription;
  decoder: Record<string, string>;
}

function recordComputation(r: RunRecord): Computation {
  const p = r.provenance;
  return {
    pretrainHash: r.identity.pretrainHash,
    evaluationCode: p.code.sourceHash,
    engine: p.engine,
    featureEngine: p.featureEngine,
    decoder: p.decoder,
  };
}

function currentComputation(id: CellIdentity, ctx: RunContext): Computation {
  return {
    pretrainHash: id.pretrainHash,
    evaluationCode: ctx.code.evaluation.sourceHash,
    engine: ctx.engine,
    featureEngine: ctx.featureEngine,
    decoder: ctx.decoder,
  };
}

/** One hash of what computed a cell's numbers (engines by engine, device and versions only). */
export function computationKey(identityHashHex: string, c: Computation): Promise<string> {
  return identityHash({
    identity: identityHashHex,
    pretrain: c.pretrainHash,
    evaluationCode: c.evaluationCode,
    engine: engineKey(c.engine),
    featureEngine: engineKey(c.featureEngine),
    decoder: c.decoder,
  });
}

function versionDiff(a: Record<string, string>, b: Record<string, string>): string {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => a[k] !== b[k]).map((k) => `${k} ${a[k] ?? "-"} -> ${b[k] ?? "-"}`).join(", ");
}

function engineDiff(what: string, a: EngineDescription, b: EngineDescription): string[] {
  if (a.engine !== b.engine || a.device !== b.device) return [`${what}: ${engineLabel(a)} -> ${engineLabel(b)}`];
  const v = versionDiff(a.versions, b.versions);
  return v ? [`${what} versions: ${v}`] : [];
}

/** Why the record's numbers were computed otherwise than this run would compute them (empty: same). */
export function staleReasons(r: RunRecord, id: CellIdentity, ctx: RunContext): string[] {
  const was = recordComputation(r), now = currentComputation(id, ctx);
  const commits = `commit ${r.provenance.code.commit.slice(0, 10)} -> ${ctx.code.evaluation.commit.slice(0, 10)}`;
  const reasons = [
    ...(was.pretrainHash !== now.pretrainHash
      ? [
        `pretraining identity changed (its code, engine or decoder): ${was.pretrainHash?.slice(0, 12)} -> ${
          now.pretrainHash?.slice(0, 12)
        }`,
      ]
      : []),
    ...(was.evaluationCode !== now.evaluationCode ? [`evaluation code changed (${commits})`] : []),
    ...engineDiff("engine", was.engine, now.engine),
    ...engineDiff("feature engine", was.featureEngine, now.featureEngine),
  ];
  const d = versionDiff(was.decoder, now.decoder);
  return d ? [...reasons, `image decoder versions: ${d}`] : reasons;
}

/** What to do with a cell. */
export type Decision =
  | { kind: "skip"; path: string; record: RunRecord }
  | { kind: "reuse"; path: string; record: RunRecord; reasons: string[]; key: string }
  | { kind: "run"; reasons: string[]; previous: string | null };

/**
 * Skip a cell whose record was computed as this run would compute it (or was accepted for this
 * computation by an earlier `--reuse-from`); reuse a stale one only when `reuseFrom` names the
 * commit that computed it; otherwise run it (`reasons` empty for a cell never run).
 */
export async function decide(
  id: CellIdentity,
  existing: { path: string; record: RunRecord } | undefined,
  ctx: RunContext,
  reuseFrom: string | null,
): Promise<Decision> {
  if (!existing) return { kind: "run", reasons: [], previous: null };
  const { path, record } = existing;
  const key = await computationKey(id.hash, currentComputation(id, ctx));
  const computed = await computationKey(id.hash, recordComputation(record));
  if (computed === key || record.provenance.reuse?.acceptedFor === key) return { kind: "skip", path, record };
  const reasons = staleReasons(record, id, ctx);
  if (reuseFrom !== null && record.provenance.code.commit.startsWith(reuseFrom)) {
    return { kind: "reuse", path, record, reasons, key };
  }
  return { kind: "run", reasons: reasons.length ? reasons : ["computation differs"], previous: path };
}
