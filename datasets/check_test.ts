/**
 * `deno task data check` end to end on real files (written by the synthetic generator and
 * sharp): right counts when clean; exit 1 naming the file for a truncated JPEG, a missing
 * annotation, an out-of-range label, a size mismatch, an empty class folder and a stray
 * file; and training (the loader) fails or skips on the same samples with the same message.
 */
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { copy } from "./testdata/copy_tree.ts";
import { main } from "./data_cli.ts";
import { openAde20k } from "./ade20k.ts";
import { openImagenet } from "./imagenet.ts";
import { encodePng } from "./decode.ts";
import { DataLoader } from "./loader.ts";
import { ensureSynthetic } from "./synthetic.ts";

const TINY = { trainPerClass: 2, valPerClass: 1, segTrain: 3, segVal: 2 };

async function run(args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(args, { out: (l) => lines.push(l), err: (l) => lines.push(l) });
  return { code, out: lines.join("\n") };
}

async function fixture(): Promise<{ tmp: string; imagenet: string; ade: string }> {
  const tmp = await Deno.makeTempDir();
  const synth = await ensureSynthetic({ root: `${tmp}/synth`, config: TINY });
  await copy(`${synth}/imagenet`, `${tmp}/imagenet`);
  await copy(`${synth}/ade20k`, `${tmp}/ade`);
  return { tmp, imagenet: `${tmp}/imagenet`, ade: `${tmp}/ade` };
}

Deno.test("clean folders: exit 0 and the right counts", async () => {
  const { tmp, imagenet, ade } = await fixture();
  try {
    const a = await run(["check", "--kind", "imagenet", "--root", imagenet]);
    assertEquals(a.code, 0, a.out);
    ok(
      a.out.includes(
        `imagenet train (${imagenet}): 20 images (full size 1,281,167), 10 of 10 classes present (full size 1,000)`,
      ),
      a.out,
    );
    ok(a.out.includes(`imagenet val (${imagenet}): 10 images (full size 50,000)`), a.out);
    const b = await run(["check", "--kind", "ade20k", "--root", ade]);
    assertEquals(b.code, 0, b.out);
    ok(b.out.includes(`ade20k train (${ade}): 3 images (full size 20,210)`), b.out);
    ok(b.out.includes("label histogram"), b.out);
    ok(/\n\s+1 wall: [\d,]+ /.test(b.out), b.out); // value 1 named by the ADE20K class list
    const c = await run(["check", "--kind", "synthetic", "--root", `${tmp}/synth`]);
    assertEquals(c.code, 0, c.out);
    ok(c.out.includes("synthetic val") && c.out.includes("2 images, "), c.out);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("ImageNet problems are listed with their paths; exit 1", async () => {
  const { tmp, imagenet } = await fixture();
  try {
    const bad = `${imagenet}/train/c03_star/c03_star_00013.JPEG`;
    const bytes = await Deno.readFile(bad);
    await Deno.writeFile(bad, bytes.subarray(0, bytes.length >> 1));
    await Deno.mkdir(`${imagenet}/train/zz_empty`);
    await Deno.writeTextFile(`${imagenet}/train/c00_disk/notes.txt`, "stray");
    const r = await run(["check", "--kind", "imagenet", "--root", imagenet, "--split", "train"]);
    assertEquals(r.code, 1, r.out);
    ok(r.out.includes(`${bad}: unreadable or truncated image`), r.out);
    ok(r.out.includes(`${imagenet}/train/zz_empty: empty class folder`), r.out);
    ok(r.out.includes(`${imagenet}/train/c00_disk/notes.txt: unexpected file`), r.out);
    ok(r.out.includes("data check: 3 problem(s)"), r.out);

    // Training fails on the same file with the same message, or skips and counts it.
    const ds = await openImagenet(imagenet, "train");
    const spec = {
      kind: "train" as const,
      size: 16,
      scale: [0.5, 1] as [number, number],
      ratio: [0.75, 4 / 3] as [number, number],
      hflip: 0.5,
    };
    const failing = new DataLoader(ds, { batchSize: 4, transform: spec, seed: 0 });
    await rejects(async () => {
      for await (const _ of failing.epoch(0));
    }, (e: Error) => e.message.startsWith(`${bad}: unreadable or truncated image`));
    const skipping = new DataLoader(ds, { batchSize: 4, transform: spec, seed: 0, onBadSample: "skip" });
    let seen = 0;
    for await (const b of skipping.epoch(0)) seen += b.labels.length;
    assertEquals([seen, skipping.skipped.length, skipping.skipped[0].path], [19, 1, bad]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("ADE20K problems: missing annotation, label out of range, size mismatch; exit 1", async () => {
  const { tmp, ade } = await fixture();
  try {
    const ann = `${ade}/ADEChallengeData2016/annotations`;
    await Deno.remove(`${ann}/training/ADE_train_00000002.png`);
    // Same size as its image, with a valid 150 and 255 and one invalid 151.
    const ds = await openAde20k(ade, "train");
    const { image } = await ds.load(2);
    const labels = new Uint8Array(image.width * image.height).fill(150);
    labels[0] = 255;
    labels[5] = 151;
    await Deno.writeFile(
      `${ann}/training/ADE_train_00000003.png`,
      await encodePng({ ...image, channels: 1, data: labels }),
    );
    await Deno.writeFile(
      `${ann}/validation/ADE_val_00000001.png`,
      await encodePng({ width: 7, height: 5, channels: 1, data: new Uint8Array(35).fill(1) }),
    );
    const r = await run(["check", "--kind", "ade20k", "--root", ade]);
    assertEquals(r.code, 1, r.out);
    const img = `${ade}/ADEChallengeData2016/images`;
    ok(
      r.out.includes(
        `${ann}/training/ADE_train_00000002.png: missing annotation for ${img}/training/ADE_train_00000002.jpg`,
      ),
      r.out,
    );
    ok(r.out.includes(`${ann}/training/ADE_train_00000003.png: label 151 out of range (1 pixel(s) above 150`), r.out);
    ok(r.out.includes(`${ann}/validation/ADE_val_00000001.png: annotation is 7x5 but its image`), r.out);
    ok(r.out.includes("data check: 3 problem(s)"), r.out);
    const seg = new DataLoader(await openAde20k(ade, "train"), {
      batchSize: 2,
      transform: { kind: "segmentation", size: 8 },
      seed: 0,
      shuffle: false,
    });
    await rejects(async () => {
      for await (const _ of seg.epoch(0));
    }, /ADE_train_00000002.png: missing annotation for/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("usage errors exit 2 with one line naming the flag, then the usage", async () => {
  const first = async (args: string[]) => {
    const r = await run(args);
    assertEquals(r.code, 2, r.out);
    ok(r.out.split("\n")[1].startsWith("usage: deno task data check|generate"), r.out);
    return r.out.split("\n")[0];
  };
  assertEquals(
    await first(["check", "--kind", "coco", "--root", "/x"]),
    "data: --kind must be one of imagenet, ade20k, synthetic, got 'coco'",
  );
  assertEquals(
    await first(["check", "--kind", "synthetic", "--concurrency", "many"]),
    "data: --concurrency: expected an integer >= 1, got 'many'",
  );
  assertEquals(await first(["check", "--kind", "imagenet"]), "data: --root DIR is required for --kind imagenet");
  assertEquals(
    await first(["check", "--kind", "imagenet", "--root", "/no/such/dir"]),
    "data: --root /no/such/dir: folder not found",
  );
  assertEquals(await first(["chek"]), "data: unknown command 'chek'; expected check or generate");
  assertEquals(await first(["check", "--knd", "imagenet"]), "data: unknown flag '--knd' (did you mean --kind?)");
});

Deno.test("data check never generates: a synthetic --root that does not exist is refused and not created", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const typo = `${tmp}/TYPO`;
    const r = await run(["check", "--kind", "synthetic", "--root", typo]);
    assertEquals(r.code, 2, r.out);
    assertEquals(
      r.out.split("\n")[0],
      `data: ${typo}: not found; make one with \`deno task data generate --root ${typo}\``,
    );
    await rejects(Deno.stat(typo), Deno.errors.NotFound);
    await Deno.mkdir(typo);
    const empty = await run(["check", "--kind", "synthetic", "--root", typo]);
    assertEquals(empty.code, 2, empty.out);
    ok(empty.out.startsWith(`data: ${typo}: holds no finished synthetic dataset (no synthetic.json)`), empty.out);
    assertEquals([...Deno.readDirSync(typo)], []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
