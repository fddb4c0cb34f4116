/**
 * One attentive-probe evaluation of N generated images, run as a subprocess by
 * `peak_rss_test.ts` (and by hand: `deno run -A eval/peak_rss_run.ts 1000`) to measure how peak
 * memory grows with the data: extraction of every patch token into a disk store with small
 * shards, then the attentive probe streaming it (training batches, held-out part, val), exactly
 * the path of `deno task eval --probe attentive`, with a fake encoder so the run takes seconds.
 *
 * Each image is 64 patch tokens of width 512 (128 KiB): N = 250 images hold 32 MiB of tokens,
 * 4N = 128 MiB, so a probe that held the tokens in memory would grow by ~100 MiB.
 * Prints one JSON line: `{"images": N, "peakRssBytes": ..., "top1": ...}` (VmHWM, Linux).
 *
 * @module
 */
import { initBackend } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import type { EncoderFeatures, HostTensor, VisionEncoder } from "../model/encoder.ts";
import { type EvalImageSource, extractFeatures } from "./features.ts";
import { resolveProbeConfig, runProbe } from "./probes.ts";

const GRID = 8, WIDTH = 512, CLASSES = 4;

/** Image i: its class and index in the first two pixels. */
function source(n: number, split: string): EvalImageSource {
  return {
    id: `peak-rss ${split} n=${n}`,
    length: n,
    async *batches(size) {
      for (let s = 0; s < n; s += size) {
        const b = Math.min(size, n - s);
        const images = new Float32Array(b * 3 * 4 * 4);
        const labels = new Int32Array(b);
        for (let i = 0; i < b; i++) {
          labels[i] = (s + i) % CLASSES;
          images[i * 48] = labels[i];
          images[i * 48 + 1] = s + i;
        }
        yield { images: { shape: [b, 3, 4, 4], data: images }, labels };
      }
    },
  };
}

/** Tokens: noise, plus the class's direction in a few tokens (the attentive head must find them). */
const encoder: VisionEncoder = {
  info: { arch: "fake_peak_rss", embedDim: WIDTH, patchSize: 1, imageSize: [4, 4] },
  encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures> {
    const b = images.shape[0];
    const patches = new Float32Array(b * GRID * GRID * WIDTH);
    for (let i = 0; i < b; i++) {
      const cls = images.data[i * 48], id = images.data[i * 48 + 1];
      const rng = Rng.from(id, "tokens");
      const tokens = patches.subarray(i * GRID * GRID * WIDTH, (i + 1) * GRID * GRID * WIDTH);
      rng.fillNormal(tokens);
      for (let t = 0; t < 4; t++) tokens[(t * 16 + rng.int(0, 15)) * WIDTH + cls] += 8;
    }
    return Promise.resolve({
      global: null,
      patches: { shape: [b, GRID, GRID, WIDTH], data: patches },
      registers: null,
    });
  },
  dispose() {},
};

if (import.meta.main) {
  const n = Number(Deno.args[0]);
  if (!Number.isInteger(n) || n < 10) {
    throw new Error(`usage: deno run -A eval/peak_rss_run.ts N (N >= 10), got '${Deno.args[0]}'`);
  }
  await initBackend("wasm");
  const opts = { batchSize: 32, keepPatches: true, shardBytes: 4 * 2 ** 20, progress: null };
  const train = await extractFeatures(encoder, source(n, "train"), opts);
  const val = await extractFeatures(encoder, source(Math.ceil(n / 4), "val"), opts);
  try {
    const config = resolveProbeConfig("attentive", "cpu", { iterations: 20, batchSize: 32, lrs: [1e-2] });
    const out = await runProbe("attentive", { train, val }, {
      method: "external",
      classes: CLASSES,
      protocol: "cpu",
      config,
    });
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(Deno.readTextFileSync("/proc/self/status"));
    console.log(
      JSON.stringify({ images: n, peakRssBytes: m ? Number(m[1]) * 1024 : null, top1: out.metrics["attentive/top1"] }),
    );
  } finally {
    await train.close();
    await val.close();
  }
}
