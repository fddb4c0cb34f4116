/**
 * `specFromFixture`: a method's `TrainStepSpec` with a fixture's `param.*` tensors as initial
 * values, so a parity runner runs the method's own training step on the reference weights.
 * Names and shapes must match the spec exactly; the error lists what differs.
 *
 * @module
 */
import type { Fixture } from "./fixture.ts";
import type { ParamSpec, TrainStepSpec } from "./train_step.ts";

/** `spec` with every parameter's value read from `fx` (`param.<name>`); `ignore`: fixture buffers that are not parameters. */
export function specFromFixture(spec: TrainStepSpec, fx: Fixture, ignore: string[] = []): TrainStepSpec {
  const theirs = new Set(fx.withPrefix("param.").filter((n) => !ignore.includes(n)));
  const missing = [...spec.params.keys()].filter((n) => !theirs.has(n));
  const extra = [...theirs].filter((n) => !spec.params.has(n));
  if (missing.length || extra.length) {
    throw new Error(`${fx.path}: parameter names differ from ours: missing [${missing}], unexpected [${extra}]`);
  }
  const params = new Map<string, ParamSpec>();
  for (const [name, p] of spec.params) {
    const t = fx.f32(`param.${name}`);
    if (t.shape.join(",") !== p.value.shape.join(",")) {
      throw new Error(`${fx.path}: param.${name} has shape [${t.shape}], the config implies [${p.value.shape}]`);
    }
    params.set(name, { value: t, trainable: p.trainable });
  }
  return { ...spec, params };
}
