/**
 * Hub names of the released weights and their download cache.
 *
 * `--checkpoint capi_vitl14_in1k` (and the other names below) resolves to the published URL
 * (facebookresearch/capi `hubconf.py`, facebookresearch/mae README, microsoft/SimMIM
 * README); the file downloads once into the cache (default `.cache/hub`, or
 * `$MIMBENCH_HUB_CACHE`, or `--hub-cache DIR`) with a progress bar on stderr, resumes a
 * partial download (`<file>.part`, HTTP Range), and records its SHA-256 beside it
 * (`<file>.sha256.json`). A later use re-hashes the file and refuses it when the hash
 * changed; a fresh download whose hash differs from the record is refused too.
 *
 * @module
 */
import { z } from "zod";
import type { MethodName } from "../model/method.ts";
import { atomicWriteJson } from "../model/atomic_write.ts";
import { sha256File } from "../model/sha256.ts";

export interface HubEntry {
  url: string;
  method: MethodName;
  preset: string;
  /**
   * The authors' numbers under this suite's protocols, by metric key, as fractions (capi README:
   * attentive IN-1k top-1 and kNN ADE20K mIoU); shown beside ours on the leaderboard.
   */
  published?: Record<string, number>;
}

const CAPI = "https://dl.fbaipublicfiles.com/capi";
const MAE = "https://dl.fbaipublicfiles.com/mae/pretrain";

/** Every hub name: the four CAPI hub entries (and their file stems), MAE ViT-B/L/H, SimMIM ViT-B. */
export const HUB: Record<string, HubEntry> = {
  capi_vitl14_lvd: {
    url: `${CAPI}/capi_vitl14_lvd.pth`,
    method: "capi",
    preset: "vit_l",
    published: { "attentive/top1": 0.838, "seg_knn/miou": 0.321 },
  },
  capi_vitl14_p205: {
    url: `${CAPI}/capi_vitl14_p205.pth`,
    method: "capi",
    preset: "vit_l",
    published: { "attentive/top1": 0.792, "seg_knn/miou": 0.352 },
  },
  capi_vitl14_in22k: {
    url: `${CAPI}/capi_vitl14_i22k.pth`,
    method: "capi",
    preset: "vit_l",
    published: { "attentive/top1": 0.836, "seg_knn/miou": 0.297 },
  },
  capi_vitl14_in1k: {
    url: `${CAPI}/capi_vitl14_in1k.pth`,
    method: "capi",
    preset: "vit_l",
    published: { "attentive/top1": 0.829, "seg_knn/miou": 0.292 },
  },
  mae_pretrain_vit_base: {
    url: `${MAE}/mae_pretrain_vit_base.pth`,
    method: "mae",
    preset: "vit_b",
  },
  mae_pretrain_vit_large: {
    url: `${MAE}/mae_pretrain_vit_large.pth`,
    method: "mae",
    preset: "vit_l",
  },
  mae_pretrain_vit_huge: {
    url: `${MAE}/mae_pretrain_vit_huge.pth`,
    method: "mae",
    preset: "vit_h",
  },
  // SimMIM's README links a Google Drive file; this is its direct-download form (no confirmation page).
  simmim_pretrain__vit_base__img224__800ep: {
    url: "https://drive.usercontent.google.com/download?id=1dJn6GYkwMIcoP3zqOEyW1_iQfpBi8UOw&export=download&confirm=t",
    method: "simmim",
    preset: "vit_b",
  },
};
/** The file stem `capi_vitl14_i22k` is the hub entry `capi_vitl14_in22k`. */
HUB.capi_vitl14_i22k = HUB.capi_vitl14_in22k;

/** The record written beside a downloaded file. */
export const HubRecord = z.strictObject({
  url: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
  downloaded: z.string().describe("ISO time the download completed"),
});
export type HubRecord = z.infer<typeof HubRecord>;

export function defaultHubCache(): string {
  return Deno.env.get("MIMBENCH_HUB_CACHE") ?? ".cache/hub";
}

export interface DownloadOptions {
  /** Progress output; default: a bar on stderr redrawn in place. */
  progress?: (line: string, done: boolean) => void;
  fetch?: typeof fetch;
}

const mb = (n: number) => (n / 1e6).toFixed(1);

function stderrProgress(line: string, done: boolean): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`\r${line}${done ? "\n" : ""}`));
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/**
 * `url` as `cacheDir/fileName`: reuse the cached file when its hash still matches its
 * record, else download (resuming `fileName.part`), hash, check against any earlier record,
 * and record. Returns the path.
 */
export async function downloadCached(
  url: string,
  cacheDir: string,
  fileName: string,
  o: DownloadOptions = {},
): Promise<{ path: string; record: HubRecord }> {
  const path = `${cacheDir}/${fileName}`, part = `${path}.part`, recordPath = `${path}.sha256.json`;
  const earlier = await Deno.readTextFile(recordPath).then((t) => HubRecord.parse(JSON.parse(t)), () => null);
  if (await exists(path)) {
    const sha256 = await sha256File(path);
    if (!earlier) {
      throw new Error(`${path}: a cached file without its record ${recordPath}; delete it to download it again`);
    }
    if (sha256 !== earlier.sha256) {
      throw new Error(
        `${path}: SHA-256 ${sha256} differs from the one recorded at download (${earlier.sha256}, ${recordPath}): ` +
          `the file changed; delete both to download it again`,
      );
    }
    return { path, record: earlier };
  }
  await Deno.mkdir(cacheDir, { recursive: true });
  const progress = o.progress ?? stderrProgress;
  const doFetch = o.fetch ?? fetch;
  let have = await Deno.stat(part).then((s) => s.size, () => 0);
  const res = await doFetch(url, { headers: have ? { Range: `bytes=${have}-` } : {} });
  if (res.status === 416 && have) {
    // The range is past the end: a stale partial file. Start over.
    await res.body?.cancel();
    await Deno.remove(part);
    return await downloadCached(url, cacheDir, fileName, o);
  }
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  const resumed = res.status === 206;
  if (!resumed) have = 0; // the server ignored the range: write from the start
  const total = resumed
    ? Number(/\/(\d+)$/.exec(res.headers.get("content-range") ?? "")?.[1] ?? NaN)
    : Number(res.headers.get("content-length") ?? NaN);
  const file = await Deno.open(part, { write: true, create: true, append: resumed, truncate: !resumed });
  const t0 = performance.now();
  let got = have, last = 0;
  try {
    if (res.body) {
      for await (const chunk of res.body) {
        let off = 0;
        while (off < chunk.length) off += await file.write(chunk.subarray(off));
        got += chunk.length;
        const now = performance.now();
        if (now - last > 200) {
          last = now;
          const pct = Number.isFinite(total) ? ` ${(100 * got / total).toFixed(1)}%` : "";
          const rate = (got - have) / Math.max((now - t0) / 1000, 1e-3);
          progress(
            `${fileName}: ${mb(got)}/${Number.isFinite(total) ? mb(total) : "?"} MB${pct} ${mb(rate)} MB/s`,
            false,
          );
        }
      }
    }
  } finally {
    file.close();
  }
  if (Number.isFinite(total) && got !== total) {
    throw new Error(`${url}: download stopped at ${got} of ${total} bytes; run again to resume from ${part}`);
  }
  progress(`${fileName}: ${mb(got)} MB done${resumed ? ` (resumed at ${mb(have)} MB)` : ""}`, true);
  const sha256 = await sha256File(part);
  if (earlier && earlier.sha256 !== sha256) {
    throw new Error(
      `${url}: the downloaded file's SHA-256 ${sha256} differs from the one recorded before (${earlier.sha256}, ` +
        `${recordPath}): the published file changed; check it, then delete the record to accept it`,
    );
  }
  const record: HubRecord = { url, sha256, bytes: got, downloaded: new Date().toISOString() };
  await atomicWriteJson(recordPath, record);
  await Deno.rename(part, path);
  return { path, record };
}

/** The cached file of hub entry `name` (downloaded when absent). */
export async function hubCheckpoint(
  name: string,
  o: DownloadOptions & { cacheDir?: string; urls?: Record<string, string> } = {},
): Promise<{ path: string; entry: HubEntry; record: HubRecord }> {
  const entry = HUB[name];
  if (!entry) throw new Error(`hub: no entry '${name}'; known: ${Object.keys(HUB).join(", ")}`);
  const url = o.urls?.[name] ?? entry.url;
  const fileName = name.startsWith("simmim_") ? `${name}.pth` : new URL(entry.url).pathname.split("/").pop()!;
  const { path, record } = await downloadCached(url, o.cacheDir ?? defaultHubCache(), fileName, o);
  return { path, entry, record };
}
