/**
 * The leaderboard file (`results/leaderboard.json`): zod is its single source of truth, and
 * its JSON Schema under `results/schema/` is generated from here (`json_schemas.ts`).
 *
 * One row per subject x model x pretraining data x budget, with mean, std, min, max and the
 * per-seed values of every metric. Marks never rank noise: a row is `tied_best` when its seed
 * range overlaps the best row's, and each pretrained row says whether it is above, tied with
 * or below each baseline (random init of its own encoder, raw pixels) beyond the seed spread.
 *
 * @module
 */
import { z } from "zod";

export const LEADERBOARD_SCHEMA_VERSION = 2;

export const MARKS = ["best", "tied_best", "below", "no_ranking", "not_measured"] as const;
export const VERSUS = ["above", "tie", "below", "not_measured"] as const;

export const MetricStats = z.strictObject({
  mean: z.number(),
  std: z.number().nonnegative().describe("sample std over seeds (n-1); 0 for one seed"),
  min: z.number(),
  max: z.number(),
  n: z.number().int().positive(),
  values: z.array(z.number()).describe("one per seed, in the row's seed order"),
  higherIsBetter: z.boolean(),
  mark: z.enum(MARKS).describe(
    "best: highest mean in its group; tied_best: seed range overlaps the best's; below: clearly worse; " +
      "no_ranking: fewer than 2 seeds; not_measured: some seed's probe did not converge or predicted one class " +
      "everywhere (see flags), so the numbers are shown as such and never ranked",
  ),
  flags: z.array(z.string()).describe(
    "why the metric is not a measurement, per seed: 'not converged (seed 1)', 'constant prediction (seeds 0, 1)'",
  ),
  versus: z.record(z.string(), z.enum(VERSUS)).describe(
    "pretrained rows: comparison with each baseline row of the group; 'tie' when seed ranges overlap; " +
      "'not_measured' when the baseline's number is flagged (so nothing can be said)",
  ),
});
export type MetricStats = z.infer<typeof MetricStats>;

/** A curve's value at one step: mean and sample std over the row's seeds. */
export const CurvePoint = z.strictObject({ step: z.number().int(), mean: z.number(), std: z.number(), n: z.number() });

export const LeaderboardRow = z.strictObject({
  group: z.string().describe("model | pretraining data | protocol: rows are only compared within a group"),
  subject: z.string(),
  subjectKind: z.enum(["pretrained", "random_init", "raw_pixels", "released"]),
  method: z.string().nullable(),
  model: z.string(),
  arch: z.string().nullable(),
  data: z.strictObject({ name: z.string(), kind: z.string(), fileListHash: z.string() }),
  budget: z.strictObject({
    steps: z.number().int().nonnegative(),
    batchSize: z.number().int().nonnegative(),
    imagesSeen: z.number().int().nonnegative(),
  }),
  protocol: z.strictObject({
    id: z.string(),
    version: z.number().int(),
    evalProtocol: z.string().describe("paper | cpu"),
    hash: z.string(),
  }),
  published: z.record(z.string(), z.number()).optional().describe(
    "released weights: the authors' numbers by metric key (fractions), shown beside ours",
  ),
  seeds: z.array(z.number().int()),
  mainScores: z.array(z.string()).describe("the protocol's main metric per probe"),
  metrics: z.record(z.string(), MetricStats),
  lossCurve: z.array(CurvePoint).describe(
    "pretraining loss averaged over seeds (at most 200 points); empty for baselines",
  ),
  curves: z.record(z.string(), z.array(CurvePoint)).describe(
    "every logged loss component (records' pretraining.curves: CAPI loss, loss_capi, loss_clustering, " +
      "target_entropy; MAE/SimMIM loss) averaged over seeds at the steps every seed logged (at most 200 points " +
      "each); empty for baselines and for records without curves",
  ),
  provenance: z.strictObject({
    commits: z.array(z.string()).describe("commits whose code computed the records (pretraining and evaluation)"),
    dirty: z.boolean().describe("any record came from result sources with uncommitted changes"),
    engines: z.array(z.string()).describe(
      "engines as they ran, pretraining and probes, e.g. 'tfjs wasm (fallback from blas)'",
    ),
    featureEngines: z.array(z.string()).describe("what extracted the features, e.g. 'ort cpu'"),
    sourceHashes: z.array(z.string()).describe("evaluation source hashes of the records (bench/code_version.ts)"),
    reusedFrom: z.array(z.string()).describe("commits of records kept by `--reuse-from` instead of re-run"),
    devices: z.array(z.string()),
    ci: z.boolean().describe("every record was produced by CI"),
    records: z.array(z.string()).describe("identity hashes of the merged records"),
  }),
});
export type LeaderboardRow = z.infer<typeof LeaderboardRow>;

export const Leaderboard = z.strictObject({
  schemaVersion: z.literal(LEADERBOARD_SCHEMA_VERSION),
  kind: z.literal("mim-bench-leaderboard"),
  rows: z.array(LeaderboardRow),
  notes: z.array(z.string()).describe("how to read the marks; verdicts per group"),
});
export type Leaderboard = z.infer<typeof Leaderboard>;
