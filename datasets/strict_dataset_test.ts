/**
 * Strict reading: problems that would shrink a data set are errors naming every path, unless
 * `allowMissing`, which leaves the affected samples out (every epoch alike) and returns them.
 */
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { copy } from "./testdata/copy_tree.ts";
import { openAde20k } from "./ade20k.ts";
import { openImagenet } from "./imagenet.ts";
import { DataLoader } from "./loader.ts";
import { strictDataset } from "./strict_dataset.ts";
import { ensureSynthetic } from "./synthetic.ts";

const TINY = { trainPerClass: 2, valPerClass: 1, segTrain: 3, segVal: 2 };

async function fixture(): Promise<{ tmp: string; imagenet: string; ade: string }> {
  const tmp = await Deno.makeTempDir();
  const synth = await ensureSynthetic({ root: `${tmp}/synth`, config: TINY });
  await copy(`${synth}/imagenet`, `${tmp}/imagenet`);
  await copy(`${synth}/ade20k`, `${tmp}/ade`);
  return { tmp, imagenet: `${tmp}/imagenet`, ade: `${tmp}/ade` };
}

Deno.test("clean data passes unchanged, with or without allowMissing", async () => {
  const { tmp, imagenet } = await fixture();
  try {
    const ds = await openImagenet(imagenet, "val");
    assertEquals((await strictDataset(ds, { allowMissing: false })).dataset, ds);
    const lenient = await strictDataset(ds, { allowMissing: true });
    assertEquals([lenient.dataset, lenient.skipped], [ds, []]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("unlabelled image and unknown class folder: an error naming both paths; allowMissing skips them", async () => {
  const { tmp, imagenet } = await fixture();
  try {
    // Flat val with a CSV that labels all but one image, and a val folder of a class train lacks.
    const val = `${imagenet}/val`;
    const files: string[] = [];
    for (const d of Deno.readDirSync(val)) {
      for (const f of Deno.readDirSync(`${val}/${d.name}`)) {
        await Deno.rename(`${val}/${d.name}/${f.name}`, `${val}/${f.name}`);
        files.push(f.name);
      }
      await Deno.remove(`${val}/${d.name}`);
    }
    files.sort();
    const unlabelled = `${val}/${files[3]}`;
    const rows = files.filter((_, i) => i !== 3).map((f) =>
      `${f.replace(".JPEG", "")},${f.replace(/_\d+\.JPEG$/, "")} 1 2 3 4`
    );
    await Deno.writeTextFile(`${imagenet}/LOC_val_solution.csv`, ["ImageId,PredictionString", ...rows].join("\n"));
    const ds = await openImagenet(imagenet, "val");
    assertEquals(ds.length, files.length - 1);
    await rejects(
      strictDataset(ds, { allowMissing: false }),
      (e: Error) =>
        e.message.startsWith(
          `imagenet val (${imagenet}): 1 problem(s) would leave data out; fix them (\`deno task data check\` ` +
            "lists every one) or pass --allow-missing to skip them:\n",
        ) && e.message.includes(`\n  ${unlabelled}: no label in ${imagenet}/LOC_val_solution.csv`),
    );
    const lines: string[] = [];
    const lenient = await strictDataset(ds, { allowMissing: true, log: (l) => lines.push(l) });
    assertEquals(lenient.skipped.map((p) => p.path), [unlabelled]);
    assertEquals(lenient.dataset.length, ds.length); // the unlabelled image was never a sample
    ok(lines[0].includes("skipping 1 problem(s) (--allow-missing), 0 of 9 listed samples left out"), lines[0]);

    // The folder layout again, with a val folder of a class that train does not have.
    await Deno.remove(val, { recursive: true });
    await copy(`${imagenet}/train`, val);
    await Deno.rename(`${val}/c03_star`, `${val}/zz_not_a_class`);
    const folders = await openImagenet(imagenet, "val");
    await rejects(
      strictDataset(folders, { allowMissing: false }),
      (e: Error) =>
        e.message.endsWith(
          `\n  ${val}/zz_not_a_class: class folder 'zz_not_a_class' is not among the 10 train classes`,
        ),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("missing annotation and unreadable image: strict fails naming them; allowMissing leaves them out", async () => {
  const { tmp, ade } = await fixture();
  try {
    const base = `${ade}/ADEChallengeData2016`;
    await Deno.remove(`${base}/annotations/training/ADE_train_00000002.png`);
    const broken = `${base}/images/training/ADE_train_00000003.jpg`;
    const bytes = await Deno.readFile(broken);
    await Deno.writeFile(broken, bytes.subarray(0, bytes.length >> 1));
    const ds = await openAde20k(ade, "train");
    await rejects(
      strictDataset(ds, { allowMissing: false }),
      (e: Error) =>
        e.message.includes(
          `\n  ${base}/annotations/training/ADE_train_00000002.png: missing annotation for ` +
            `${base}/images/training/ADE_train_00000002.jpg`,
        ),
    );
    const { dataset, skipped } = await strictDataset(ds, { allowMissing: true });
    assertEquals(skipped.map((p) => p.path.split("/").pop()), ["ADE_train_00000002.png", "ADE_train_00000003.jpg"]);
    assertEquals([ds.length, dataset.length], [3, 1]);
    assertEquals(dataset.path(0), `${base}/images/training/ADE_train_00000001.jpg`);
    assertEquals(dataset.layoutProblems, []);
    // Every epoch reads the same smaller set, with no failure.
    const loader = new DataLoader(dataset, { batchSize: 2, transform: { kind: "segmentation", size: 8 }, seed: 0 });
    for (const epoch of [0, 1]) {
      const indices = [];
      for await (const b of loader.epoch(epoch)) indices.push(...b.indices);
      assertEquals(indices, [0]);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
