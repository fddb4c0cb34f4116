/**
 * Feature extraction shared by every probe: stream batches from an `EvalImageSource`
 * through a frozen `VisionEncoder`, keep what the probes need (global representation,
 * mean patch token, optionally all patch tokens, labels or label maps), with a progress
 * bar and an optional on-disk cache.
 *
 * The cache key is a SHA-256 of (encoder key = checkpoint hash, data id = dataset + split +
 * transform, what is kept, format version); entries are `mim-fixture-v1` files (the same
 * reader as the fixtures) written atomically (temp file + rename, manifest last), so an
 * interrupted run never leaves a half-written entry that looks valid.
 *
 * @module
 */
import { join } from "node:path";
import type { HostTensor } from "../model/fixture.ts";
import { loadFixture } from "../model/fixture.ts";
import { atomicWriteFile } from "../model/atomic_write.ts";
import { sha256Hex } from "../model/sha256.ts";
import type { EncoderFeatures, VisionEncoder } from "../model/encoder.ts";

/** What a probe reads from a dataset split, decoupled from file formats and transforms. */
export interface EvalImageSource {
  /** Identity of the data and its transform (dataset, root, split, transform spec), for cache keys. */
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

/** Everything extracted from one split. */
export interface ExtractedFeatures {
  /** `[N, D]` method global representation, or null when the encoder has none. */
  global: HostTensor<Float32Array> | null;
  /** `[N, D]` mean of the patch tokens. */
  avgPatch: HostTensor<Float32Array>;
  /** `[N, Gh, Gw, D]` patch tokens, when asked for. */
  patches: HostTensor<Float32Array> | null;
  labels: Int32Array | null;
  labelMaps: HostTensor<Int32Array> | null;
}

export interface ExtractOptions {
  batchSize: number;
  /** Keep all patch tokens (attentive and segmentation probes). */
  keepPatches: boolean;
  /** Cache folder and the encoder's identity (checkpoint hash); no caching when absent. */
  cache?: { dir: string; encoderKey: string };
  /** Progress output (stderr by default); `null` silences it. */
  progress?: ((line: string, done: boolean) => void) | null;
}

const CACHE_VERSION = 1;

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

function stderrProgress(): (line: string, done: boolean) => void {
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

type Named = [string, HostTensor<Float32Array> | HostTensor<Int32Array> | null];

async function saveCache(path: string, f: ExtractedFeatures, key: object): Promise<void> {
  const entries: Named[] = [
    ["global", f.global],
    ["avg_patch", f.avgPatch],
    ["patches", f.patches],
    ["labels", f.labels ? { shape: [f.labels.length], data: f.labels } : null],
    ["label_maps", f.labelMaps],
  ];
  const tensors = [];
  let offset = 0;
  for (const [name, t] of entries) {
    if (!t) continue;
    const dtype = t.data instanceof Int32Array ? "int32" : "float32";
    tensors.push({ name, shape: t.shape, dtype, offset, numel: t.data.length, description: "" });
    offset += t.data.byteLength;
  }
  const bin = new Uint8Array(offset);
  let o = 0;
  for (const [, t] of entries) {
    if (!t) continue;
    bin.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), o);
    o += t.data.byteLength;
  }
  const base = path.split("/").pop()!;
  await atomicWriteFile(`${path}.bin`, bin);
  const manifest = { format: "mim-fixture-v1", bin: `${base}.bin`, byte_order: "little", config: key, tensors };
  await atomicWriteFile(`${path}.json`, JSON.stringify(manifest));
}

async function loadCache(path: string): Promise<ExtractedFeatures | null> {
  try {
    await Deno.stat(`${path}.json`);
  } catch {
    return null;
  }
  const fx = await loadFixture(`${path}.json`);
  const opt = <T>(n: string, get: (n: string) => T) => (fx.has(n) ? get(n) : null);
  return {
    global: opt("global", (n) => fx.f32(n)),
    avgPatch: fx.f32("avg_patch"),
    patches: opt("patches", (n) => fx.f32(n)),
    labels: opt("labels", (n) => fx.i32(n).data),
    labelMaps: opt("label_maps", (n) => fx.i32(n)),
  };
}

/** Extract (or load from cache) the features of every sample of `source`. */
export async function extractFeatures(
  encoder: VisionEncoder,
  source: EvalImageSource,
  opts: ExtractOptions,
): Promise<ExtractedFeatures> {
  const key = {
    version: CACHE_VERSION,
    encoder: opts.cache?.encoderKey,
    data: source.id,
    keepPatches: opts.keepPatches,
  };
  let cachePath: string | null = null;
  if (opts.cache) {
    await Deno.mkdir(opts.cache.dir, { recursive: true });
    cachePath = join(opts.cache.dir, `features-${(await sha256Hex(JSON.stringify(key))).slice(0, 32)}`);
    const hit = await loadCache(cachePath);
    if (hit) return hit;
  }
  const progress = opts.progress === null ? () => {} : opts.progress ?? stderrProgress();
  const n = source.length;
  if (n === 0) throw new Error(`extractFeatures: ${source.id} has no samples`);
  const t0 = performance.now();
  let out: ExtractedFeatures | null = null;
  let start = 0;
  for await (const b of source.batches(opts.batchSize)) {
    const bs = b.images.shape[0];
    if (start + bs > n) throw new Error(`extractFeatures: ${source.id} yielded more than its ${n} samples`);
    const f = await encoder.encode(b.images);
    out ??= allocate(f, n, opts.keepPatches, b);
    store(out, f, start, b);
    start += bs;
    progress(progressLine(`features ${source.id}`, start, n, (performance.now() - t0) / 1000), start === n);
  }
  if (start !== n || !out) throw new Error(`extractFeatures: ${source.id} yielded ${start} samples, expected ${n}`);
  if (cachePath) await saveCache(cachePath, out, key);
  return out;
}

function allocate(
  f: EncoderFeatures,
  n: number,
  keepPatches: boolean,
  b: { labels?: Int32Array; labelMaps?: HostTensor<Int32Array> },
): ExtractedFeatures {
  const [, gh, gw, d] = f.patches.shape;
  const mapShape = b.labelMaps?.shape.slice(1) ?? [];
  return {
    global: f.global ? { shape: [n, f.global.shape[1]], data: new Float32Array(n * f.global.shape[1]) } : null,
    avgPatch: { shape: [n, d], data: new Float32Array(n * d) },
    patches: keepPatches ? { shape: [n, gh, gw, d], data: new Float32Array(n * gh * gw * d) } : null,
    labels: b.labels ? new Int32Array(n) : null,
    labelMaps: b.labelMaps
      ? { shape: [n, ...mapShape], data: new Int32Array(n * mapShape.reduce((a, c) => a * c, 1)) }
      : null,
  };
}

function store(
  out: ExtractedFeatures,
  f: EncoderFeatures,
  start: number,
  b: { labels?: Int32Array; labelMaps?: HostTensor<Int32Array> },
): void {
  const [bs, gh, gw, d] = f.patches.shape;
  const np = gh * gw;
  if (out.global && f.global) out.global.data.set(f.global.data, start * out.global.shape[1]);
  for (let i = 0; i < bs; i++) {
    const acc = new Float64Array(d);
    for (let p = 0; p < np; p++) {
      const base = (i * np + p) * d;
      for (let j = 0; j < d; j++) acc[j] += f.patches.data[base + j];
    }
    for (let j = 0; j < d; j++) out.avgPatch.data[(start + i) * d + j] = acc[j] / np;
  }
  if (out.patches) out.patches.data.set(f.patches.data, start * np * d);
  if (out.labels && b.labels) out.labels.set(b.labels, start);
  if (out.labelMaps && b.labelMaps) out.labelMaps.data.set(b.labelMaps.data, start * (b.labelMaps.data.length / bs));
}
