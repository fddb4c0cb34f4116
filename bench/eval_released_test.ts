/**
 * `deno task eval` on released weights end to end (a subprocess, as users run it): a tiny
 * CAPI checkpoint in the released `.pth` layout, kNN on a tiny synthetic ImageNet-layout
 * folder; and `--checkpoint` problems reported in one line before any data is opened.
 * ~15 s on 2 cores.
 */
import assert from "node:assert/strict";
import { ensureSynthetic } from "../datasets/synthetic.ts";

const EVAL = new URL("./eval.ts", import.meta.url).pathname;
const CAPI = new URL("../model/torch/testdata/released/capi_tiny.pth", import.meta.url).pathname;

async function evalCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", EVAL, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("eval: a released .pth with --method runs kNN end to end and records what it loaded", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const root = await ensureSynthetic({
      root: `${tmp}/s`,
      config: { trainPerClass: 4, valPerClass: 2, segTrain: 1, segVal: 1 },
    });
    const r = await evalCli([
      "--checkpoint",
      CAPI,
      "--method",
      "capi",
      "--config",
      '{"imageSize":16}',
      "--probe",
      "knn",
      "--data",
      `imagenet:${root}/imagenet`,
      "--no-cache",
      "--out",
      `${tmp}/knn.json`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^knn\/top1 \d\.\d{4}$/m);
    const rec = JSON.parse(await Deno.readTextFile(`${tmp}/knn.json`));
    assert.equal(rec.checkpoint.method, "capi");
    assert.equal(rec.checkpoint.format, "pth-zip");
    assert.deepEqual([rec.checkpoint.load.prefix, rec.checkpoint.load.loaded], ["backbone.", 31]);
    assert.equal(rec.encoder.arch, "vit_d16_patch4_16.capi");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("eval: a directory without a checkpoint or an unknown name fails in one line, before any data", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // The data spec points nowhere: the checkpoint error must come first.
    const r = await evalCli(["--checkpoint", tmp, "--probe", "knn", "--data", `imagenet:${tmp}/none`]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr.trim(),
      `eval: --checkpoint ${tmp}: a directory without checkpoint.safetensors; expected a file or a run directory ` +
        `of 'deno task pretrain --out DIR' (has it written its first checkpoint yet?)`,
    );
    const n = await evalCli(["--checkpoint", "capi_vitl14_in2k", "--probe", "knn", "--data", `imagenet:${tmp}/none`]);
    assert.match(
      n.stderr.trim(),
      /^eval: --checkpoint capi_vitl14_in2k: no such file or directory, and not a hub name/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
