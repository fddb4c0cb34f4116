/** safetensors: round trip, header alignment, errors that name the file. */
import assert from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
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
