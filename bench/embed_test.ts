/**
 * `deno task embed` end to end on tiny checkpoints in the three released layouts (committed,
 * made by tools/released/make_released.py): our patches and global equal the unmodified
 * official code's (float64) within the scale-relative 1e-4; bad inputs fail with one
 * line. ~3 s on 2 cores.
 */
import assert from "node:assert/strict";
import { readSafetensors } from "../model/safetensors.ts";
import { runCli } from "./cli.ts";
import { checkEmbedArgs, EMBED_CLI, globalOf, runEmbed } from "./embed.ts";

const DIR = new URL("../model/torch/testdata/released/", import.meta.url).pathname;

/** The CLI in-process, as `deno task embed` runs it: exit code and everything it printed. */
async function embed(args: string[]): Promise<{ code: number; stderr: string }> {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  const run = (o: ReturnType<typeof checkEmbedArgs>) => runEmbed(o, (l) => lines.push(l));
  const code = await runCli(EMBED_CLI, args, { check: checkEmbedArgs, run }, io);
  return { code, stderr: lines.join("\n") };
}

/** max|ours - ref| / max|ref| */
function scaleRelative(ours: Float32Array, ref: Float32Array): number {
  let err = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(ours[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return err / scale;
}

const CASES: [string, string[]][] = [
  ["capi", []], // architecture from the shapes (heads from RoPE freqs), 16 px from the images
  ["mae", ["--config", '{"numHeads":2}']], // heads are in no shape
  ["simmim", []], // heads and grid from the RPB table
];

for (const [method, extra] of CASES) {
  Deno.test(`embed: ${method} released layout matches the official code (scale-relative <= 1e-4)`, async () => {
    const out = await Deno.makeTempFile({ suffix: ".safetensors" });
    try {
      const r = await embed([
        "--checkpoint",
        `${DIR}${method}_tiny.pth`,
        "--method",
        method,
        ...extra,
        "--images",
        `${DIR}${method}_tiny_images.safetensors`,
        "--out",
        out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const ours = await readSafetensors(out), ref = await readSafetensors(`${DIR}${method}_tiny_ref.safetensors`);
      assert.equal(ours.metadata.method, method);
      for (const name of ["patches", "global"]) {
        const a = ours.tensors.get(name)!, b = ref.tensors.get(name)!;
        assert.deepEqual(a.shape, b.shape, name);
        const err = scaleRelative(a.data as Float32Array, b.data as Float32Array);
        assert.ok(err <= 1e-4, `${method} ${name}: scale-relative error ${err}`);
      }
    } finally {
      await Deno.remove(out).catch(() => {});
    }
  });
}

Deno.test("embed: bad checkpoints, flags and images fail with one line that says what to do", async () => {
  const dir = await Deno.makeTempDir();
  const images = `${DIR}capi_tiny_images.safetensors`;
  try {
    // [args, expected line, exit code: 2 for a refused command line, 1 for a failed run]
    const cases: [string[], RegExp, number][] = [
      [
        ["--checkpoint", `${DIR}capi_tiny.pth`],
        /released weights \(pth-zip, no deno task pretrain metadata\) need --method capi\|mae\|simmim/,
        1,
      ],
      [
        ["--checkpoint", `${DIR}capi_tiny.pth`, "--method", "capi", "--preset", "vit_l"],
        /capi_tiny.pth: 'backbone.patch_embed.weight' has shape \[16,3,4,4\] in the file; CAPI preset vit_l expects \[1024,3,14,14\]/,
        1,
      ],
      [["--checkpoint", `${DIR}capi_tiny.pth`, "--method", "mae"], /no MAE encoder found .*is --method right\?/, 1],
      [["--checkpoint", dir, "--method", "capi"], /a directory without checkpoint.safetensors/, 1],
      [
        ["--checkpoint", `${DIR}capi_tiny.pth`, "--method", "dino"],
        /--method: expected one of capi, mae, simmim, got 'dino'/,
        2,
      ],
      [["--checkpoint", `${DIR}capi_tiny.pth`, "--method", "capi", "--config", "{x"], /--config: not JSON/, 2],
      [
        ["--checkpoint", `${DIR}capi_tiny.pth`, "--method", "capi", "--no-such-flag"],
        /unknown flag '--no-such-flag'/,
        2,
      ],
    ];
    for (const [args, want, code] of cases) {
      const r = await embed([...args, "--images", images, "--out", `${dir}/o.safetensors`]);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split("\n").filter((l) => l.startsWith("embed:")).length, 1);
    }
    const wrong = await embed([
      "--checkpoint",
      `${DIR}capi_tiny.pth`,
      "--method",
      "capi",
      "--images",
      `${DIR}capi_tiny_ref.safetensors`,
      "--out",
      `${dir}/o.safetensors`,
    ]);
    assert.match(wrong.stderr, /--images .*capi_tiny_ref.safetensors: no tensor 'images' \(has patches, global\)/);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written on failure");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("globalOf: the encoder's global, else the mean of the patch tokens", () => {
  const patches = { shape: [1, 1, 2, 2], data: new Float32Array([1, 2, 3, 6]) };
  assert.deepEqual(Array.from(globalOf({ global: null, patches, registers: null })), [2, 4]);
  const global = { shape: [1, 2], data: new Float32Array([7, 8]) };
  assert.deepEqual(Array.from(globalOf({ global, patches, registers: null })), [7, 8]);
});
