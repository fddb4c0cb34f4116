/**
 * ImageNet adapter: flat validation folder labelled by the Kaggle LOC_val_solution.csv gives
 * the same labels as the class-folder layout; class index = sorted train folders.
 */
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
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
    ok(flat.layoutProblems[0].path.endsWith("_00003.JPEG") && flat.layoutProblems[0].problem.startsWith("no row in"));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
