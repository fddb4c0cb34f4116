/**
 * AdamW with torch semantics (`torch.optim.AdamW`), per-parameter lr and weight decay.
 *
 * One step, for each parameter p with gradient g at step t (1-based):
 *   p *= 1 - lr*wd                      (decoupled decay, scaled by lr)
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * Parameter groups are expressed as a function giving each parameter's lr and wd,
 * so CAPI's multipliers, MAE's timm grouping and SimMIM's exclusions all fit.
 *
 * @module
 */
import { tf } from "./engine.ts";
import type { HostTensor } from "./fixture.ts";

export interface AdamWOptions {
  betas: [number, number];
  eps: number;
}

/**
 * Learning rate and weight decay of one parameter at the current iteration. A tensor
 * broadcastable to the parameter gives each slice its own value (the probe grids stack
 * many classifiers with different lr/wd into one parameter).
 */
export interface ParamHyper {
  lr: number | tf.Tensor;
  weightDecay: number | tf.Tensor;
}

export class AdamW {
  readonly opts: AdamWOptions;
  #step = 0;
  readonly #m = new Map<string, tf.Variable>();
  readonly #v = new Map<string, tf.Variable>();

  constructor(opts: AdamWOptions) {
    this.opts = opts;
  }

  /** Steps taken so far (torch's `state['step']`). */
  get stepCount(): number {
    return this.#step;
  }

  /**
   * Update `params` in place from `grads` (same names). Parameters without a gradient
   * are left alone, as torch skips `p.grad is None`.
   */
  step(
    params: Map<string, tf.Variable>,
    grads: Map<string, tf.Tensor> | Record<string, tf.Tensor>,
    hyper: (name: string) => ParamHyper,
  ): void {
    this.#step += 1;
    const t = this.#step;
    const [b1, b2] = this.opts.betas;
    const bc1 = 1 - b1 ** t;
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    const gradOf = (n: string) => grads instanceof Map ? grads.get(n) : grads[n];
    for (const [name, p] of params) {
      const g = gradOf(name);
      if (!g) continue;
      const { lr, weightDecay } = hyper(name);
      const m = this.#slot(this.#m, name, p);
      const v = this.#slot(this.#v, name, p);
      tf.tidy(() => {
        const mNew = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        m.assign(mNew);
        v.assign(vNew);
        const scalar = typeof lr === "number" && typeof weightDecay === "number";
        const decayed = scalar
          ? (weightDecay !== 0 && lr !== 0 ? tf.mul(p, 1 - lr * weightDecay) : p)
          : tf.mul(p, tf.sub(1, tf.mul(lr, weightDecay)));
        const denom = tf.add(tf.div(tf.sqrt(vNew), bc2Sqrt), this.opts.eps);
        const stepSize = typeof lr === "number" ? lr / bc1 : tf.div(lr, bc1);
        p.assign(tf.sub(decayed, tf.mul(tf.div(mNew, denom), stepSize)));
      });
    }
  }

  #slot(map: Map<string, tf.Variable>, name: string, p: tf.Variable): tf.Variable {
    let s = map.get(name);
    if (!s) {
      const zero = tf.zerosLike(p);
      s = tf.variable(zero, false);
      zero.dispose(); // the variable holds its own reference to the buffer
      map.set(name, s);
    }
    return s;
  }

  /** Optimizer state for checkpoints: `exp_avg.<name>`, `exp_avg_sq.<name>` and the step count. */
  async stateToHost(): Promise<{ step: number; tensors: Map<string, HostTensor<Float32Array>> }> {
    const tensors = new Map<string, HostTensor<Float32Array>>();
    for (const [prefix, map] of [["exp_avg", this.#m], ["exp_avg_sq", this.#v]] as const) {
      for (const [name, s] of map) {
        tensors.set(`${prefix}.${name}`, { shape: [...s.shape], data: (await s.data()) as Float32Array });
      }
    }
    return { step: this.#step, tensors };
  }

  /** Restore what `stateToHost` produced. */
  loadState(step: number, tensors: Map<string, HostTensor<Float32Array>>): void {
    this.dispose();
    this.#step = step;
    for (const [key, t] of tensors) {
      const dot = key.indexOf(".");
      const prefix = key.slice(0, dot);
      const name = key.slice(dot + 1);
      const map = prefix === "exp_avg" ? this.#m : prefix === "exp_avg_sq" ? this.#v : null;
      if (!map) throw new Error(`AdamW.loadState: unexpected state tensor '${key}'`);
      map.set(name, tf.variable(tf.tensor(t.data, t.shape, "float32"), false));
    }
  }

  dispose(): void {
    for (const s of [...this.#m.values(), ...this.#v.values()]) s.dispose();
    this.#m.clear();
    this.#v.clear();
  }
}

/** Scale gradients so their global L2 norm is at most `maxNorm` (torch `clip_grad_norm_`, eps 1e-6). */
export function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number): Map<string, tf.Tensor> {
  const coef = tf.tidy(() => {
    const total = tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))));
    return tf.minimum(tf.div(maxNorm, tf.add(total, 1e-6)), 1);
  });
  const out = new Map([...grads].map(([n, g]) => [n, tf.mul(g, coef)] as const));
  coef.dispose();
  return out;
}
