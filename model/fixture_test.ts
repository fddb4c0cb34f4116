import assert from "node:assert/strict";
import { loadFixture, parseFixture } from "./fixture.ts";

const TINY = new URL("./testdata/capi_tiny.json", import.meta.url).pathname;

Deno.test("reads typed tensors by name with their shapes", async () => {
  const fx = await loadFixture(TINY);
  const images = fx.f32("input.images");
  assert.deepEqual(images.shape, [4, 3, 32, 32]);
  assert.equal(images.data.length, 4 * 3 * 32 * 32);
  const masks = fx.i32("input.masks");
  assert.ok(masks.data.every((v) => v === 0 || v === 1));
  assert.equal((fx.config.model as { patch_size: number }).patch_size, 4);
  assert.throws(() => fx.f32("input.masks"), /tensor 'input.masks' is int32, expected float32/);
  assert.throws(() => fx.tensor("nope"), /no tensor 'nope' in the manifest/);
});

Deno.test("bad manifests fail with the path and the problem", () => {
  const entry = { name: "a", shape: [2, 2], dtype: "float32", offset: 0, numel: 4, description: "" };
  const base = { format: "mim-fixture-v1", bin: "x.bin", byte_order: "little", tensors: [entry] };
  const bytes = new Uint8Array(16);
  assert.equal(parseFixture("m.json", base, bytes).f32("a").data.length, 4);
  assert.throws(
    () => parseFixture("m.json", { ...base, format: "v2" }, bytes),
    /m.json: not a valid mim-fixture-v1 manifest:\n {2}format/,
  );
  assert.throws(
    () => parseFixture("m.json", { ...base, tensors: [{ ...entry, dtype: "float16" }] }, bytes),
    /tensors.0.dtype/,
  );
  assert.throws(
    () => parseFixture("m.json", { ...base, tensors: [{ ...entry, numel: 5 }] }, bytes),
    /tensor 'a': shape \[2,2\] has 4 elements but numel is 5/,
  );
  assert.throws(
    () => parseFixture("m.json", base, new Uint8Array(12)),
    /tensor 'a' needs bytes \[0, 16\) but x.bin has 12 bytes/,
  );
});

Deno.test("a missing data file is named", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/f.json`, JSON.stringify({ format: "mim-fixture-v1", bin: "f.bin" }));
  await assert.rejects(loadFixture(`${dir}/f.json`), new RegExp(`cannot read data file ${dir}/f.bin`));
  await Deno.writeTextFile(`${dir}/g.json`, "{ not json");
  await assert.rejects(loadFixture(`${dir}/g.json`), /g.json: manifest is not valid JSON/);
  await Deno.remove(dir, { recursive: true });
});
