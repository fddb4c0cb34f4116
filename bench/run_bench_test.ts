/**
 * `deno task bench` as a subprocess on an ImageNet folder with an unlabelled validation image
 * and an ADE20K folder with a missing annotation: it stops before any cell, naming the file;
 * with `--allow-missing` it goes on (here `--plan`: data resolved, identities computed, nothing
 * trained) and prints the skipped count.
 *
 * @module
 */
import assert from "node:assert/strict";
import { copy } from "../datasets/testdata/copy_tree.ts";
import { ensureSynthetic } from "../datasets/synthetic.ts";
import { runTask, twoAtATime } from "./run_task.ts";

Deno.test("deno task bench: an unlabelled image or a missing annotation stops the run naming it; --allow-missing skips and counts it", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "run_bench_test_" });
  try {
    const synth = await ensureSynthetic({
      root: `${tmp}/synth`,
      config: { trainPerClass: 1, valPerClass: 1, segTrain: 1, segVal: 1 },
    });
    const root = `${tmp}/imagenet`;
    await copy(`${synth}/imagenet`, root);
    // A val image outside any class folder: in the folder layout it belongs to no class.
    const unlabelled = `${root}/val/stray.JPEG`;
    await Deno.copyFile(`${root}/train/c00_disk/c00_disk_00000.JPEG`, unlabelled);
    const ade = `${tmp}/ade`;
    await copy(`${synth}/ade20k`, ade);
    const missing = `${ade}/ADEChallengeData2016/annotations/validation/ADE_val_00000001.png`;
    await Deno.remove(missing);
    const common = ["--ep", "cpu", "--backend", "wasm", "--records", "runs", "--checkpoints", "ckpt"];
    const args = ["--suite", "in1k_vit_s", ...common];
    const env = { IMAGENET_ROOT: root, ADE20K_ROOT: ade };

    const [strict, seg] = await twoAtATime([
      () => runTask("bench/run_bench.ts", args, tmp, env),
      () => runTask("bench/run_bench.ts", ["--suite", "ade20k", ...common], tmp, env),
    ]);
    assert.equal(seg.code, 1, seg.stderr);
    assert.ok(
      seg.stderr.includes(
        `\n  ${missing}: missing annotation for ${ade}/ADEChallengeData2016/images/validation/ADE_val_00000001.jpg`,
      ),
      seg.stderr,
    );
    assert.equal(strict.code, 1, strict.stderr);
    assert.ok(
      strict.stderr.includes(`\n  ${unlabelled}: unexpected file (val has class folders, so files belong inside them)`),
      strict.stderr,
    );
    assert.ok(
      strict.stderr.startsWith(`bench: imagenet val (${root}): 1 problem(s) would leave data out`),
      strict.stderr,
    );
    assert.doesNotMatch(strict.stderr, /^\s+at /m);
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name).sort(), ["ade", "imagenet", "synth"]);

    const lenient = await runTask("bench/run_bench.ts", [...args, "--allow-missing", "--plan"], tmp, env);
    assert.equal(lenient.code, 0, lenient.stderr + lenient.stdout);
    assert.ok(
      lenient.stdout.includes(`imagenet val (${root}): skipping 1 problem(s) (--allow-missing)`),
      lenient.stdout,
    );
    assert.match(lenient.stdout, /bench --plan: 14 to run, 0 to re-run, 0 to skip, 0 to reuse/);
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name).sort(), ["ade", "imagenet", "synth"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
