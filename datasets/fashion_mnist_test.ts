/**
 * Known-answer tests of the Fashion-MNIST converter on tiny IDX files built here: header
 * parsing and its errors, gzip input, the written ImageNet layout (class folders in label
 * order, file names, per-class counts), the pixels that come back through the ImageNet
 * adapter, and reuse / refusal of an existing output folder.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { classFolder, FASHION_MNIST_CLASSES, main, parseIdx, writeFashionMnist } from "./fashion_mnist.ts";
import { openImagenet } from "./imagenet.ts";
import { decodeRgb } from "./decode.ts";

/** IDX bytes: 00 00 08 <ndims>, big-endian uint32 dims, data. */
function idx(dims: number[], data: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 0x08, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

Deno.test("parseIdx reads dims big-endian and the data after the header", () => {
  const bytes = idx([2, 1, 3], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(bytes.subarray(0, 16)), [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3]);
  const a = parseIdx(bytes, "x");
  assert.deepEqual(a.dims, [2, 1, 3]);
  assert.deepEqual(Array.from(a.data), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(parseIdx(idx([300], new Array(300).fill(7)), "y").dims, [300]); // 300 = 00 00 01 2c
});

Deno.test("parseIdx errors name the file and what was expected", () => {
  assert.throws(() => parseIdx(new Uint8Array([1, 2, 3, 4]), "a.idx"), {
    message: "a.idx: not an IDX file (expected magic 00 00 <type> <ndims>, found 01 02 03 04)",
  });
  assert.throws(() => parseIdx(new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 0]), "f.idx"), {
    message: "f.idx: IDX type 0xd not supported (expected 0x08, unsigned bytes)",
  });
  assert.throws(() => parseIdx(idx([2, 2], [1, 2, 3]), "t.idx"), {
    message: "t.idx: IDX dims [2, 2] need 16 bytes, file has 15 (truncated?)",
  });
});

const [H, W] = [4, 6];
/** Five 4x6 images: constant greys, then one left-black / right-white. */
const GREYS = [0, 64, 128, 255];
const LABELS_TRAIN = [3, 0, 9, 3, 1];

async function makeSource(dir: string, gzip: boolean): Promise<void> {
  const img: number[] = [];
  for (const g of GREYS) img.push(...new Array(H * W).fill(g));
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) img.push(x < W / 2 ? 0 : 255);
  const write = (name: string, bytes: Uint8Array) =>
    Deno.writeFile(`${dir}/${name}${gzip ? ".gz" : ""}`, gzip ? gzipSync(bytes) : bytes);
  await write("train-images-idx3-ubyte", idx([5, H, W], img));
  await write("train-labels-idx1-ubyte", idx([5], LABELS_TRAIN));
  await write("t10k-images-idx3-ubyte", idx([2, H, W], img.slice(0, 2 * H * W)));
  await write("t10k-labels-idx1-ubyte", idx([2], [5, 5]));
}

Deno.test("writeFashionMnist writes an ImageNet-layout folder the adapter reads back", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await makeSource(tmp, true);
    const out = `${tmp}/fm`;
    const s = await writeFashionMnist(out, { source: tmp, train: 5, val: 2, size: 8 });
    assert.equal(s.reused, false);
    assert.deepEqual(s.counts.train, [1, 1, 0, 2, 0, 0, 0, 0, 0, 1]);
    assert.deepEqual(s.counts.val, [0, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
    // Every class gets a folder (empty ones too), sorted in label order.
    const folders = [...Deno.readDirSync(`${out}/train`)].map((e) => e.name).sort();
    assert.deepEqual(folders, FASHION_MNIST_CLASSES.map((_, k) => classFolder(k)));
    assert.equal(classFolder(0), "n0_tshirt");
    assert.equal(classFolder(9), "n9_ankle_boot");
    assert.deepEqual([...Deno.readDirSync(`${out}/train/n3_dress`)].map((e) => e.name).sort(), [
      "fmnist_train_00000.JPEG",
      "fmnist_train_00003.JPEG",
    ]);
    assert.equal([...Deno.readDirSync(tmp)].filter((e) => e.name.includes(".tmp-")).length, 0);

    const train = await openImagenet(out, "train", { expected: false });
    assert.equal(train.numClasses, 10);
    assert.equal(train.length, 5);
    // ImageFolder order: class, then file name -> labels 0 (img 1), 1 (img 4), 3 (img 0, 3), 9 (img 2).
    assert.deepEqual(Array.from({ length: 5 }, (_, i) => train.label(i)), [0, 1, 3, 3, 9]);
    const grey = [64, 255, 0, 255, 128]; // grey of the image behind each sample (255: the half-white one)
    for (let i = 0; i < 4; i++) {
      const px = await decodeRgb(train.path(i));
      assert.deepEqual([px.width, px.height, px.channels], [8, 8, 3]);
      if (i === 1) {
        // left half black, right half white: column 0 dark, column 7 bright, R = G = B.
        assert.ok(px.data[0] <= 8 && px.data[7 * 3] >= 247, `edges ${px.data[0]}, ${px.data[21]}`);
        continue;
      }
      for (let j = 0; j < px.data.length; j++) {
        assert.ok(Math.abs(px.data[j] - grey[i]) <= 2, `sample ${i} byte ${j}: ${px.data[j]} vs ${grey[i]}`);
      }
    }
    const val = await openImagenet(out, "val", { expected: false });
    assert.deepEqual([val.length, val.label(0), val.label(1)], [2, 5, 5]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("an existing folder is reused with the same config and refused otherwise", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await makeSource(tmp, false); // plain, uncompressed IDX files are read too
    const out = `${tmp}/fm`;
    const lines: string[] = [];
    assert.equal(
      await main(["--out", out, "--source", tmp, "--train", "3", "--val", "1", "--size", "8"], (l) => lines.push(l)),
      0,
    );
    assert.ok(lines.at(-1)!.startsWith(`wrote ${out} in `), lines.join("\n"));
    const again = await writeFashionMnist(out, { source: tmp, train: 3, val: 1, size: 8 });
    assert.equal(again.reused, true);
    assert.deepEqual(again.counts.train, [1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    await assert.rejects(() => writeFashionMnist(out, { source: tmp, train: 4, val: 1, size: 8 }), {
      message: new RegExp(`^${out}: exists and is not a Fashion-MNIST folder made with .*"train":4`),
    });
    await assert.rejects(() => writeFashionMnist(`${tmp}/b`, { source: tmp, train: 6, val: 1 }), {
      message: `--train 6: ${tmp}/train holds only 5 images`,
    });
    await assert.rejects(() => writeFashionMnist(`${tmp}/c`, { source: `${tmp}/none` }), {
      message: `${tmp}/none/train-images-idx3-ubyte(.gz): not found; ` +
        "install Debian's dataset-fashion-mnist or pass --source DIR",
    });
    assert.equal(await main(["--out", `${tmp}/d`, "--train", "x"], () => {}), 2);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
