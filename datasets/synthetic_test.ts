/**
 * The synthetic default: deterministic bytes for a seed, atomic generation, the real
 * adapters read it back with the right counts and balanced classes.
 */
import { deepStrictEqual as assertEquals, notDeepStrictEqual, rejects } from "node:assert/strict";
import { ensureSynthetic, openSynthetic, SYNTHETIC_CLASSES, SYNTHETIC_SEG_CLASSES } from "./synthetic.ts";

const TINY = { trainPerClass: 2, valPerClass: 1, segTrain: 3, segVal: 2 };

async function filesOf(root: string, dir = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(`${root}/${dir}`)) {
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory) { for (const [k, v] of await filesOf(root, rel)) out.set(k, v); }
    else out.set(rel, await Deno.readFile(`${root}/${rel}`));
  }
  return out;
}

Deno.test("same seed -> same bytes; another seed -> other images", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const a = await ensureSynthetic({ root: `${tmp}/a`, config: TINY });
    const b = await ensureSynthetic({ root: `${tmp}/b`, config: TINY });
    const c = await ensureSynthetic({ root: `${tmp}/c`, config: { ...TINY, seed: 1 } });
    const [fa, fb, fc] = await Promise.all([filesOf(a), filesOf(b), filesOf(c)]);
    assertEquals(fa.size, 10 * 3 + 2 * 5 + 1); // images + annotations + manifest
    assertEquals([...fa.keys()].sort(), [...fb.keys()].sort());
    for (const [k, v] of fa) assertEquals(v, fb.get(k), k);
    const img = "imagenet/train/c00_disk/c00_disk_00000.JPEG";
    notDeepStrictEqual(fa.get(img), fc.get(img));
    // No temporary folder is left behind.
    assertEquals([...Deno.readDirSync(tmp)].map((e) => e.name).sort(), ["a", "b", "c"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("adapters read the synthetic folders: counts, classes, labels, sizes", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const root = await ensureSynthetic({ root: `${tmp}/s`, config: TINY });
    const train = await openSynthetic(root, "train", "classification");
    assertEquals([train.length, train.numClasses, train.layoutProblems.length], [20, 10, 0]);
    assertEquals(train.classNames, SYNTHETIC_CLASSES.map((s, k) => `c0${k}_${s}`));
    assertEquals(Array.from({ length: 20 }, (_, i) => train.label(i)), [
      0,
      0,
      1,
      1,
      2,
      2,
      3,
      3,
      4,
      4,
      5,
      5,
      6,
      6,
      7,
      7,
      8,
      8,
      9,
      9,
    ]);
    const s = await train.load(3);
    assertEquals([s.label, s.image.channels, s.image.width >= 56 && s.image.width <= 80], [1, 3, true]);
    const seg = await openSynthetic(root, "val", "segmentation");
    assertEquals([seg.length, seg.numClasses, seg.classNames], [2, 6, SYNTHETIC_SEG_CLASSES]);
    const p = await seg.load(1);
    assertEquals([p.labelMap!.width, p.labelMap!.height], [p.image.width, p.image.height]);
    assertEquals(p.labelMap!.data.every((v) => v <= 6), true);
    assertEquals(p.labelMap!.data.includes(1), true); // background present
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a folder generated with another config is an error, not silently reused", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await ensureSynthetic({ root: `${tmp}/s`, config: TINY });
    await rejects(ensureSynthetic({ root: `${tmp}/s`, config: { ...TINY, seed: 5 } }), /another config/);
    // Same config from an older renderer revision: regenerated, not an error.
    const manifest = JSON.parse(await Deno.readTextFile(`${tmp}/s/synthetic.json`));
    await Deno.writeTextFile(`${tmp}/s/synthetic.json`, JSON.stringify({ ...manifest, renderRevision: 1 }));
    await ensureSynthetic({ root: `${tmp}/s`, config: TINY });
    assertEquals(JSON.parse(await Deno.readTextFile(`${tmp}/s/synthetic.json`)), manifest);
    assertEquals([...Deno.readDirSync(tmp)].map((e) => e.name), ["s"]); // no stale or temp folder left
    await Deno.mkdir(`${tmp}/half`);
    await rejects(ensureSynthetic({ root: `${tmp}/half`, config: TINY }), /not a finished synthetic dataset/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
