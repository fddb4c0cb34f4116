/**
 * CAPI's 2-D RoPE exactly as implemented (capi:model.py:49-82, SPEC 1.3), patch and
 * register coordinates (model.py:337-375).
 *
 * Quirk kept on purpose: channel `c` is rotated with the row angle and its partner
 * `c + hd/2` with the column angle, so the map is not an orthogonal rotation.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { Ops, Tensor } from "../ops/ops.ts";

/** `freqs` `[2, hd]` after `_device_weight_init`: row angles in the first half, column angles in the second. */
export function ropeFreqs(hd: number): HostTensor<Float32Array> {
  const q = hd / 4;
  const out = new Float32Array(2 * hd);
  for (let k = 0; k < q; k++) {
    // torch.linspace(0, -1, hd/4) exponent: log-spaced from 7 down to 7e-4.
    const e = q === 1 ? 0 : -k / (q - 1);
    const f = 2 * Math.PI * 7 * (7 / 7e-4) ** e;
    for (const c of [k, k + q]) { // f2 = [f, f]
      out[c] = f; // freqs[0, c], c < hd/2
      out[hd + hd / 2 + c] = f; // freqs[1, hd/2 + c]
    }
  }
  return { shape: [2, hd], data: out };
}

/** `linspace(0, 1, n)`; a single point is 0 as in torch. */
function linspace01(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (n === 1 ? 0 : i / (n - 1)));
}

/** Patch coordinates `[gh*gw, 2]` row-major: `(row/(gh-1), col/(gw-1))`. */
export function patchCoords(gh: number, gw: number): Float32Array {
  const r = linspace01(gh), c = linspace01(gw);
  const out = new Float32Array(gh * gw * 2);
  for (let i = 0; i < gh; i++) {
    for (let j = 0; j < gw; j++) {
      out[(i * gw + j) * 2] = r[i];
      out[(i * gw + j) * 2 + 1] = c[j];
    }
  }
  return out;
}

/** "edge" register coordinates `[R, 2]` before rescaling: the four sides of the unit square. */
export function edgeRegisterCoords(nRegisters: number): Float32Array {
  if (nRegisters % 4) throw new Error(`edgeRegisterCoords: ${nRegisters} registers is not a multiple of 4`);
  const s = nRegisters / 4;
  const out = new Float32Array(nRegisters * 2);
  for (let k = 0; k < s; k++) {
    const c = k / s;
    const pts = [[c, 0], [1, c], [1 - c, 1], [0, 1 - c]];
    for (let side = 0; side < 4; side++) {
      out[(side * s + k) * 2] = pts[side][0];
      out[(side * s + k) * 2 + 1] = pts[side][1];
    }
  }
  return out;
}

/**
 * Encoder coordinates `[B, R + n, 2]` for `n` kept patches per image: registers rescaled per
 * sample and axis to the bounding box of that sample's kept patches (`scale_reg_to_visible`),
 * then the kept patches. `kept[b*n + t]` is a patch index within image b.
 */
export function encoderCoords(
  all: Float32Array,
  regs: Float32Array,
  kept: ArrayLike<number>,
  batch: number,
): Float32Array {
  const n = kept.length / batch, r = regs.length / 2, l = r + n;
  const out = new Float32Array(batch * l * 2);
  for (let b = 0; b < batch; b++) {
    const mi = [Infinity, Infinity], ma = [-Infinity, -Infinity];
    for (let t = 0; t < n; t++) {
      const p = kept[b * n + t];
      for (let a = 0; a < 2; a++) {
        const v = all[p * 2 + a];
        out[(b * l + r + t) * 2 + a] = v;
        mi[a] = Math.min(mi[a], v);
        ma[a] = Math.max(ma[a], v);
      }
    }
    for (let k = 0; k < r; k++) {
      for (let a = 0; a < 2; a++) out[(b * l + k) * 2 + a] = mi[a] + regs[k * 2 + a] * (ma[a] - mi[a]);
    }
  }
  return out;
}

/** Signed permutation P with `x @ P = rotate_half(x) = [-x[hd/2:], x[:hd/2]]` (one matmul), `[hd, hd]`. */
export function rotateHalfMatrix(hd: number): HostTensor<Float32Array> {
  const h = hd / 2;
  const m = new Float32Array(hd * hd);
  for (let c = 0; c < h; c++) {
    m[(c + h) * hd + c] = -1; // out[c] = -x[c + h]
    m[c * hd + c + h] = 1; // out[c + h] = x[c]
  }
  return { shape: [hd, hd], data: m };
}

/** `cos`/`sin` of `coords @ freqs`: coords `[B, L, 2]`, freqs `[2, hd]` -> each `[B, 1, L, hd]`. */
export function ropeAngles(o: Ops, coords: Tensor, freqs: Tensor): { cos: Tensor; sin: Tensor } {
  const [b, l] = coords.shape;
  const hd = freqs.shape[1];
  const angle = o.reshape(o.matMul(o.reshape(coords, [b * l, 2]), freqs), [b, 1, l, hd]); // [B,1,L,hd]
  return { cos: o.cos(angle), sin: o.sin(angle) };
}

/** `x*cos + rotate_half(x)*sin` on `x` `[B, h, L, hd]`; `rot` is `rotateHalfMatrix(hd)` as a constant. */
export function applyRope(o: Ops, x: Tensor, cs: { cos: Tensor; sin: Tensor }, rot: Tensor): Tensor {
  const [b, h, l, hd] = x.shape;
  const rotated = o.reshape(o.matMul(o.reshape(x, [b * h * l, hd]), rot), [b, h, l, hd]);
  return o.add(o.mul(x, cs.cos), o.mul(rotated, cs.sin));
}
