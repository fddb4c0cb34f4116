/**
 * Run records: strict validation that names the offending key, and the Hugging Face
 * `model-index` mapping (task, dataset, metric type/value).
 *
 * @module
 */
import assert from "node:assert/strict";
import { FAKE_SUITE, runFakeCells } from "./fake_phases.ts";
import { parseRunRecord, toModelIndex } from "./run_record.ts";

async function oneRecord() {
  const root = await Deno.makeTempDir({ prefix: "bench_record_test_" });
  const [report] = await runFakeCells(root, FAKE_SUITE, 1);
  await Deno.remove(root, { recursive: true });
  return report.record!;
}

Deno.test("parseRunRecord rejects unknown keys and names the file and the key", async () => {
  const r = await oneRecord();
  assert.throws(
    () => parseRunRecord("x/rec.json", { ...r, timings: { ...r.timings, gpuSec: 1 } }),
    /'x\/rec\.json' is not a valid run record[\s\S]*gpuSec[\s\S]*timings/,
  );
  assert.throws(
    () => parseRunRecord("y.json", { ...r, schemaVersion: 1 }),
    /^OutdatedRecordError: 'y\.json' is a run record of schema v1; this code reads v3: run `deno task bench` to recompute its cell, or move the file away$/,
  );
  // A probe result without its status (a v2 record) is not a valid v3 record.
  const { status: _, ...bare } = r.results[0];
  assert.throws(() => parseRunRecord("z.json", { ...r, results: [bare, ...r.results.slice(1)] }), /status/);
});

Deno.test("toModelIndex maps each probe to an HF model-index result", async () => {
  const r = await oneRecord();
  const [entry] = toModelIndex(r);
  assert.equal(entry.name, "vit_fake.capi.capi_fake-imagenet_seed0");
  assert.deepEqual(entry.results.map((x) => x.task.type), ["image-classification", "image-segmentation"]);
  const knn = entry.results[0];
  assert.deepEqual(knn.dataset, { name: "fake-imagenet", type: "imagenet", split: "val" });
  const top1 = knn.metrics.find((m) => m.name === "knn/top1")!;
  assert.equal(top1.type, "top1");
  assert.equal(top1.value, r.metrics["knn/top1"]);
  assert.equal(top1.verified, false);
});
