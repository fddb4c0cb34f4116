/**
 * `deno task convert`: a released `.pth` becomes float32 safetensors under official names
 * with metadata, which eval and embed then open without `--method`, giving the same features.
 */
import assert from "node:assert/strict";
import { initBackend } from "../model/engine.ts";
import { readSafetensors } from "../model/safetensors.ts";
import { openEncoder, RELEASED_FORMAT } from "../eval/checkpoint_encoder.ts";
import { convertReleased } from "./convert.ts";

const DIR = new URL("../model/torch/testdata/released/", import.meta.url).pathname;
await initBackend("wasm");

Deno.test("convert: CAPI and SimMIM released layouts -> official-name safetensors that encode identically", async () => {
  const dir = await Deno.makeTempDir();
  const log = () => {};
  try {
    for (const method of ["capi", "simmim"] as const) {
      const out = `${dir}/${method}.safetensors`;
      const n = await convertReleased(`${DIR}${method}_tiny.pth`, out, { method, log });
      const f = await readSafetensors(out);
      assert.equal(f.tensors.size, n);
      assert.equal(f.metadata.format, RELEASED_FORMAT);
      assert.equal(f.metadata.method, method);
      assert.equal(f.metadata.sourcePrefix, method === "capi" ? "backbone." : "model.");
      assert.ok(f.tensors.has(method === "capi" ? "encoder.blocks.0.residual1.fn.q_proj.weight" : "encoder.cls_token"));
      if (method === "simmim") {
        assert.ok(f.tensors.get("encoder.rel_pos_bias.relative_position_index")!.data instanceof Int32Array);
      }
      const images = (await readSafetensors(`${DIR}${method}_tiny_images.safetensors`)).tensors.get("images")!;
      const opt = { threads: 1, imageSize: [16, 16] as [number, number] };
      const a = await openEncoder(`${DIR}${method}_tiny.pth`, { ...opt, method });
      const b = await openEncoder(out, opt); // method and architecture from the metadata
      try {
        assert.equal(b.format, "safetensors");
        assert.equal(b.method, method);
        const [fa, fb] = [await a.encoder.encode(images as never), await b.encoder.encode(images as never)];
        assert.deepEqual(fb.patches, fa.patches);
        assert.deepEqual(fb.global, fa.global);
      } finally {
        a.dispose();
        b.dispose();
      }
    }
    await assert.rejects(
      () => convertReleased(`${DIR}mae_tiny.pth`, `${dir}/x.safetensors`, { method: "mae", preset: "vit_b", log }),
      /'model.cls_token' has shape \[1,1,16\] in the file; MAE preset vit_b expects \[1,1,768\]/,
    );
    await assert.rejects(() => convertReleased(`${DIR}mae_tiny.pth`, `${dir}/x.safetensors`, { log }), /pass --method/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["capi.safetensors", "simmim.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
