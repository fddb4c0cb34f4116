/**
 * Procedural scenes for the embedded default dataset (see SYNTHETIC.md): textured objects of
 * several shape categories on textured backgrounds, rendered with 2x2 supersampling, with a
 * per-pixel label map. Class = shape; colour, texture, position, scale, rotation and
 * anisotropy are drawn independently of the class, so a colour lookup cannot separate them.
 *
 * Pure functions of an `Rng`; `synthetic.ts` writes the results as JPEG/PNG files.
 *
 * @module
 */
import type { Rng } from "../model/rng.ts";
import type { Pixels } from "./resample.ts";

/** Shape categories; a shape's inside test is in object coordinates (u, v) in about [-1, 1]. */
export const SHAPES = {
  disk: (u: number, v: number) => u * u + v * v < 0.81,
  square: (u: number, v: number) => Math.max(Math.abs(u), Math.abs(v)) < 0.72,
  triangle: (u: number, v: number) => insidePolygon(u, v, 3, 0.95),
  star: (u: number, v: number) => {
    const rho = Math.hypot(u, v), phase = ((Math.atan2(v, u) * 5) / (2 * Math.PI) + 10) % 1;
    return rho < 0.4 + 0.55 * Math.abs(phase - 0.5) * 2; // five points, concave sides
  },
  ring: (u: number, v: number) => {
    const r2 = u * u + v * v;
    return r2 < 0.85 && r2 > 0.3;
  },
  cross: (u: number, v: number) => {
    const a = Math.abs(u), b = Math.abs(v);
    return (a < 0.3 && b < 0.92) || (b < 0.3 && a < 0.92);
  },
  crescent: (u: number, v: number) => u * u + v * v < 0.81 && (u - 0.45) ** 2 + v * v > 0.49,
  heart: (u: number, v: number) => {
    const x = u * 1.25, y = -v * 1.25 + 0.15;
    return (x * x + y * y - 1) ** 3 - x * x * y ** 3 < 0;
  },
  bowtie: (u: number, v: number) => Math.abs(v) < Math.abs(u) * 0.95 && Math.abs(u) < 0.9 && Math.abs(v) < 0.9,
  ell: (u: number, v: number) =>
    (u > -0.8 && u < -0.2 && v > -0.85 && v < 0.85) || (u > -0.8 && u < 0.8 && v > 0.25 && v < 0.85),
} as const;
export type ShapeName = keyof typeof SHAPES;

function insidePolygon(u: number, v: number, n: number, radius: number): boolean {
  const rho = Math.hypot(u, v), sector = (2 * Math.PI) / n;
  const theta = ((Math.atan2(v, u) % sector) + sector) % sector;
  return rho < (radius * Math.cos(Math.PI / n)) / Math.cos(theta - Math.PI / n);
}

/** A colour field: texture value t in [0, 1] at (x, y) mixes two colours. */
interface Texture {
  c0: number[];
  c1: number[];
  at: (x: number, y: number) => number;
}

function randomColour(rng: Rng): number[] {
  return [rng.int(0, 255), rng.int(0, 255), rng.int(0, 255)];
}

/** Texture colours: c0 uniform, c1 within +-90 of it (a visible but not overwhelming texture). */
function textureColours(rng: Rng): [number[], number[]] {
  const c0 = randomColour(rng);
  return [c0, c0.map((v) => Math.min(255, Math.max(0, v + rng.int(-90, 90))))];
}

const meanColour = (c0: number[], c1: number[]) => c0.map((v, i) => (v + c1[i]) / 2);

/**
 * A random texture. With `awayFrom` (the background's mean colour), colours are redrawn until
 * the mean is at least 100 RGB units away, so every object is visible (no label noise from
 * camouflaged objects); the colour itself still carries no class information.
 */
function randomTexture(rng: Rng, width: number, height: number, awayFrom?: number[]): Texture {
  let [c0, c1] = textureColours(rng);
  for (let k = 0; awayFrom && k < 50 && Math.hypot(...meanColour(c0, c1).map((v, i) => v - awayFrom[i])) < 100; k++) {
    [c0, c1] = textureColours(rng);
  }
  const kind = rng.int(0, 4);
  const angle = rng.uniform(0, Math.PI), ca = Math.cos(angle), sa = Math.sin(angle);
  switch (kind) {
    case 0: // flat
      return { c0, c1, at: () => 0 };
    case 1: { // stripes
      const freq = rng.uniform(0.08, 0.35), phase = rng.uniform(0, 2 * Math.PI);
      return { c0, c1, at: (x, y) => 0.5 + 0.5 * Math.sin(freq * (x * ca + y * sa) * 2 * Math.PI * 0.5 + phase) };
    }
    case 2: { // checker, rotated
      const period = rng.uniform(3, 10);
      return {
        c0,
        c1,
        at: (x, y) => (Math.floor((x * ca + y * sa) / period) + Math.floor((y * ca - x * sa) / period)) & 1,
      };
    }
    case 3: { // value noise, bilinear on a coarse grid
      const cell = rng.uniform(4, 12), gw = Math.ceil(width / cell) + 2, gh = Math.ceil(height / cell) + 2;
      const grid = Float64Array.from({ length: gw * gh }, () => rng.float());
      return {
        c0,
        c1,
        at: (x, y) => {
          const gx = x / cell, gy = y / cell, i = Math.floor(gx), j = Math.floor(gy), fx = gx - i, fy = gy - j;
          const g = (a: number, b: number) => grid[Math.min(b, gh - 1) * gw + Math.min(a, gw - 1)];
          return (g(i, j) * (1 - fx) + g(i + 1, j) * fx) * (1 - fy) +
            (g(i, j + 1) * (1 - fx) + g(i + 1, j + 1) * fx) * fy;
        },
      };
    }
    default: { // linear gradient
      const span = Math.max(width, height);
      return { c0, c1, at: (x, y) => Math.min(Math.max(0.5 + (x * ca + y * sa - span / 2) / span, 0), 1) };
    }
  }
}

/** One object: shape, label value, texture and the affine map from pixels to (u, v). */
interface SceneObject {
  inside: (u: number, v: number) => boolean;
  label: number;
  texture: Texture;
  cx: number;
  cy: number;
  /** Rows of the inverse map: u = a*(x-cx) + b*(y-cy), v = c*(x-cx) + d*(y-cy). */
  a: number;
  b: number;
  c: number;
  d: number;
  /** Squared radius outside which (u, v) is beyond every shape's extent (|u|, |v| < 1.3). */
  reach2: number;
}

function placeObject(
  rng: Rng,
  shape: ShapeName,
  label: number,
  width: number,
  height: number,
  scale: [number, number],
  background: number[],
): SceneObject {
  const side = Math.min(width, height);
  const r = rng.uniform(scale[0], scale[1]) * side; // half-size in pixels
  const sx = r * rng.uniform(0.85, 1.15), sy = r * rng.uniform(0.85, 1.15); // anisotropy
  const margin = 0.8 * r;
  const cx = rng.uniform(Math.min(margin, width / 2), Math.max(width - margin, width / 2));
  const cy = rng.uniform(Math.min(margin, height / 2), Math.max(height - margin, height / 2));
  const rot = rng.uniform(0, 2 * Math.PI), cr = Math.cos(rot), sr = Math.sin(rot);
  return {
    inside: SHAPES[shape],
    label,
    texture: randomTexture(rng, width, height, background),
    cx,
    cy,
    a: cr / sx,
    b: sr / sx,
    c: -sr / sy,
    d: cr / sy,
    reach2: (1.3 * 1.42 * Math.max(sx, sy)) ** 2,
  };
}

/**
 * Render a scene: background texture, then objects in order (later ones occlude). Labels:
 * `backgroundLabel` where no object covers the pixel, the top object's label where all four
 * sub-samples agree, and 0 ("other", ignored like ADE20K's 0) on anti-aliased edges.
 */
export function renderScene(
  rng: Rng,
  width: number,
  height: number,
  objects: { shape: ShapeName; label: number }[],
  scale: [number, number],
  backgroundLabel: number,
): { image: Pixels; labels: Pixels } {
  const bg = randomTexture(rng.fork("background"), width, height);
  const bgMean = meanColour(bg.c0, bg.c1);
  const placed = objects.map((o, k) =>
    placeObject(rng.fork("object", k), o.shape, o.label, width, height, scale, bgMean)
  );
  const noise = rng.fork("noise");
  const image = new Uint8Array(width * height * 3), labels = new Uint8Array(width * height);
  const rgb = [0, 0, 0];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      rgb[0] = rgb[1] = rgb[2] = 0;
      let first = -1, agree = true;
      for (let s = 0; s < 4; s++) {
        const px = x + 0.25 + 0.5 * (s & 1), py = y + 0.25 + 0.5 * (s >> 1);
        let tex = bg, label = backgroundLabel;
        for (const o of placed) {
          const dx = px - o.cx, dy = py - o.cy;
          if (dx * dx + dy * dy < o.reach2 && o.inside(o.a * dx + o.b * dy, o.c * dx + o.d * dy)) {
            tex = o.texture;
            label = o.label;
          }
        }
        if (s === 0) first = label;
        else if (label !== first) agree = false;
        const t = tex.at(px, py);
        for (let ch = 0; ch < 3; ch++) rgb[ch] += tex.c0[ch] * (1 - t) + tex.c1[ch] * t;
      }
      const p = y * width + x;
      for (let ch = 0; ch < 3; ch++) {
        image[p * 3 + ch] = Math.min(255, Math.max(0, Math.round(rgb[ch] / 4 + 6 * noise.normal())));
      }
      labels[p] = agree ? first : 0;
    }
  }
  return {
    image: { width, height, channels: 3, data: image },
    labels: { width, height, channels: 1, data: labels },
  };
}
