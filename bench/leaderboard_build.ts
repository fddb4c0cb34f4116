/**
 * `buildLeaderboard(records)`: run records in, leaderboard out, deterministically.
 *
 * The output depends only on the set of records (not on file order, shards or wall times):
 * duplicate identities collapse to one, rows and metrics are sorted, and nothing time- or
 * machine-load-dependent is aggregated. Records of one group (model x pretraining data x protocol
 * id) whose protocol versions or contents differ are refused: their numbers do not measure the
 * same thing, and silently averaging them would hide a stale record.
 *
 * @module
 */
import { canonicalJson } from "./identity.ts";
import { engineLabel } from "./provenance.ts";
import type { RunRecord } from "./run_record.ts";
import {
  Leaderboard,
  LEADERBOARD_SCHEMA_VERSION,
  type LeaderboardRow,
  type MetricStats,
} from "./leaderboard_schema.ts";

const KIND_ORDER = { released: 0, pretrained: 0, random_init: 1, raw_pixels: 2 } as const;
/** Rows of models (trained here, or released weights) as opposed to the baselines. */
const isModel = (r: { subjectKind: string }) => r.subjectKind === "pretrained" || r.subjectKind === "released";
const MAX_CURVE_POINTS = 200;

export const TIE_RULE = "Marks compare means only where the seed spread allows it: a row whose min-max range " +
  "over seeds overlaps the best row's is marked tied (≈), not ranked. With 2-3 seeds the spread is itself " +
  "uncertain, so a difference inside it is noise, not a result.";

/** Code-unit order: unlike `localeCompare`, the same on every machine and locale. */
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

type Entry = { path: string; record: RunRecord };

/**
 * Rows are compared within a group: one model, one pretraining data, one protocol id. Suites with
 * different protocols (e.g. `in1k_vit_l14` and `ade20k` on the same checkpoints) form separate
 * groups; within a group every record must carry the same protocol version and hash.
 */
function groupKey(r: RunRecord): string {
  return `${r.row.model} | ${r.row.data.name}@${r.row.data.fileListHash.slice(0, 8)} | ${r.protocol.id}`;
}

function rowKey(r: RunRecord): string {
  const s = r.identity.settings as Record<string, unknown>;
  return canonicalJson([groupKey(r), r.row.subject, s.model, r.row.budget]);
}

function stats(values: number[]): { mean: number; std: number; min: number; max: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, std: Math.sqrt(variance), min: Math.min(...values), max: Math.max(...values) };
}

/** Keep one record per identity: the latest finished, then the smallest path. */
function dedupe(entries: Entry[]): Entry[] {
  const byId = new Map<string, Entry>();
  for (const e of entries) {
    const prev = byId.get(e.record.identity.hash);
    const newer = !prev || e.record.provenance.finishedAt > prev.record.provenance.finishedAt ||
      (e.record.provenance.finishedAt === prev.record.provenance.finishedAt && e.path < prev.path);
    if (newer) byId.set(e.record.identity.hash, e);
  }
  return [...byId.values()];
}

function checkProtocols(entries: Entry[]): void {
  const byGroup = new Map<string, Entry>();
  for (const e of entries) {
    const g = groupKey(e.record);
    const first = byGroup.get(g);
    if (!first) {
      byGroup.set(g, e);
      continue;
    }
    const a = first.record.protocol, b = e.record.protocol;
    if (a.id !== b.id || a.version !== b.version || a.hash !== b.hash) {
      throw new Error(
        `leaderboard: refusing to merge records of group '${g}' measured with different probe protocols: ` +
          `${first.path} has ${a.id} v${a.version} (${a.hash.slice(0, 12)}), ` +
          `${e.path} has ${b.id} v${b.version} (${b.hash.slice(0, 12)}). ` +
          `Delete the records of the stale protocol (or move them to another folder and build from separate --records folders).`,
      );
    }
  }
}

function lossCurve(records: RunRecord[]): LeaderboardRow["lossCurve"] {
  return meanCurve(records.map((r) => new Map((r.pretraining?.lossCurve ?? []).map((p) => [p.step, p.loss]))));
}

/** Per logged component, the mean curve over the records (only components every record logged). */
function componentCurves(records: RunRecord[]): LeaderboardRow["curves"] {
  const logs = records.map((r) => r.pretraining?.curves);
  if (logs.some((c) => !c)) return {};
  const names = Object.keys(logs[0]!.components).filter((k) => logs.every((c) => k in c!.components)).sort();
  const out: LeaderboardRow["curves"] = {};
  for (const k of names) {
    const curve = meanCurve(logs.map((c) => {
      const m = new Map<number, number>();
      c!.steps.forEach((s, i) => {
        const v = c!.components[k][i];
        if (v !== null) m.set(s, v);
      });
      return m;
    }));
    if (curve.length) out[k] = curve;
  }
  return out;
}

/** Mean ± std over curves at the steps all of them hold, thinned to at most MAX_CURVE_POINTS. */
function meanCurve(curves: Map<number, number>[]): LeaderboardRow["lossCurve"] {
  if (curves.length === 0 || curves.some((c) => c.size === 0)) return [];
  const steps = [...curves[0].keys()].filter((s) => curves.every((c) => c.has(s))).sort((a, b) => a - b);
  const stride = Math.max(1, Math.ceil(steps.length / MAX_CURVE_POINTS));
  return steps.filter((_, i) => i % stride === 0 || i === steps.length - 1).map((step) => {
    const s = stats(curves.map((c) => c.get(step)!));
    return { step, mean: s.mean, std: s.std, n: curves.length };
  });
}

/** The pretraining phase's provenance, when the record has one. */
const phases = (r: RunRecord) => (r.pretraining ? [r.pretraining.provenance] : []);

function buildRow(entries: Entry[]): LeaderboardRow {
  const recs = entries.map((e) => e.record).sort((a, b) => a.seed - b.seed);
  const dupSeed = recs.find((r, i) => i > 0 && r.seed === recs[i - 1].seed);
  if (dupSeed) {
    const paths = entries.filter((e) => e.record.seed === dupSeed.seed).map((e) => e.path);
    throw new Error(
      `leaderboard: two records for row '${dupSeed.row.subject}' seed ${dupSeed.seed} with ` +
        `different identities (${paths.join(", ")}); delete the stale one`,
    );
  }
  const first = recs[0];
  const metricNames = [...new Set(recs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const metrics: Record<string, MetricStats> = {};
  for (const m of metricNames) {
    const have = recs.filter((r) => m in r.metrics);
    const values = have.map((r) => r.metrics[m]);
    const hib = first.results.find((p) => m in p.higherIsBetter)?.higherIsBetter[m] ?? true;
    const flags = metricFlags(have, m);
    metrics[m] = {
      ...stats(values),
      n: values.length,
      values,
      higherIsBetter: hib,
      mark: flags.length ? "not_measured" : "no_ranking",
      flags,
      versus: {},
    };
  }
  const uniq = (xs: string[]) => [...new Set(xs)].sort();
  return {
    group: `${groupKey(first)} v${first.protocol.version} (${first.protocol.evalProtocol} protocol)`,
    subject: first.row.subject,
    subjectKind: first.row.subjectKind,
    method: first.row.method,
    model: first.row.model,
    arch: first.row.arch,
    data: { name: first.row.data.name, kind: first.row.data.kind, fileListHash: first.row.data.fileListHash },
    budget: { ...first.row.budget, imagesSeen: first.row.budget.steps * first.row.budget.batchSize },
    protocol: first.protocol,
    ...(first.row.published ? { published: first.row.published } : {}),
    seeds: recs.map((r) => r.seed),
    mainScores: uniq(first.results.map((p) => p.mainScore)),
    metrics,
    lossCurve: lossCurve(recs),
    curves: componentCurves(recs),
    provenance: {
      commits: uniq(recs.flatMap((r) => [r.provenance.code.commit, ...phases(r).map((p) => p.code.commit)])),
      dirty: recs.some((r) => r.provenance.code.dirty || phases(r).some((p) => p.code.dirty)),
      engines: uniq(recs.flatMap((r) => [r.provenance.engine, ...phases(r).map((p) => p.engine)]).map(engineLabel)),
      featureEngines: uniq(recs.map((r) => engineLabel(r.provenance.featureEngine))),
      sourceHashes: uniq(recs.map((r) => r.provenance.code.sourceHash)),
      reusedFrom: uniq(recs.flatMap((r) => (r.provenance.reuse ? [r.provenance.reuse.fromCommit] : []))),
      devices: uniq(recs.map((r) => r.provenance.device.gpu ?? r.provenance.device.cpu)),
      ci: recs.every((r) => r.provenance.ci),
      records: recs.map((r) => r.identity.hash),
    },
  };
}

/**
 * Why metric `m` of these records is not a measurement: the seeds whose probe run did not
 * converge or predicted one class everywhere (empty: a measurement).
 */
function metricFlags(recs: RunRecord[], m: string): string[] {
  const seedsWhere = (bad: (s: RunRecord["results"][number]["status"]) => boolean) =>
    recs.filter((r) => r.results.some((p) => m in p.metrics && bad(p.status))).map((r) => r.seed);
  const say = (what: string, seeds: number[]) =>
    seeds.length ? [`${what} (seed${seeds.length > 1 ? "s" : ""} ${seeds.join(", ")})`] : [];
  return [
    ...say("not converged", seedsWhere((s) => s.converged === false)),
    ...say("constant prediction", seedsWhere((s) => s.constantPrediction)),
  ];
}

/** a is better than b beyond the seed spread (+1), worse (-1) or not separable (0). */
function separate(a: MetricStats, b: MetricStats): -1 | 0 | 1 {
  const [aLo, aHi, bLo, bHi] = a.higherIsBetter ? [a.min, a.max, b.min, b.max] : [-a.max, -a.min, -b.max, -b.min];
  if (aLo > bHi) return 1;
  if (aHi < bLo) return -1;
  return 0;
}

function markGroup(rows: LeaderboardRow[]): void {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))];
  for (const m of names) {
    // Flagged numbers are not measurements: they are neither ranked nor compared.
    const have = rows.filter((r) => m in r.metrics && r.metrics[m].mark !== "not_measured");
    if (!have.length) continue;
    const sign = have[0].metrics[m].higherIsBetter ? 1 : -1;
    const best = have.reduce((a, b) => (sign * b.metrics[m].mean > sign * a.metrics[m].mean ? b : a));
    for (const r of have) {
      const s = r.metrics[m];
      if (s.n < 2 || best.metrics[m].n < 2) s.mark = "no_ranking";
      else if (r === best) s.mark = "best";
      else s.mark = separate(s, best.metrics[m]) === -1 ? "below" : "tied_best";
      if (!isModel(r)) continue;
      for (const base of rows.filter((b) => m in b.metrics && !isModel(b))) {
        if (base.subjectKind === "random_init" && base.method !== r.method) continue;
        // A flagged baseline cannot be beaten or matched: the comparison is unknown, not skipped.
        s.versus[base.subject] = base.metrics[m].mark === "not_measured"
          ? "not_measured"
          : (["below", "tie", "above"] as const)[separate(s, base.metrics[m]) + 1];
      }
    }
  }
}

/** One sentence per group saying whether any method beat its baselines beyond the seed spread. */
function verdicts(rows: LeaderboardRow[]): string[] {
  const groups = [...new Set(rows.map((r) => r.group))];
  return groups.map((g) => {
    const inGroup = rows.filter((r) => r.group === g && isModel(r));
    if (!rows.some((r) => r.group === g && !isModel(r))) {
      return `${g}: no baseline rows (random init, raw pixels) in this group yet, so nothing here says whether ` +
        `pretraining helped; run the suite's baseline cells.`;
    }
    const wins = inGroup.flatMap((r) =>
      r.mainScores.filter((m) => {
        const v = Object.values(r.metrics[m]?.versus ?? {});
        return v.length > 0 && v.every((x) => x === "above");
      }).map((m) => `${r.subject} on ${m}`)
    );
    return wins.length
      ? `${g}: beyond the seed spread, above every baseline: ${wins.join(", ")}.`
      : `${g}: no pretrained method is above all its baselines (random init, raw pixels) beyond the seed ` +
        `spread on any main metric; differences between methods here are not evidence of a ranking.`;
  });
}

/**
 * A caution per group whose records were computed by more than one version of the evaluation
 * sources or engine, or were kept by `--reuse-from` (a fresh `deno task bench` re-runs stale cells).
 */
function provenanceNotes(rows: LeaderboardRow[]): string[] {
  return [...new Set(rows.map((r) => r.group))].flatMap((g) => {
    const inGroup = rows.filter((r) => r.group === g);
    const all = (f: (r: LeaderboardRow) => string[]) => [...new Set(inGroup.flatMap(f))];
    const notes = [];
    const sources = all((r) => r.provenance.sourceHashes), engines = all((r) => r.provenance.engines);
    if (sources.length > 1 || engines.length > 1) {
      notes.push(
        `${g}: records were computed by ${sources.length} version(s) of the evaluation sources on ` +
          `${engines.join(", ")}; \`deno task bench\` re-runs the cells whose code or engine differ from its own.`,
      );
    }
    const reused = all((r) => r.provenance.reusedFrom);
    if (reused.length) {
      notes.push(
        `${g}: some records were kept from commit(s) ${reused.map((c) => c.slice(0, 10)).join(", ")} ` +
          "by --reuse-from rather than recomputed by the current code.",
      );
    }
    return notes;
  });
}

/** Build the leaderboard from run records (any order, any number of shards). */
export function buildLeaderboard(entries: Entry[]): Leaderboard {
  const unique = dedupe(entries);
  checkProtocols(unique);
  const byRow = new Map<string, Entry[]>();
  for (const e of unique) {
    const k = rowKey(e.record);
    byRow.set(k, [...(byRow.get(k) ?? []), e]);
  }
  const rows = [...byRow.values()].map(buildRow).sort((a, b) =>
    cmp(a.group, b.group) || KIND_ORDER[a.subjectKind] - KIND_ORDER[b.subjectKind] ||
    a.budget.imagesSeen - b.budget.imagesSeen || cmp(a.subject, b.subject)
  );
  for (const g of new Set(rows.map((r) => r.group))) markGroup(rows.filter((r) => r.group === g));
  return Leaderboard.parse({
    schemaVersion: LEADERBOARD_SCHEMA_VERSION,
    kind: "mim-bench-leaderboard",
    rows,
    notes: [TIE_RULE, ...verdicts(rows), ...provenanceNotes(rows)],
  });
}
