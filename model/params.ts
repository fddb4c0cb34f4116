/**
 * `ParamStore`: tfjs variables by their official state-dict names (the tfjs engine's parameters).
 *
 * Models read parameters by name through a getter, so checkpoints, parity fixtures and
 * optimizers all speak the official names (`backbone.encoder.blocks.0.residual1.fn.q_proj.weight`,
 * `blocks.0.attn.qkv.weight`, ...). The store owns its variables: call `dispose()`.
 *
 * @module
 */
import { tf } from "./engine.ts";
import type { HostTensor } from "./fixture.ts";

export class ParamStore {
  readonly #vars = new Map<string, tf.Variable>();

  /** Add a variable named `name` holding `value` (host data is copied). */
  add(name: string, value: HostTensor<Float32Array> | tf.Tensor, trainable = true): tf.Variable {
    if (this.#vars.has(name)) throw new Error(`ParamStore: '${name}' added twice`);
    const t = value instanceof tf.Tensor ? value : tf.tensor(value.data, value.shape, "float32");
    const v = tf.variable(t, trainable, `${name}#${crypto.randomUUID()}`);
    if (!(value instanceof tf.Tensor)) t.dispose();
    this.#vars.set(name, v);
    return v;
  }

  get(name: string): tf.Variable {
    const v = this.#vars.get(name);
    if (!v) {
      const near = [...this.#vars.keys()].filter((k) => k.split(".").pop() === name.split(".").pop()).slice(0, 5);
      throw new Error(`ParamStore: no parameter '${name}'${near.length ? ` (similar: ${near.join(", ")})` : ""}`);
    }
    return v;
  }

  has(name: string): boolean {
    return this.#vars.has(name);
  }

  names(): string[] {
    return [...this.#vars.keys()];
  }

  /** Variables marked trainable, by name. */
  trainable(): Map<string, tf.Variable> {
    return new Map([...this.#vars].filter(([, v]) => v.trainable));
  }

  /** Overwrite parameters from host tensors; every shape must match. */
  assign(values: Map<string, HostTensor<Float32Array>> | Record<string, HostTensor<Float32Array>>): void {
    const entries = values instanceof Map ? [...values] : Object.entries(values);
    for (const [name, t] of entries) {
      const v = this.get(name);
      if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) {
        throw new Error(`ParamStore: '${name}' has shape [${v.shape}], got [${t.shape}]`);
      }
      tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, "float32")));
    }
  }

  /** Copy every parameter to the host (for checkpoints). */
  async toHost(): Promise<Map<string, HostTensor<Float32Array>>> {
    const out = new Map<string, HostTensor<Float32Array>>();
    for (const [name, v] of this.#vars) {
      out.set(name, { shape: [...v.shape], data: (await v.data()) as Float32Array });
    }
    return out;
  }

  dispose(): void {
    for (const v of this.#vars.values()) v.dispose();
    this.#vars.clear();
  }
}
