/**
 * Reader for `mim-fixture-v1` golden-tensor files (see `../shared/fixtures/README.md`):
 * a JSON manifest beside a little-endian `.bin` holding float32 and int32 tensors.
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

/** The manifest. Unknown top-level keys are kept: fixtures carry method-specific sections. */
export const FixtureManifest = z.looseObject({
  format: z.literal("mim-fixture-v1"),
  bin: z.string().min(1),
  byte_order: z.literal("little"),
  config: z.record(z.string(), z.unknown()).default({}),
  steps: z.array(z.string()).default([]),
  notes: z.array(z.string()).default([]),
  tolerance_hints: z.record(z.string(), z.unknown()).default({}),
  tensors: z.array(FixtureTensorEntry).min(1),
});
export type FixtureManifest = z.infer<typeof FixtureManifest>;

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
  const parsed = FixtureManifest.safeParse(json);
  if (!parsed.success) {
    throw new Error(`${path}: not a valid mim-fixture-v1 manifest:\n${describeIssues(parsed.error)}`);
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
  return new Fixture(path, m, bytes);
}

/**
 * An in-memory fixture holding `tensors` back to back in one little-endian buffer: for tests
 * that check a runner on configurations no stored fixture has (non-square images, other sizes).
 */
export function fixtureFromTensors(
  path: string,
  config: Record<string, unknown>,
  tensors: [string, HostTensor][],
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
  const manifest = { format: "mim-fixture-v1", bin: `${path}.bin`, byte_order: "little", config, tensors: entries };
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
