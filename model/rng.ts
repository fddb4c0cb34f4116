/**
 * The suite's one source of randomness: a splittable, seeded generator.
 *
 * Every random draw (initialisation, masks, data order, augmentation, probe splits)
 * comes from an `Rng` derived from the run's seed by a path of labels, e.g.
 * `Rng.from(seed, "data", epoch, sampleIndex)`. Children depend only on the parent's
 * key and the label, never on how many numbers the parent drew, so results do not
 * depend on the number of loaders or the order in which components are built.
 *
 * The stream is xoshiro128** (32-bit, exact in JavaScript integers) seeded through a
 * 32-bit FNV-1a/murmur3-finaliser hash of the key. `Math.random` is never used.
 *
 * @module
 */

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hashLabel(key: readonly number[], label: string | number): number[] {
  // Four independent 32-bit lanes, each mixing the parent key and the label's bytes.
  const text = typeof label === "number" ? `#${label}` : `$${label}`;
  return key.map((k, lane) => {
    let h = (k ^ Math.imul(lane + 1, 0x9e3779b9)) >>> 0;
    for (let i = 0; i < text.length; i++) {
      h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    }
    return fmix32(h ^ text.length);
  });
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

/** A seeded random stream; `fork` derives independent children by label. */
export class Rng {
  readonly #key: readonly number[];
  #s: Uint32Array;
  #spareNormal: number | null = null;

  private constructor(key: readonly number[]) {
    this.#key = key;
    this.#s = new Uint32Array(key.map((k, i) => fmix32(k + i * 0x6d2b79f5) || 1));
    for (let i = 0; i < 8; i++) this.uint32(); // decorrelate nearby keys
  }

  /** The root generator of a run, optionally already forked along `path`. */
  static from(seed: number, ...path: (string | number)[]): Rng {
    if (!Number.isSafeInteger(seed)) throw new Error(`Rng: seed must be an integer, got ${seed}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    let rng = new Rng([lo, hi, 0x243f6a88, 0x85a308d3]);
    for (const label of path) rng = rng.fork(label);
    return rng;
  }

  /** An independent child stream named `label` (does not advance this stream). */
  fork(...path: (string | number)[]): Rng {
    let key = this.#key;
    for (const label of path) key = hashLabel(key, label);
    return new Rng(key);
  }

  /** Next 32-bit unsigned integer (xoshiro128**). */
  uint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.uint32() >>> 5; // 27 bits
    const lo = this.uint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi) (python `random.uniform` up to the closed upper end). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [lo, hi], both inclusive (python `random.randint`). */
  int(lo: number, hi: number): number {
    if (hi < lo) throw new Error(`Rng.int: empty range [${lo}, ${hi}]`);
    const span = hi - lo + 1;
    if (span > 2 ** 32) throw new Error(`Rng.int: range too large (${span})`);
    // Rejection sampling: no modulo bias.
    const limit = Math.floor(2 ** 32 / span) * span;
    let x: number;
    do x = this.uint32(); while (x >= limit);
    return lo + (x % span);
  }

  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (this.#spareNormal !== null) {
      const v = this.#spareNormal;
      this.#spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** Fill with uniform [lo, hi) values. */
  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.uniform(lo, hi);
    return out;
  }

  /** Fill with N(mean, std^2) values. */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /**
   * Fill with N(mean, std^2) truncated to [lo, hi] (absolute bounds, as torch's
   * `trunc_normal_(std, a, b)`), by rejection.
   */
  fillTruncNormal(out: Float32Array, mean: number, std: number, lo: number, hi: number): Float32Array {
    if (!(lo < hi)) throw new Error(`Rng.fillTruncNormal: empty interval [${lo}, ${hi}]`);
    for (let i = 0; i < out.length; i++) {
      let v: number;
      do v = mean + std * this.normal(); while (v < lo || v > hi);
      out[i] = v;
    }
    return out;
  }
}
