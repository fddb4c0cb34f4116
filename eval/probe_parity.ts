/**
 * Parity runner for `capi_probe` fixtures: the attentive and linear probe heads against
 * the official `AttnPoolClassifier` / `LinearClassifier` forward (capi: eval_classification.py).
 *
 * Heads are discovered from the manifest, not hard-coded: every `param.<P>.query_token` is an
 * attentive head and every other `param.<P>.linear.weight` a linear head; its output is
 * `out.<P>_logits`; its input is `input.tokens<S>` (attentive) or `input.vector<S>` (linear)
 * with `S` the prefix after `attn`/`linear`, falling back to the one input of the right rank
 * and width. Sizes come from the tensor shapes, so other widths, head counts and class
 * counts are checked the same way.
 *
 * @module
 */
import { tf } from "../model/engine.ts";
import type { Fixture, HostTensor } from "../model/fixture.ts";
import type { ParityReport } from "../model/parity.ts";
import { attnGridFromTorch, attnGridLogits, linearGridFromTorch, linearGridLogits } from "./probe_heads.ts";

function findInput(fx: Fixture, preferred: string, rank: number, width: number): HostTensor<Float32Array> {
  if (fx.has(preferred)) return fx.f32(preferred);
  const cands = fx.names().filter((n) => {
    if (!n.startsWith("input.")) return false;
    const s = fx.tensor(n).shape;
    return s.length === rank && s[rank - 1] === width;
  });
  if (cands.length !== 1) {
    throw new Error(
      `${fx.path}: no '${preferred}' and ${cands.length} rank-${rank} inputs of width ${width} ` +
        `(${cands.join(", ") || "none"}); expected exactly one`,
    );
  }
  return fx.f32(cands[0]);
}

const toTensor = (t: HostTensor<Float32Array>) => tf.tensor(t.data, t.shape, "float32");

/** Compare every probe head in the fixture; heads without an `out.<P>_logits` are skipped loudly. */
export async function runProbeParity(fx: Fixture, report: ParityReport): Promise<void> {
  const params = fx.names().filter((n) => n.startsWith("param."));
  const attnPrefixes = params.filter((n) => n.endsWith(".query_token")).map((n) => n.slice(6, -12));
  const linearPrefixes = params.filter((n) => n.endsWith(".linear.weight")).map((n) => n.slice(6, -14))
    .filter((p) => !attnPrefixes.includes(p));
  for (const p of attnPrefixes) {
    const out = `out.${p}_logits`;
    if (!fx.has(out)) throw new Error(`${fx.path}: attentive head '${p}' has no output tensor '${out}'`);
    const head = attnGridFromTorch({
      query_token: fx.f32(`param.${p}.query_token`),
      "kv.weight": fx.f32(`param.${p}.kv.weight`),
      "kv.bias": fx.f32(`param.${p}.kv.bias`),
      "linear.weight": fx.f32(`param.${p}.linear.weight`),
      "linear.bias": fx.f32(`param.${p}.linear.bias`),
    });
    const d = head.query.shape[1];
    const tokens = findInput(fx, `input.tokens${p.replace(/^attn/, "")}`, 3, d);
    const logits = tf.tidy(() => {
      const t = toTensor(tokens);
      const ps = Object.fromEntries(Object.entries(head).map(([k, v]) => [k, toTensor(v)]));
      const y = attnGridLogits(t, ps as Parameters<typeof attnGridLogits>[1]); // [B, 1, C]
      return tf.reshape(y, [y.shape[0], y.shape[2] as number]);
    });
    report.compare(out, await logits.data(), { shape: logits.shape }); // async: webgpu has no sync read
    logits.dispose();
  }
  for (const p of linearPrefixes) {
    const out = `out.${p}_logits`;
    if (!fx.has(out)) throw new Error(`${fx.path}: linear head '${p}' has no output tensor '${out}'`);
    const weight = fx.f32(`param.${p}.linear.weight`);
    const head = linearGridFromTorch(weight, fx.f32(`param.${p}.linear.bias`));
    const [classes, din] = weight.shape;
    const x = findInput(fx, `input.vector${p.replace(/^linear/, "")}`, 2, din);
    const logits = tf.tidy(() => {
      const y = linearGridLogits(toTensor(x), toTensor(head.w), toTensor(head.b), classes); // [B, 1, C]
      return tf.reshape(y, [y.shape[0], classes]);
    });
    report.compare(out, await logits.data(), { shape: logits.shape }); // async: webgpu has no sync read
    logits.dispose();
  }
}
