/**
 * The `released` suite: its cells (every hub entry plus the raw-pixels floor) and what their
 * records and leaderboard rows carry (the authors' numbers beside ours, the evaluated file),
 * through the harness with fake phases (no models, no data).
 */
import assert from "node:assert/strict";
import { runCells } from "../cell_runner.ts";
import { fakeContext, fakePhases } from "../fake_phases.ts";
import { buildLeaderboard } from "../leaderboard_build.ts";
import { leaderboardMarkdown } from "../leaderboard_markdown.ts";
import { expandSuite, Suite } from "../suite.ts";
import { loadSuite } from "./mod.ts";
import { RELEASED_WEIGHTS, releasedSuite } from "./released.ts";

Deno.test("released suite: every hub entry and raw pixels, with the CAPI README's numbers", () => {
  const cells = expandSuite(loadSuite("released"));
  assert.deepEqual(cells.map((c) => c.name), [...RELEASED_WEIGHTS.map((w) => w.name), "raw_pixels"]);
  assert.ok(cells.every((c) => c.pretrain === null), "nothing is pretrained");
  const published = Object.fromEntries(RELEASED_WEIGHTS.map((w) => [w.name, w.published]));
  assert.deepEqual(published.capi_vitl14_in1k, { "attentive/top1": 0.829, "seg_knn/miou": 0.292 });
  assert.deepEqual(published.capi_vitl14_in22k, { "attentive/top1": 0.836, "seg_knn/miou": 0.297 });
  assert.deepEqual(published.capi_vitl14_lvd, { "attentive/top1": 0.838, "seg_knn/miou": 0.321 });
  assert.deepEqual(published.capi_vitl14_p205, { "attentive/top1": 0.792, "seg_knn/miou": 0.352 });
  assert.deepEqual(cells[0].protocol.probes.map((p) => p.probe), [
    "knn",
    "linear",
    "attentive",
    "seg_knn",
    "seg_logreg",
  ]);
});

Deno.test("released rows: records carry published numbers outside the identity; the leaderboard shows them", async () => {
  const weights = RELEASED_WEIGHTS.slice(0, 1);
  const suite = Suite.parse(
    releasedSuite({ weights, imagenetRoot: "/in", ade20kRoot: "/ade", rawPixelsPreset: "vit_l" }),
  );
  const dir = await Deno.makeTempDir();
  try {
    const { phases } = fakePhases();
    const [rep] = await runCells(expandSuite(suite).slice(0, 1), phases, {
      recordsDir: `${dir}/a`,
      checkpointsDir: `${dir}/ck`,
      log: () => {},
      context: fakeContext(),
    });
    assert.equal(rep.status, "done", rep.error ?? "");
    const rec = rep.record!;
    assert.deepEqual([rec.row.subject, rec.row.subjectKind, rec.row.method, rec.row.model], [
      "capi_vitl14_in1k",
      "released",
      "capi",
      "vit_l",
    ]);
    assert.deepEqual(rec.row.published, { "attentive/top1": 0.829, "seg_knn/miou": 0.292 });
    assert.equal(JSON.stringify(rec.identity.settings).includes("0.829"), false, "published numbers are not hashed");

    // Other published numbers, same identity: the finished cell is skipped.
    const edited = Suite.parse(releasedSuite({
      weights: [{ ...weights[0], published: { "attentive/top1": 0.5 } }],
      imagenetRoot: "/in",
      ade20kRoot: "/ade",
      rawPixelsPreset: "vit_l",
    }));
    const [again] = await runCells(expandSuite(edited).slice(0, 1), phases, {
      recordsDir: `${dir}/a`,
      checkpointsDir: `${dir}/ck`,
      log: () => {},
      context: fakeContext(),
    });
    assert.equal(again.status, "skipped");

    const lb = buildLeaderboard([{ path: rep.recordPath!, record: rec }]);
    assert.deepEqual(lb.rows[0].published, rec.row.published);
    assert.match(leaderboardMarkdown(lb), /\(published 82\.9\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
