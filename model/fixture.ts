/**
 * Reader for `mim-fixture-v1` golden-tensor files (see `../shared/fixtures/README.md`):
 * a JSON manifest beside a little-endian `.bin` holding float32 and int32 tensors; and for
 * `mim-trajectory-v1`, which extends it with T training steps (`trajectory` section, `input.*`
 * with a leading `[T]` axis, `traj.*` per-step scalars, `final.*` state; tools/fixtures/traj_manifest.py).
 * Both are validated with zod, a trajectory also for its internal consistency.
 *
 * @example
 * ```ts ignore
 * const fx = await loadFixture("model/testdata/capi_tiny.json");
 * const images = fx.f32("input.images"); // { shape: [4, 3, 32, 32], data: Float32Array }
 * ```
 *
 * @module
 */
import { z } from "zod";
import { dirname, join } from "node:path";

export const FixtureTensorEntry = z.object({
  name: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()),
  dtype: z.enum(["float32", "int32"]),
  offset: z.number().int().nonnegative(),
  numel: z.number().int().nonnegative(),
  description: z.string().default(""),
});
export type FixtureTensorEntry = z.infer<typeof FixtureTensorEntry>;

export const FIXTURE_FORMATS = ["mim-fixture-v1", "mim-trajectory-v1"] as const;

const manifestBase = {
  bin: z.string().min(1),
  byte_order: z.literal("little"),
  config: z.record(z.string(), z.unknown()).default({}),
  steps: z.array(z.string()).default([]),
  notes: z.array(z.string()).default([]),
  tolerance_hints: z.record(z.string(), z.unknown()).default({}),
  tensors: z.array(FixtureTensorEntry).min(1),
};

/** A one-iteration fixture. Unknown top-level keys are kept: fixtures carry method-specific sections. */
export const FixtureV1Manifest = z.looseObject({ format: z.literal("mim-fixture-v1"), ...manifestBase });

const HyperGroup = z.strictObject({ lr: z.number().nonnegative(), weight_decay: z.number().nonnegative() });

/** The `trajectory` section of a `mim-trajectory-v1` manifest (tools/fixtures/traj_manifest.py). */
export const TrajectorySection = z.strictObject({
  num_steps: z.number().int().positive(),
  metrics: z.array(z.string().min(1)).min(1).describe("per-step scalars, each a `traj.<name>` tensor [T]"),
  optimizers: z.array(z.strictObject({
    id: z.string().min(1).describe("checkpoint prefix: student, clustering, main"),
    betas: z.tuple([z.number(), z.number()]),
    eps: z.number().positive(),
    clip_grad_norm: z.number().positive().optional(),
    groups: z.array(z.strictObject({ id: z.string().min(1), params: z.array(z.string().min(1)).min(1) })).min(1),
  })).min(1),
  hyper: z.array(z.strictObject({
    groups: z.record(z.string(), z.record(z.string(), HyperGroup)).describe("optimizer id -> group id -> values"),
    ema_momentum: z.number().min(0).max(1).optional(),
  })).describe("one entry per step: the schedule values that step used"),
  final_optimizer_steps: z.record(z.string(), z.number().int().nonnegative()),
  inert_state: z.array(z.string()).describe("final.* tensors that cannot matter (moments of lr x0 parameters)"),
  noise_elements: z.array(z.strictObject({
    tensor: z.string(),
    range: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
    why: z.string().min(1),
  })).describe("flat element ranges of final.* tensors driven by rounding noise alone: not compared"),
  tolerance: z.looseObject({
    rule: z.string(),
    margin: z.number().positive(),
    floor: z.number().positive(),
    a: z.number().nonnegative(),
    rate: z.number().nonnegative(),
    final: z.number().positive(),
  }),
});
export type TrajectorySection = z.infer<typeof TrajectorySection>;

/** T training steps (`mim-trajectory-v1`, an extension of `mim-fixture-v1` with the same .bin conventions). */
export const TrajectoryManifest = z.looseObject({
  format: z.literal("mim-trajectory-v1"),
  extends: z.literal("mim-fixture-v1"),
  method: z.string().min(1),
  ...manifestBase,
  trajectory: TrajectorySection,
});

/** The manifest of either format. */
export const FixtureManifest = z.discriminatedUnion("format", [FixtureV1Manifest, TrajectoryManifest]);
export type FixtureManifest = z.infer<typeof FixtureManifest>;
export type TrajectoryManifest = z.infer<typeof TrajectoryManifest>;

/** A tensor read from a fixture: row-major data with its shape. */
export interface HostTensor<T extends Float32Array | Int32Array = Float32Array | Int32Array> {
  shape: number[];
  data: T;
}

/** A loaded fixture: manifest plus typed access to its tensors by name. */
export class Fixture {
  readonly path: string;
  readonly manifest: FixtureManifest;
  readonly #bytes: Uint8Array;
  readonly #entries: Map<string, FixtureTensorEntry>;

  constructor(path: string, manifest: FixtureManifest, bytes: Uint8Array) {
    this.path = path;
    this.manifest = manifest;
    this.#bytes = bytes;
    this.#entries = new Map(manifest.tensors.map((t) => [t.name, t]));
  }

  /** The manifest's `config` (hyper-parameters of the run that produced it). */
  get config(): Record<string, unknown> {
    return this.manifest.config;
  }

  /** Every tensor name, in manifest order. */
  names(): string[] {
    return this.manifest.tensors.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Tensor `name` with its stored dtype. */
  tensor(name: string): HostTensor {
    const e = this.#entries.get(name);
    if (!e) {
      throw new Error(`${this.path}: no tensor '${name}' in the manifest (${this.#entries.size} tensors)`);
    }
    // Copy: the .bin buffer may not be 4-byte aligned at `offset`.
    const slice = this.#bytes.slice(e.offset, e.offset + 4 * e.numel);
    const data = e.dtype === "float32" ? new Float32Array(slice.buffer) : new Int32Array(slice.buffer);
    return { shape: [...e.shape], data };
  }

  /** Tensor `name`, which must be float32. */
  f32(name: string): HostTensor<Float32Array> {
    const t = this.tensor(name);
    if (!(t.data instanceof Float32Array)) {
      throw new Error(`${this.path}: tensor '${name}' is int32, expected float32`);
    }
    return t as HostTensor<Float32Array>;
  }

  /** Tensor `name`, which must be int32. */
  i32(name: string): HostTensor<Int32Array> {
    const t = this.tensor(name);
    if (!(t.data instanceof Int32Array)) {
      throw new Error(`${this.path}: tensor '${name}' is float32, expected int32`);
    }
    return t as HostTensor<Int32Array>;
  }

  /** Shape and dtype of tensor `name` without reading it. */
  entry(name: string): FixtureTensorEntry {
    const e = this.#entries.get(name);
    if (!e) throw new Error(`${this.path}: no tensor '${name}' in the manifest (${this.#entries.size} tensors)`);
    return e;
  }

  /** The trajectory section of a `mim-trajectory-v1` fixture, null for `mim-fixture-v1`. */
  get trajectory(): TrajectorySection | null {
    return this.manifest.format === "mim-trajectory-v1" ? this.manifest.trajectory : null;
  }

  /** Names starting with `prefix`, with the prefix removed. */
  withPrefix(prefix: string): string[] {
    return this.names().filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
  }
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`).join("\n");
}

/** Parse and check a manifest against its data file's size. Throws with the path and the problem. */
export function parseFixture(path: string, json: unknown, bytes: Uint8Array): Fixture {
  const format = (json as { format?: unknown } | null)?.format;
  if (!FIXTURE_FORMATS.includes(format as typeof FIXTURE_FORMATS[number])) {
    throw new Error(
      `${path}: not a valid mim-fixture-v1 manifest:\n  format: expected one of ${FIXTURE_FORMATS.join(", ")}, ` +
        `got ${JSON.stringify(format)}`,
    );
  }
  const parsed = FixtureManifest.safeParse(json);
  if (!parsed.success) {
    throw new Error(`${path}: not a valid ${format} manifest:\n${describeIssues(parsed.error)}`);
  }
  const m = parsed.data;
  for (const t of m.tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.numel) {
      throw new Error(`${path}: tensor '${t.name}': shape [${t.shape}] has ${numel} elements but numel is ${t.numel}`);
    }
    if (t.offset + 4 * t.numel > bytes.length) {
      throw new Error(
        `${path}: tensor '${t.name}' needs bytes [${t.offset}, ${
          t.offset + 4 * t.numel
        }) but ${m.bin} has ${bytes.length} bytes`,
      );
    }
  }
  if (m.format === "mim-trajectory-v1") checkTrajectory(path, m);
  return new Fixture(path, m, bytes);
}

/** The cross-references zod cannot see: per-step arrays of length T, tensors the section names. */
function checkTrajectory(path: string, m: TrajectoryManifest): void {
  const tr = m.trajectory, T = tr.num_steps;
  const shapes = new Map(m.tensors.map((t) => [t.name, t]));
  const bad = (what: string) => new Error(`${path}: ${what}`);
  if (tr.hyper.length !== T) throw bad(`trajectory.hyper has ${tr.hyper.length} entries, num_steps is ${T}`);
  for (const k of tr.metrics) {
    const e = shapes.get(`traj.${k}`);
    if (!e || e.shape.join(",") !== `${T}`) throw bad(`metric '${k}' needs a tensor 'traj.${k}' of shape [${T}]`);
  }
  for (const e of m.tensors) {
    if (e.name.startsWith("input.") && e.shape[0] !== T) {
      throw bad(`tensor '${e.name}' has shape [${e.shape}]; inputs need a leading axis of num_steps = ${T}`);
    }
  }
  for (const o of tr.optimizers) {
    if (!(o.id in tr.final_optimizer_steps)) throw bad(`trajectory.final_optimizer_steps lacks optimizer '${o.id}'`);
    for (const g of o.groups) {
      for (const p of g.params) {
        if (!shapes.has(`param.${p}`)) throw bad(`optimizer '${o.id}' group '${g.id}' names '${p}', no 'param.${p}'`);
      }
    }
    tr.hyper.forEach((h, t) => {
      const got = h.groups[o.id];
      const missing = o.groups.filter((g) => !got?.[g.id]).map((g) => g.id);
      if (missing.length) throw bad(`trajectory.hyper[${t}].groups.${o.id} lacks group(s) ${missing.join(", ")}`);
    });
  }
  for (const e of m.tensors) {
    if (e.name.startsWith("param.") && !shapes.has(`final.${e.name}`)) {
      throw bad(`'${e.name}' has no final state 'final.${e.name}'`);
    }
  }
  for (const n of tr.noise_elements) {
    const e = shapes.get(n.tensor);
    if (!e || n.range[0] > n.range[1] || n.range[1] > e.numel) {
      throw bad(`trajectory.noise_elements: range [${n.range}] of '${n.tensor}' is not inside that tensor`);
    }
  }
}

/**
 * An in-memory fixture holding `tensors` back to back in one little-endian buffer: for tests
 * that check a runner on configurations no stored fixture has (non-square images, other sizes).
 * `header` adds or overrides manifest keys (e.g. `format`, `trajectory` for a trajectory).
 */
export function fixtureFromTensors(
  path: string,
  config: Record<string, unknown>,
  tensors: [string, HostTensor][],
  header: Record<string, unknown> = {},
): Fixture {
  let offset = 0;
  const entries = tensors.map(([name, t]) => {
    const e = {
      name,
      shape: t.shape,
      dtype: t.data instanceof Int32Array ? "int32" : "float32",
      offset,
      numel: t.data.length,
    };
    offset += 4 * t.data.length;
    return e;
  });
  const bytes = new Uint8Array(offset);
  tensors.forEach(([, t], i) =>
    bytes.set(new Uint8Array(t.data.buffer, t.data.byteOffset, 4 * t.data.length), entries[i].offset)
  );
  const manifest = {
    format: "mim-fixture-v1",
    bin: `${path}.bin`,
    byte_order: "little",
    config,
    ...header,
    tensors: entries,
  };
  return parseFixture(path, manifest, bytes);
}

/** Load `NAME.json` and its `.bin`. */
export async function loadFixture(path: string): Promise<Fixture> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read fixture manifest: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: manifest is not valid JSON: ${(e as Error).message}`);
  }
  const bin = (json as { bin?: unknown })?.bin;
  if (typeof bin !== "string") {
    throw new Error(`${path}: manifest has no 'bin' (the data file's name)`);
  }
  const binPath = join(dirname(path), bin);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(binPath);
  } catch (e) {
    throw new Error(`${path}: cannot read data file ${binPath}: ${(e as Error).message}`);
  }
  return parseFixture(path, json, bytes);
}
