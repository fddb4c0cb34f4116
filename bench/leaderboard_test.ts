/**
 * Leaderboard: sharded runs merge to exactly the unsharded leaderboard; differing protocols are
 * refused; the tie rule and baseline comparisons give known answers.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runCells } from "./cell_runner.ts";
import { FAKE_SUITE, fakeContext, fakePhases, runFakeCells } from "./fake_phases.ts";
import { buildLeaderboard } from "./leaderboard_build.ts";
import { writeLeaderboard } from "./leaderboard.ts";
import { Leaderboard } from "./leaderboard_schema.ts";
import { leaderboardMarkdown } from "./leaderboard_markdown.ts";
import { readRunRecords, type RunRecord } from "./run_record.ts";
import { expandSuite, selectShard, Suite } from "./suite.ts";

const quiet = { log: () => {}, context: fakeContext() };

Deno.test("the leaderboard of two shards' records equals the unsharded run's, byte for byte", async () => {
  const root = await Deno.makeTempDir({ prefix: "bench_lb_test_" });
  const cells = expandSuite(Suite.parse(FAKE_SUITE));
  await runCells(cells, fakePhases().phases, {
    recordsDir: `${root}/all/runs`,
    checkpointsDir: `${root}/c1`,
    ...quiet,
  });
  for (const i of [1, 2]) {
    const shard = selectShard(cells, { index: i, count: 2 });
    await runCells(shard, fakePhases().phases, {
      recordsDir: `${root}/merged/runs/shard${i}`,
      checkpointsDir: `${root}/c${i + 1}`,
      ...quiet,
    });
  }
  const a = await writeLeaderboard(`${root}/all/runs`, `${root}/all`);
  const b = await writeLeaderboard(`${root}/merged/runs`, `${root}/merged`);
  assert.deepEqual(b, a);
  for (const f of ["leaderboard.json", "LEADERBOARD.md", "leaderboard.html"]) {
    assert.equal(await Deno.readTextFile(`${root}/merged/${f}`), await Deno.readTextFile(`${root}/all/${f}`), f);
  }
  Leaderboard.parse(JSON.parse(await Deno.readTextFile(`${root}/all/leaderboard.json`)));
  assert.equal(a.rows.length, 5); // one row per subject, seeds merged
  for (const r of a.rows) assert.deepEqual(r.seeds, [0, 1]);
  await Deno.remove(root, { recursive: true });
});

/**
 * knn/top1 by subject for seeds 0 and 1: capi [0.50, 0.60], mae [0.55, 0.58] (inside capi's range:
 * a tie), random_init.capi [0.20, 0.21] (clearly below), raw_pixels [0.70, 0.72] (best).
 */
const KNN_BY_SEED: Record<string, [number, number]> = {
  capi: [0.5, 0.6],
  mae: [0.55, 0.58],
  "random_init.capi": [0.2, 0.21],
  "random_init.mae": [0.3, 0.31],
  raw_pixels: [0.7, 0.72],
};

async function fakeRecords(): Promise<{ path: string; record: RunRecord }[]> {
  const root = await Deno.makeTempDir({ prefix: "bench_lb_test_" });
  await runFakeCells(root);
  const records = await readRunRecords(`${root}/runs`);
  await Deno.remove(root, { recursive: true });
  return records;
}

Deno.test("records of one group with a differing protocol version or content are refused, naming both files", async () => {
  const records = await fakeRecords();
  const changed = structuredClone(records[3]);
  changed.record.protocol = { ...changed.record.protocol, version: 2 };
  changed.record.identity.hash = "f".repeat(64);
  assert.throws(
    () => buildLeaderboard([...records.slice(0, 3), changed]),
    new RegExp(`refusing to merge .*${records[0].path}.*fake\\.protocol v1.*${changed.path}.*fake\\.protocol v2`),
  );
  changed.record.protocol = { ...records[0].record.protocol, hash: "e".repeat(64) };
  assert.throws(() => buildLeaderboard([...records.slice(0, 3), changed]), /refusing to merge/);
});

Deno.test("records with another protocol id never merge into the same rows: they form their own group", async () => {
  const records = await fakeRecords();
  const other = records.map((e) => {
    const c = structuredClone(e);
    c.record.protocol = { ...c.record.protocol, id: "fake.other" };
    c.record.identity.hash = c.record.identity.hash.replace(/^./, "0");
    return c;
  });
  const lb = buildLeaderboard([...records, ...other]);
  assert.equal(lb.rows.length, 10);
  assert.deepEqual([...new Set(lb.rows.map((r) => r.group.split(" | ")[2]))], [
    "fake.other v1 (cpu protocol)",
    "fake.protocol v1 (cpu protocol)",
  ]);
  for (const r of lb.rows) assert.equal(r.seeds.length, 2);
});

Deno.test("marks: overlapping seed ranges are ties, separated ones are ranked, one seed is never ranked", async () => {
  const records = await fakeRecords();
  // knn/top1 per subject and seed set by hand (KNN_BY_SEED).
  for (const { record } of records) record.metrics["knn/top1"] = KNN_BY_SEED[record.row.subject][record.seed];
  const lb = buildLeaderboard(records);
  const mark = (s: string) => lb.rows.find((r) => r.subject === s)!.metrics["knn/top1"];
  assert.equal(mark("raw_pixels").mark, "best");
  assert.equal(mark("capi").mark, "below");
  assert.deepEqual(mark("capi").versus, { "random_init.capi": "above", raw_pixels: "below" });
  assert.deepEqual(mark("mae").versus, { "random_init.mae": "above", raw_pixels: "below" });
  assert.ok(Math.abs(mark("capi").std - Math.sqrt(0.005)) < 1e-12);
  // Move raw pixels to [0.58, 0.60]: still the best mean, but capi's and mae's ranges reach it.
  for (const { record } of records) if (record.row.subject === "raw_pixels") record.metrics["knn/top1"] -= 0.12;
  const lb2 = buildLeaderboard(records);
  const marks = Object.fromEntries(lb2.rows.map((r) => [r.subject, r.metrics["knn/top1"].mark]));
  assert.equal(marks.capi, "tied_best");
  assert.equal(marks.mae, "tied_best");
  assert.equal(marks.raw_pixels, "best");
  assert.equal(marks["random_init.capi"], "below");
  const md = leaderboardMarkdown(lb2);
  assert.match(md, /seed ranges overlap/);
  assert.match(md, /no pretrained method is above all its baselines/);
  const oneSeed = buildLeaderboard(records.filter((r) => r.record.seed === 0));
  assert.ok(oneSeed.rows.every((r) => Object.values(r.metrics).every((m) => m.mark === "no_ranking")));
});

Deno.test("a probe that did not converge or predicts one class is shown as not measured and never ranked", async () => {
  const records = await fakeRecords();
  for (const { record } of records) {
    record.metrics["knn/top1"] = KNN_BY_SEED[record.row.subject][record.seed];
    const knn = record.results.find((p) => p.probe === "knn")!;
    knn.metrics["knn/top1"] = record.metrics["knn/top1"];
    // raw pixels predicts one class on seed 1; capi's seed-0 run did not converge.
    if (record.row.subject === "raw_pixels" && record.seed === 1) knn.status.constantPrediction = true;
    if (record.row.subject === "capi" && record.seed === 0) knn.status.converged = false;
  }
  const lb = buildLeaderboard(records);
  const stats = (s: string) => lb.rows.find((r) => r.subject === s)!.metrics["knn/top1"];
  assert.equal(stats("raw_pixels").mark, "not_measured");
  assert.deepEqual(stats("raw_pixels").flags, ["constant prediction (seed 1)"]);
  assert.deepEqual(stats("capi").flags, ["not converged (seed 0)"]);
  assert.deepEqual(stats("capi").versus, {}, "a flagged number is compared with nothing");
  // With raw pixels out, mae (0.565) is the best measured row; the flagged rows keep their values in the JSON.
  assert.equal(stats("mae").mark, "best");
  // ... and nothing can be said against the flagged raw-pixels baseline: not "above all baselines".
  assert.deepEqual(stats("mae").versus, { "random_init.mae": "above", raw_pixels: "not_measured" });
  assert.deepEqual(stats("raw_pixels").values, [0.7, 0.72]);
  const md = leaderboardMarkdown(lb);
  assert.match(md, /\| raw_pixels \| none \| 0, 1 \| not measured: constant prediction \(seed 1\) \|/);
  assert.match(md, /not measured: not converged \(seed 0\)/);
  assert.doesNotMatch(md, /70\.0 ±/, "a flagged number is not shown as a measurement");
  assert.match(md, /\| mae \|.*baseline not measured: knn\/top1/);
  assert.doesNotMatch(
    lb.notes.join(" "),
    /mae on knn\/top1/,
    "no 'above every baseline' verdict against a flagged one",
  );
});

Deno.test("duplicate records of one identity collapse to one", async () => {
  const records = await fakeRecords();
  const dup = { path: "zz/dup.json", record: structuredClone(records[0].record) };
  assert.deepEqual(buildLeaderboard([...records, dup]), buildLeaderboard(records));
});
