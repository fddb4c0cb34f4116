/**
 * The reference ViT written against `Ops` (vit_step_spec.ts) is the model of
 * model/kernels/speed_vit.ts: same config, the same initial parameters by name, and the same loss
 * on the same batch (onnxruntime CPU against tfjs at a small size); a few Adam steps lower it.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { patchifyHost, SPEED_VIT, SpeedVit } from "../kernels/speed_vit.ts";
import { REFERENCE_VIT, VIT_HYPER, vitDraws, vitParams, vitStepSpec } from "./vit_step_spec.ts";
import { OrtTrainEngine } from "./ort_train_engine.ts";

const SMALL = { img: 16, patch: 4, dim: 24, depth: 2, heads: 3, mlpRatio: 4 };

Deno.test("reference ViT: config and initial parameters equal model/kernels/speed_vit.ts", async () => {
  await initBackend("cpu");
  assert.deepEqual(REFERENCE_VIT, SPEED_VIT);
  const theirs = new SpeedVit(SMALL, 3);
  const ours = vitParams(SMALL, 3);
  const names = [...theirs.params.trainable().keys()];
  assert.deepEqual([...ours.keys()].sort(), names.sort());
  for (const n of names) assert.deepEqual(ours.get(n)!.value.data, theirs.params.get(n).dataSync(), n);
  theirs.dispose();
});

Deno.test("reference ViT: the loss on onnxruntime equals tfjs's SpeedVit, and Adam steps lower it", async () => {
  await initBackend("cpu");
  const batch = 4, draws = vitDraws(SMALL, batch);
  const tfModel = new SpeedVit(SMALL, 0);
  const tokens = (SMALL.img / SMALL.patch) ** 2;
  const patches = tf.tensor(patchifyHost(draws.images.data as Float32Array, batch, SMALL.img, SMALL.patch), [
    batch,
    tokens,
    3 * SMALL.patch ** 2,
  ]);
  const want = tfModel.loss(patches).dataSync()[0];
  tf.dispose([patches]);
  tfModel.dispose();
  const engine = new OrtTrainEngine(vitStepSpec(SMALL, 0));
  try {
    const hyper = { groups: { main: { all: { lr: 3e-3, weightDecay: 0 } } } };
    const first = (await (await engine.step(draws, hyper)).read()).loss;
    assert.ok(Math.abs(first - want) <= 1e-5 * want, `ort ${first} vs tfjs ${want}`);
    let last = first;
    for (let i = 0; i < 4; i++) last = (await (await engine.step(draws, hyper)).read()).loss;
    assert.ok(last < 0.9 * first, `loss ${first} -> ${last}`);
    assert.equal(VIT_HYPER.groups.main.all.weightDecay, 0);
  } finally {
    engine.dispose();
  }
});
