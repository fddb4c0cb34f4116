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

Deno.test("trajectory manifests: zod-validated, then checked for consistency, naming file and key", () => {
  const T = 2;
  const t = (name: string, shape: number[], offset: number) => ({
    name,
    shape,
    dtype: "float32",
    offset,
    numel: shape.reduce((a, b) => a * b, 1),
    description: "",
  });
  const tensors = [
    t("input.x", [T, 3], 0),
    t("param.w", [3], 24),
    t("traj.loss", [T], 36),
    t("final.param.w", [3], 44),
  ];
  const group = { lr: 0.1, weight_decay: 0 };
  const trajectory = {
    num_steps: T,
    metrics: ["loss"],
    optimizers: [{ id: "main", betas: [0.9, 0.95], eps: 1e-8, groups: [{ id: "all", params: ["w"] }] }],
    hyper: [{ groups: { main: { all: group } } }, { groups: { main: { all: group } } }],
    final_optimizer_steps: { main: T },
    inert_state: [],
    noise_elements: [],
    tolerance: { rule: "r", margin: 10, floor: 1e-4, a: 1e-7, rate: 0.01, final: 1e-4 },
  };
  const m = {
    format: "mim-trajectory-v1",
    extends: "mim-fixture-v1",
    method: "toy",
    bin: "x.bin",
    byte_order: "little",
    tensors,
    trajectory,
  };
  const bytes = new Uint8Array(56);
  const fx = parseFixture("t.json", m, bytes);
  assert.equal(fx.trajectory?.num_steps, T);
  assert.equal(parseFixture("v1.json", { ...m, format: "mim-fixture-v1" }, bytes).trajectory, null);
  const bad = (patch: Record<string, unknown>, tr: Record<string, unknown> = {}) => () =>
    parseFixture("t.json", { ...m, ...patch, trajectory: { ...trajectory, ...tr } }, bytes);
  assert.throws(bad({}, { hyper: [trajectory.hyper[0]] }), /t.json: trajectory.hyper has 1 entries, num_steps is 2/);
  assert.throws(bad({}, { metrics: ["loss", "loss_capi"] }), /metric 'loss_capi' needs a tensor 'traj.loss_capi'/);
  assert.throws(
    bad({ tensors: [t("input.x", [3, 2], 0), ...tensors.slice(1)] }),
    /'input.x' has shape \[3,2\]; inputs need a leading axis of num_steps = 2/,
  );
  assert.throws(
    bad({}, { optimizers: [{ ...trajectory.optimizers[0], groups: [{ id: "all", params: ["v"] }] }] }),
    /optimizer 'main' group 'all' names 'v', no 'param.v'/,
  );
  assert.throws(bad({}, { hyper: [{ groups: { main: {} } }, trajectory.hyper[1]] }), /hyper\[0\].groups.main lacks/);
  assert.throws(bad({ tensors: tensors.slice(0, 3) }), /'param.w' has no final state 'final.param.w'/);
  assert.throws(bad({}, { num_steps: 0 }), /not a valid mim-trajectory-v1 manifest:\n {2}trajectory.num_steps/);
  assert.throws(bad({}, { extra: 1 }), /trajectory[\s\S]*extra/);
});
