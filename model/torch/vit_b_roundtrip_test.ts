/**
 * The reader at ViT-B/16 size against PyTorch itself: a checkpoint written by torch (zip and
 * legacy formats, float32 and bfloat16, non-contiguous views) reads back with the sums,
 * sums of squares and leading values torch computes. Needs python3 with torch (Debian
 * `python3-torch`); without it the test is skipped with the reason printed. ~15 s on 2 cores.
 */
import assert from "node:assert/strict";
import { openTorchCheckpoint } from "./pth.ts";

const PYTHON = Deno.env.get("MIMBENCH_PYTHON") ?? "/usr/bin/python3";
const hasTorch = await new Deno.Command(PYTHON, { args: ["-c", "import torch"], stdout: "null", stderr: "null" })
  .output().then((o) => o.success, () => false);
if (!hasTorch) {
  console.log(`vit_b_roundtrip_test: skipped: ${PYTHON} cannot import torch (apt-get install python3-torch)`);
}

Deno.test({
  name: "openTorchCheckpoint: a ViT-B/16 state dict written by torch reads back exactly (zip and legacy)",
  ignore: !hasTorch,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const script = new URL("./testdata/vit_b_roundtrip.py", import.meta.url).pathname;
      const gen = await new Deno.Command(PYTHON, { args: [script, dir], stderr: "piped" }).output();
      assert.ok(gen.success, new TextDecoder().decode(gen.stderr));
      const stats = JSON.parse(await Deno.readTextFile(`${dir}/vit_b.json`)) as Record<
        string,
        { dtype: string; shape: number[]; sum: number; sumsq: number; first: number[] }
      >;
      for (const file of ["vit_b.pth", "vit_b_legacy.pth"]) {
        const ck = await openTorchCheckpoint(`${dir}/${file}`);
        try {
          assert.deepEqual([...ck.tensors.keys()].sort(), Object.keys(stats).sort());
          for (const [name, s] of Object.entries(stats)) {
            const t = await ck.tensors.get(name)!.read();
            assert.deepEqual(t.shape, s.shape, name);
            let sum = 0, sumsq = 0;
            for (const v of t.data) {
              sum += v;
              sumsq += v * v;
            }
            // Both are float64 sums of the same float32 values; only the order differs.
            assert.ok(Math.abs(sum - s.sum) <= 1e-9 * Math.max(1, sumsq), `${file} ${name}: sum ${sum} vs ${s.sum}`);
            assert.ok(Math.abs(sumsq - s.sumsq) <= 1e-9 * sumsq, `${file} ${name}: sumsq ${sumsq} vs ${s.sumsq}`);
            assert.deepEqual(Array.from(t.data.subarray(0, 4)), s.first, `${file} ${name}`);
          }
        } finally {
          ck.close();
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
