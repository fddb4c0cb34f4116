/**
 * `deno task eval` end to end, as a subprocess on a checkpoint that `deno task pretrain` wrote:
 * strict data (an unlabelled validation image fails the run naming the file; `--allow-missing`
 * skips it, prints and records the count), features on the ort engine from the run directory.
 *
 * @module
 */
import assert from "node:assert/strict";
import { copy } from "../datasets/testdata/copy_tree.ts";
import { ensureSynthetic } from "../datasets/synthetic.ts";
import { runTask } from "./run_task.ts";

/** An ImageNet-layout folder whose flat val has a label file that misses one image. */
async function unlabelledImagenet(tmp: string): Promise<{ root: string; unlabelled: string }> {
  const synth = await ensureSynthetic({
    root: `${tmp}/synth`,
    config: { trainPerClass: 3, valPerClass: 1, segTrain: 1, segVal: 1 },
  });
  const root = `${tmp}/imagenet`;
  await copy(`${synth}/imagenet/train`, `${root}/train`);
  await Deno.mkdir(`${root}/val`);
  const files: string[] = [];
  for (const d of Deno.readDirSync(`${synth}/imagenet/val`)) {
    for (const f of Deno.readDirSync(`${synth}/imagenet/val/${d.name}`)) {
      await Deno.copyFile(`${synth}/imagenet/val/${d.name}/${f.name}`, `${root}/val/${f.name}`);
      files.push(f.name);
    }
  }
  files.sort();
  const rows = files.slice(1).map((f) => `${f.replace(".JPEG", "")},${f.replace(/_\d+\.JPEG$/, "")} 1 2 3 4`);
  await Deno.writeTextFile(`${root}/LOC_val_solution.csv`, ["ImageId,PredictionString", ...rows].join("\n") + "\n");
  return { root, unlabelled: `${root}/val/${files[0]}` };
}

Deno.test("deno task eval: an unlabelled image fails naming it; --allow-missing skips, prints and records it", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "eval_test_" });
  try {
    const { root, unlabelled } = await unlabelledImagenet(tmp);
    const pre = await runTask("bench/pretrain.ts", [
      ...["--method", "capi", "--preset", "tiny", "--data", "procedural", "--steps", "1", "--batch", "4"],
      ...["--out", "run"],
    ], tmp);
    assert.equal(pre.code, 0, pre.stderr);
    const args = ["--checkpoint", "run/checkpoint.safetensors", "--probe", "knn", "--data", `imagenet:${root}`];
    const strict = await runTask("bench/eval.ts", [...args, "--no-cache", "--out", "strict.json"], tmp);
    assert.equal(strict.code, 1, strict.stderr);
    assert.ok(strict.stderr.includes(`\n  ${unlabelled}: no label in ${root}/LOC_val_solution.csv`), strict.stderr);
    assert.ok(strict.stderr.includes("pass --allow-missing to skip them"), strict.stderr);
    assert.doesNotMatch(strict.stderr, /^\s+at /m);
    await assert.rejects(Deno.stat(`${tmp}/strict.json`), Deno.errors.NotFound);

    const lenient = await runTask("bench/eval.ts", [
      ...["--checkpoint", "run", "--probe", "knn", "--data", `imagenet:${root}`, "--engine", "ort"],
      ...["--no-cache", "--out", "ok.json", "--allow-missing"],
    ], tmp);
    assert.equal(lenient.code, 0, lenient.stderr);
    assert.ok(lenient.stderr.includes("skipping 1 problem(s) (--allow-missing)"), lenient.stderr);
    assert.match(lenient.stdout, /^knn\/top1 \d\.\d{4}$/m);
    assert.match(lenient.stdout, /^status protocol=cpu converged=n\/a constant_prediction=(true|false)/m);
    const record = JSON.parse(await Deno.readTextFile(`${tmp}/ok.json`));
    assert.deepEqual(record.data.skipped, { train: 0, val: 1 });
    assert.equal(record.data.val.n, 9);
    assert.equal(record.provenance.featureEngine.engine, "ort");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
