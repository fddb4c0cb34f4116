/**
 * ImageNet adapter: flat validation folder labelled by the Kaggle LOC_val_solution.csv gives
 * the same labels as the class-folder layout; class index = sorted train folders.
 */
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { encodeJpeg } from "./decode.ts";
import { openImagenet } from "./imagenet.ts";
import { ensureSynthetic } from "./synthetic.ts";
import { copy } from "./testdata/copy_tree.ts";

Deno.test("flat val + LOC_val_solution.csv labels like val/<wnid>/ folders", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const synth = await ensureSynthetic({
      root: `${tmp}/s`,
      config: { trainPerClass: 1, valPerClass: 2, segTrain: 1, segVal: 1 },
    });
    const root = `${tmp}/in`;
    await copy(`${synth}/imagenet`, root);
    const folders = await openImagenet(root, "val");
    const want = new Map(
      Array.from({ length: folders.length }, (_, i) => [folders.path(i).split("/").pop()!, folders.label(i)]),
    );
    await rejects(async () => {
      await Deno.remove(`${root}/val`, { recursive: true });
      await Deno.mkdir(`${root}/val`);
      for (let i = 0; i < folders.length; i++) {
        await Deno.copyFile(
          folders.path(i).replace(root, synth + "/imagenet"),
          `${root}/val/${folders.path(i).split("/").pop()}`,
        );
      }
      await openImagenet(root, "val");
    }, /flat validation folder but no labels: expected .*LOC_val_solution.csv/);
    const rows = [...want.keys()].filter((f) => !f.includes("00003")).map((f) => {
      const wnid = f.replace(/_\d+\.JPEG$/, "");
      return `${f.replace(".JPEG", "")},${wnid} 1 2 30 40 ${wnid} 5 6 7 8`;
    });
    await Deno.writeTextFile(`${root}/LOC_val_solution.csv`, ["ImageId,PredictionString", ...rows].join("\n") + "\n");
    const flat = await openImagenet(root, "val");
    assertEquals(flat.length, want.size - 1);
    for (let i = 0; i < flat.length; i++) assertEquals(flat.label(i), want.get(flat.path(i).split("/").pop()!));
    assertEquals(flat.layoutProblems.length, 1);
    ok(flat.layoutProblems[0].path.endsWith("_00003.JPEG") && flat.layoutProblems[0].problem.startsWith("no label in"));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("flat val + devkit ground truth: ILSVRC2012_IDs mapped through meta.mat (plain and compressed)", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const jpeg = await encodeJpeg({ width: 8, height: 8, channels: 3, data: new Uint8Array(192).fill(90) });
    // testdata/devkit_meta*.mat: id 1 n02119789, 2 n01440764, 3 n03000134, 4 n01443537 (+ a parent, id 1001).
    const wnids = ["n01440764", "n01443537", "n02119789", "n03000134"];
    for (const [layout, meta] of [["devkit", "devkit_meta_z.mat"], ["root", "devkit_meta.mat"]]) {
      const root = `${tmp}/${layout}`;
      for (const w of wnids) {
        await Deno.mkdir(`${root}/train/${w}`, { recursive: true });
        await Deno.writeFile(`${root}/train/${w}/${w}_1.JPEG`, jpeg);
      }
      await Deno.mkdir(`${root}/val`);
      for (let k = 1; k <= 4; k++) await Deno.writeFile(`${root}/val/ILSVRC2012_val_0000000${k}.JPEG`, jpeg);
      const data = layout === "devkit" ? `${root}/ILSVRC2012_devkit_t12/data` : root;
      await Deno.mkdir(data, { recursive: true });
      await Deno.copyFile(new URL(`./testdata/${meta}`, import.meta.url), `${data}/meta.mat`);
      await Deno.writeTextFile(`${data}/ILSVRC2012_validation_ground_truth.txt`, "3\n1\n4\n2\n");
      const val = await openImagenet(root, "val");
      assertEquals(val.classNames, wnids);
      assertEquals(Array.from({ length: 4 }, (_, i) => val.label(i)), [3, 2, 1, 0], layout);
      assertEquals(val.layoutProblems, []);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
