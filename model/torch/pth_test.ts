import assert from "node:assert/strict";
import { missingTensorError, openTensorSource } from "../tensor_source.ts";
import { openTorchCheckpoint } from "./pth.ts";

const dir = new URL("./testdata/", import.meta.url).pathname;
const expected = JSON.parse(await Deno.readTextFile(`${dir}expected.json`)).tensors as Record<
  string,
  { shape: number[]; dtype: string; values: number[] }
>;
const DTYPES: Record<string, string> = {
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  float64: "F64",
  int64: "I64",
};

for (const [file, format] of [["dtypes_zip.pth", "pth-zip"], ["dtypes_legacy.pth", "pth-legacy"]]) {
  Deno.test(`openTorchCheckpoint: ${format} - every dtype, strided and shared-storage views, opaque leaves`, async () => {
    const ck = await openTorchCheckpoint(dir + file);
    try {
      assert.equal(ck.format, format);
      assert.deepEqual([...ck.tensors.keys()].sort(), Object.keys(expected).sort());
      for (const [name, e] of Object.entries(expected)) {
        const entry = ck.tensors.get(name)!;
        assert.equal(entry.dtype, DTYPES[e.dtype], name);
        const t = await entry.read();
        assert.deepEqual(t.shape, e.shape, name);
        // Float32 of the stored value: exact for f32/f16/bf16; f64 and int64 round to nearest float32.
        assert.deepEqual(Array.from(t.data), e.values.map((v) => Math.fround(v)), name);
      }
      assert.deepEqual(Array.from((await ck.tensors.get("model.i64")!.readInt32()).data), expected["model.i64"].values);
      await assert.rejects(() => ck.tensors.get("model.f32")!.readInt32(), /'model.f32': a F32 tensor where integers/);
      assert.deepEqual(
        [...ck.opaque],
        [["config", "yacs.config.CfgNode"], ["max_accuracy", "numpy.core.multiarray.scalar"]],
      );
    } finally {
      ck.close();
    }
  });
}

Deno.test("openTorchCheckpoint: bad files fail with one line naming the file and the problem", async () => {
  const marker = "/tmp/mimbench_pickle_executed";
  await Deno.remove(marker).catch(() => {});
  await assert.rejects(() => openTorchCheckpoint(`${dir}os_system.pth`), {
    message: `${dir}os_system.pth (os_system/data.pkl): the pickle names the global 'posix.system', which a ` +
      `checkpoint never needs and which could run code when unpickled; refusing the file (nothing was executed)`,
  });
  assert.equal(await Deno.stat(marker).then(() => true, () => false), false, "the payload must not have run");
  await assert.rejects(() => openTorchCheckpoint(`${dir}truncated.pth`), {
    message: `${dir}truncated.pth: not a zip archive, or truncated (no end-of-central-directory record in the ` +
      `last 1526 bytes); re-download the file`,
  });
  await assert.rejects(() => openTorchCheckpoint(`${dir}bad_magic.pth`), {
    message: `${dir}bad_magic.pth: wrong magic number 0x1950a86a20f9469cfc6d (a legacy torch file starts with ` +
      `0x1950a86a20f9469cfc6c): not a PyTorch checkpoint, or a corrupt one`,
  });
  await assert.rejects(
    () => openTorchCheckpoint(`${dir}expected.json`),
    /expected.json: not a PyTorch checkpoint \(first bytes 7b/,
  );
  const short = await openTorchCheckpoint(`${dir}short_storage.pth`);
  try {
    await assert.rejects(() => short.tensors.get("weight")!.read(), {
      message: `${dir}short_storage.pth: tensor 'weight' [3,3] (offset 0, strides [3,1]) needs 9 elements of its ` +
        `storage '0', which holds 6: the file is inconsistent or truncated`,
    });
  } finally {
    short.close();
  }
});

Deno.test("openTorchCheckpoint: a legacy file cut inside its storages is refused at open", async () => {
  const bytes = await Deno.readFile(`${dir}dtypes_legacy.pth`);
  const path = await Deno.makeTempFile({ suffix: ".pth" });
  try {
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 10));
    // Cut inside the last storage's bytes or its count header (the storage order follows object ids).
    await assert.rejects(
      () => openTorchCheckpoint(path),
      /needs bytes up to \d+, the file has \d+ \(truncated\?\)|header\): the file ends at byte \d+, \d+ bytes too early/,
    );
    await Deno.writeFile(path, bytes.subarray(0, 300));
    await assert.rejects(() => openTorchCheckpoint(path), /the pickle ends early .*: the file is truncated/);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("openTorchCheckpoint: a tensor built by an unknown global is a placeholder, an error only when needed", async () => {
  const ck = await openTorchCheckpoint(`${dir}numpy_weight.pth`);
  try {
    assert.deepEqual([...ck.tensors.keys()], ["b"]);
    assert.deepEqual([...ck.opaque], [["w", "numpy.core.multiarray._reconstruct"]]);
    assert.equal(
      missingTensorError(ck, "w", "MAE weight").message,
      `${dir}numpy_weight.pth: MAE weight 'w' cannot be read: 'w' is built by the python global ` +
        `'numpy.core.multiarray._reconstruct', which this reader does not run (it only rebuilds tensors and plain ` +
        `containers); re-save the state dict with torch.save(model.state_dict())`,
    );
  } finally {
    ck.close();
  }
});

Deno.test("openTensorSource: safetensors whose header length starts with 0x80 is not taken for a pickle", async () => {
  // A 32,384-byte header: length bytes 80 7e 00 .., the first byte of a pickle's PROTO opcode.
  const header = JSON.stringify({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } });
  const padded = header.padEnd(0x7e80, " ");
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    const bytes = new Uint8Array(8 + padded.length + 4);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(padded.length), true);
    bytes.set(new TextEncoder().encode(padded), 8);
    new DataView(bytes.buffer).setFloat32(8 + padded.length, 2.5, true);
    assert.equal(bytes[0], 0x80);
    await Deno.writeFile(path, bytes);
    const src = await openTensorSource(path);
    try {
      assert.equal(src.format, "safetensors");
      assert.deepEqual([...(await src.tensors.get("w")!.read()).data], [2.5]);
    } finally {
      src.close();
    }
  } finally {
    await Deno.remove(path);
  }
});
