/** safetensors: round trip, header alignment, errors that name the file. */
import assert from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  openSafetensors,
  readSafetensors,
  type SafeTensor,
  writeSafetensors,
} from "./safetensors.ts";

Deno.test("safetensors round trip with metadata, F32 and I32, 8-byte aligned header", async () => {
  const tensors = new Map<string, SafeTensor>(
    [
      ["a.weight", { shape: [2, 3], data: new Float32Array([1, -2, 3.5, 4, 5, 6e-8]) }],
      ["idx", { shape: [3], data: new Int32Array([7, -1, 0]) }],
      ["scalar", { shape: [], data: new Float32Array([42]) }],
    ],
  );
  const bytes = encodeSafetensors(tensors, { step: "12" });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const back = decodeSafetensors(bytes);
  assert.equal(back.metadata.step, "12");
  for (const [k, t] of tensors) assert.deepEqual(back.tensors.get(k), t);
  const dir = await Deno.makeTempDir();
  await writeSafetensors(`${dir}/x.safetensors`, tensors);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["x.safetensors"]); // no temp file left
  assert.deepEqual(
    (await readSafetensors(`${dir}/x.safetensors`)).tensors.get("idx")?.data,
    new Int32Array([7, -1, 0]),
  );
  await assert.rejects(() => readSafetensors(`${dir}/missing.safetensors`), /missing.safetensors: cannot read/);
  assert.throws(() => decodeSafetensors(new Uint8Array(4), "f.st"), /f.st: not a safetensors file/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("safetensors: BF16, F16 and F64 tensors (written by PyTorch) read as float32, eagerly and lazily", async () => {
  const dir = new URL("./torch/testdata/", import.meta.url).pathname;
  const expected = JSON.parse(await Deno.readTextFile(`${dir}expected.json`)).tensors;
  const eager = await readSafetensors(`${dir}bf16.safetensors`);
  const lazy = await openSafetensors(`${dir}bf16.safetensors`);
  try {
    for (const name of ["bf16", "f16", "f64", "f32"]) {
      const want = (expected[`model.${name}`].values as number[]).map((v) => Math.fround(v));
      assert.deepEqual(Array.from(eager.tensors.get(name)!.data), want, name);
      const t = await lazy.tensors.get(name)!.read();
      assert.deepEqual([t.shape, Array.from(t.data)], [[3, 4], want], name);
    }
    assert.equal(lazy.tensors.get("bf16")!.dtype, "BF16");
    assert.deepEqual(lazy.metadata, { format: "pt" });
  } finally {
    lazy.close();
  }
  const bad = new TextEncoder().encode(JSON.stringify({ x: { dtype: "C64", shape: [1], data_offsets: [0, 8] } }));
  const buf = new Uint8Array(8 + bad.length + 8);
  new DataView(buf.buffer).setBigUint64(0, BigInt(bad.length), true);
  buf.set(bad, 8);
  assert.throws(() => decodeSafetensors(buf, "c.st"), /c.st: tensor 'x' has dtype C64; supported: F64, F32, F16, BF16/);
});
