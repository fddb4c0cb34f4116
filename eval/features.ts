/**
 * Feature extraction shared by the cached-feature probes: stream batches from an
 * `EvalImageSource` through a frozen `VisionEncoder` and write what the probes read (global
 * representation, mean patch token, optionally all patch tokens, labels or label maps) into a
 * sharded store on disk (`feature_store.ts`), with a progress bar.
 *
 * Memory is one batch plus one shard whatever the split's size: ImageNet's patch tokens at
 * ViT-L/14 (~1.3 TB) never sit in memory. With a cache folder the store is kept and reused,
 * keyed by SHA-256 of (encoder key = checkpoint hash and runtime, data id = dataset + split +
 * subset + transform, what is kept, format version); the manifest is written last, so an
 * interrupted run never leaves a store that looks complete. Without one the store goes to a
 * temporary folder that `close()` deletes.
 *
 * @module
 */
import { join } from "node:path";
import type { HostTensor } from "../model/fixture.ts";
import { sha256Hex } from "../model/sha256.ts";
import type { EncoderFeatures, VisionEncoder } from "../model/encoder.ts";
import { type DiskFeatureTable, FeatureStoreWriter, openFeatureStore } from "./feature_store.ts";
import type { FeatureDims } from "./feature_table.ts";

/** What a probe reads from a dataset split, decoupled from file formats and transforms. */
export interface EvalImageSource {
  /** Identity of the data and its transform (dataset, root, split, subset, transform spec), for cache keys. */
  readonly id: string;
  readonly length: number;
  /** All samples in a fixed order, in batches of `batchSize` (the last may be smaller). */
  batches(batchSize: number): AsyncIterable<SourceBatch>;
}

/** Normalised images `[b, 3, H, W]` with class labels `[b]` or label maps `[b, H, W]`. */
export interface SourceBatch {
  images: HostTensor<Float32Array>;
  labels?: Int32Array;
  labelMaps?: HostTensor<Int32Array>;
}

export interface ExtractOptions {
  batchSize: number;
  /** Keep all patch tokens (attentive and segmentation probes). */
  keepPatches: boolean;
  /** Cache folder and the encoder's identity (checkpoint hash + runtime); a temporary store when absent. */
  cache?: { dir: string; encoderKey: string };
  /** Parent folder of temporary stores (default: the system's temporary folder). */
  tempDir?: string;
  /** Bytes per shard: the writer's buffer and the natural read block (default 64 MiB). */
  shardBytes?: number;
  /** Progress output (stderr by default); `null` silences it. */
  progress?: ((line: string, done: boolean) => void) | null;
}

const CACHE_VERSION = 2;
const DEFAULT_SHARD_BYTES = 64 * 2 ** 20;

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "--:--";
  const m = Math.floor(s / 60), r = Math.floor(s % 60);
  return `${m}:${String(r).padStart(2, "0")}`;
}

/** A one-line progress bar with rate and ETA. */
export function progressLine(label: string, done: number, total: number, seconds: number): string {
  const width = 24;
  const filled = Math.round((width * done) / Math.max(total, 1));
  const rate = done / Math.max(seconds, 1e-9);
  return `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ` +
    `${rate.toFixed(1)} img/s elapsed ${fmtTime(seconds)} ETA ${fmtTime((total - done) / rate)}`;
}

/** Progress to stderr: redrawn in place on a terminal, every 10 s otherwise. */
export function stderrProgress(): (line: string, done: boolean) => void {
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  let lastPrint = 0;
  return (line, done) => {
    const now = performance.now();
    if (!done && now - lastPrint < (tty ? 200 : 10_000)) return;
    lastPrint = now;
    Deno.stderr.writeSync(enc.encode(tty ? `\r${line}${done ? "\n" : ""}` : `${line}\n`));
  };
}

/** Mean patch token of each image: `[B, Gh, Gw, D]` -> `[B, D]` (accumulated in float64). */
export function meanPatch(patches: HostTensor<Float32Array>): Float32Array {
  const [b, gh, gw, d] = patches.shape;
  const np = gh * gw;
  const out = new Float32Array(b * d);
  const acc = new Float64Array(d);
  for (let i = 0; i < b; i++) {
    acc.fill(0);
    for (let p = 0; p < np; p++) {
      const base = (i * np + p) * d;
      for (let j = 0; j < d; j++) acc[j] += patches.data[base + j];
    }
    for (let j = 0; j < d; j++) out[i * d + j] = acc[j] / np;
  }
  return out;
}

function dimsOf(f: EncoderFeatures, keepPatches: boolean, b: SourceBatch): FeatureDims {
  const [, gh, gw, d] = f.patches.shape;
  const m = b.labelMaps?.shape;
  return {
    global: f.global ? f.global.shape[1] : null,
    avgPatch: d,
    patches: keepPatches ? [gh, gw, d] : null,
    labelMap: m ? [m[1], m[2]] : null,
  };
}

/** Extract (or open from cache) the features of every sample of `source` as a disk-backed table. */
export async function extractFeatures(
  encoder: VisionEncoder,
  source: EvalImageSource,
  opts: ExtractOptions,
): Promise<DiskFeatureTable> {
  const key = {
    version: CACHE_VERSION,
    encoder: opts.cache?.encoderKey ?? null,
    data: source.id,
    keepPatches: opts.keepPatches,
  };
  let dir: string;
  if (opts.cache) {
    await Deno.mkdir(opts.cache.dir, { recursive: true });
    dir = join(opts.cache.dir, `features-${(await sha256Hex(JSON.stringify(key))).slice(0, 32)}`);
    const hit = await openFeatureStore(dir, key);
    if (hit) return hit;
  } else {
    if (opts.tempDir) await Deno.mkdir(opts.tempDir, { recursive: true });
    dir = await Deno.makeTempDir({ dir: opts.tempDir, prefix: "features-" });
  }
  const progress = opts.progress === null ? () => {} : opts.progress ?? stderrProgress();
  const n = source.length;
  if (n === 0) throw new Error(`extractFeatures: ${source.id} has no samples`);
  const t0 = performance.now();
  let writer: FeatureStoreWriter | null = null;
  let start = 0;
  try {
    for await (const b of source.batches(opts.batchSize)) {
      const bs = b.images.shape[0];
      if (start + bs > n) throw new Error(`extractFeatures: ${source.id} yielded more than its ${n} samples`);
      const f = await encoder.encode(b.images);
      writer ??= await FeatureStoreWriter.create(dir, dimsOf(f, opts.keepPatches, b), {
        key,
        shardBytes: opts.shardBytes ?? DEFAULT_SHARD_BYTES,
        withLabels: b.labels !== undefined,
      });
      await writer.append({
        rows: bs,
        global: f.global?.data,
        avgPatch: meanPatch(f.patches),
        patches: opts.keepPatches ? f.patches.data : null,
        labelMap: b.labelMaps?.data,
        labels: b.labels,
      });
      start += bs;
      progress(progressLine(`features ${source.id}`, start, n, (performance.now() - t0) / 1000), start === n);
    }
    if (start !== n || !writer) {
      throw new Error(`extractFeatures: ${source.id} yielded ${start} samples, expected ${n}`);
    }
    const table = await writer.finish();
    table.temporary = !opts.cache;
    return table;
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}
