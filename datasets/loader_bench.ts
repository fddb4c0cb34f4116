/**
 * Loader throughput (decode + transform + normalise + batch), images per second.
 *
 *   deno run -A datasets/loader_bench.ts      # prints a table (also: deno bench -A datasets/loader_bench.ts)
 *
 * Cases: the synthetic default (56-80 px JPEGs) at 32 px (the default benchmark's crops) and
 * 64 px; ImageNet-sized 500x375 JPEGs (procedural, quality 90, in a temp folder) at 64 and
 * 224 px, train (RandomResizedCrop + flip) and eval (Resize + CenterCrop). Runtime ~1 min.
 * Numbers on the 2-core dev machine (shared with other jobs) are in SYNTHETIC.md.
 *
 * @module
 */
import { Rng } from "../model/rng.ts";
import type { ImageDataset } from "./dataset.ts";
import { encodeJpeg } from "./decode.ts";
import { openImagenet } from "./imagenet.ts";
import { DataLoader } from "./loader.ts";
import { ensureSynthetic, openSynthetic } from "./synthetic.ts";
import { renderScene, type ShapeName, SHAPES } from "./synthetic_render.ts";
import type { TransformSpec } from "./transforms.ts";

const train = (size: number): TransformSpec => ({
  kind: "train",
  size,
  scale: [0.08, 1],
  ratio: [3 / 4, 4 / 3],
  hflip: 0.5,
});
const evalAt = (size: number): TransformSpec => ({ kind: "eval", size });

/** A folder of `n` ImageNet-sized JPEGs in the ImageNet layout (2 classes). */
async function imagenetSized(dir: string, n: number): Promise<ImageDataset> {
  const shapes = Object.keys(SHAPES) as ShapeName[];
  for (let i = 0; i < n; i++) {
    const cls = `n0000000${i % 2}`;
    await Deno.mkdir(`${dir}/train/${cls}`, { recursive: true });
    const { image } = renderScene(
      Rng.from(i, "bench"),
      500,
      375,
      [{ shape: shapes[i % 10], label: 1 }],
      [0.2, 0.45],
      0,
    );
    await Deno.writeFile(`${dir}/train/${cls}/img_${i}.JPEG`, await encodeJpeg(image, 90));
  }
  return openImagenet(dir, "train", { expected: false });
}

/** Images per second over `epochs` passes (after one warm-up batch). */
async function measure(ds: ImageDataset, transform: TransformSpec, epochs: number, concurrency = 8): Promise<number> {
  const loader = new DataLoader(ds, { batchSize: 32, transform, seed: 0, concurrency, prefetch: 2 });
  for await (const _ of loader.epoch(-1)) break; // warm-up: JIT, libvips init
  const t0 = performance.now();
  let n = 0;
  for (let e = 0; e < epochs; e++) for await (const b of loader.epoch(e)) n += b.labels.length;
  return n / ((performance.now() - t0) / 1000);
}

async function cases(): Promise<[string, () => Promise<number>][]> {
  const synth = await openSynthetic(await ensureSynthetic({ log: console.log }), "train", "classification");
  const tmp = await Deno.makeTempDir();
  const big = await imagenetSized(tmp, 96);
  globalThis.addEventListener("unload", () => Deno.removeSync(tmp, { recursive: true }));
  return [
    ["synthetic 2000 imgs, train 32 px", () => measure(synth, train(32), 1)],
    ["synthetic 2000 imgs, train 64 px", () => measure(synth, train(64), 1)],
    ["500x375 JPEG, train 64 px", () => measure(big, train(64), 2)],
    ["500x375 JPEG, train 224 px", () => measure(big, train(224), 2)],
    ["500x375 JPEG, eval 224 px", () => measure(big, evalAt(224), 2)],
    ...[1, 2, 4, 8].map((c): [string, () => Promise<number>] => [
      `500x375 JPEG, train 224 px, concurrency ${c}`,
      () => measure(big, train(224), 2, c),
    ]),
  ];
}

if (import.meta.main) {
  console.log(`Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} logical cores`);
  for (const [name, run] of await cases()) {
    console.log(`${name.padEnd(44)} ${(await run()).toFixed(0).padStart(6)} images/s`);
  }
} else if ("bench" in Deno) {
  const list = await cases();
  for (const [name, run] of list) Deno.bench({ name, n: 1, warmup: 0 }, async () => void (await run()));
}
