/**
 * Read and write `.safetensors` files (huggingface format): an 8-byte little-endian header
 * length, a JSON header `{name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}`
 * padded with spaces to a multiple of 8, then the raw little-endian tensor bytes.
 *
 * Reads take F32, F16, BF16, F64 (as float32) and I64, I32 and the small integer types (as
 * int32); `openSafetensors` reads lazily, one tensor at a time. Writes (F32 / I32) are atomic
 * (temp file in the same folder, then rename), so a crash never leaves a half-written
 * checkpoint behind.
 *
 * @module
 */
import { atomicWriteFile } from "./atomic_write.ts";
import { DTYPE_BYTES, isDType, toFloat32, toInt32 } from "./dtypes.ts";
import type { HostTensor } from "./fixture.ts";
import type { TensorEntry, TensorSource } from "./tensor_source.ts";
import { readAt } from "./torch/zip_reader.ts";

export type SafeTensor = HostTensor<Float32Array> | HostTensor<Int32Array>;

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
/** Typed arrays use the platform's byte order; copy raw bytes only where it is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Serialise tensors (F32 / I32) and string metadata. Tensors are laid out in map order. */
export function encodeSafetensors(tensors: Map<string, SafeTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (t.data.length !== numel(t.shape)) {
      throw new Error(`safetensors: '${name}' has ${t.data.length} values for shape [${t.shape}]`);
    }
    const dtype = t.data instanceof Float32Array ? "F32" : "I32";
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + 4 * t.data.length] };
    offset += 4 * t.data.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(pad));
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const t of tensors.values()) {
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
      pos += t.data.byteLength;
      continue;
    }
    // Copy through a DataView: typed arrays are platform-endian, the format is little-endian.
    const isF = t.data instanceof Float32Array;
    for (let i = 0; i < t.data.length; i++, pos += 4) {
      if (isF) view.setFloat32(pos, t.data[i], true);
      else view.setInt32(pos, t.data[i], true);
    }
  }
  return out;
}

type HeaderEntry = { dtype: string; shape: number[]; data_offsets: [number, number] };

/** Parse and check the JSON header (`bytes` = the header bytes); `size` = bytes after it. */
function parseHeader(json: Uint8Array, size: number, path: string): {
  entries: [string, HeaderEntry][];
  metadata: Record<string, string>;
} {
  let header: Record<string, HeaderEntry>;
  try {
    header = JSON.parse(new TextDecoder().decode(json));
  } catch (e) {
    throw new Error(`${path}: safetensors header is not JSON: ${(e as Error).message}`);
  }
  const metadata = (header.__metadata__ ?? {}) as unknown as Record<string, string>;
  const entries = Object.entries(header).filter(([n]) => n !== "__metadata__");
  for (const [name, e] of entries) {
    if (!isDType(e.dtype)) {
      throw new Error(
        `${path}: tensor '${name}' has dtype ${e.dtype}; supported: ${Object.keys(DTYPE_BYTES).join(", ")}`,
      );
    }
    const [a, b] = e.data_offsets;
    if (b - a !== DTYPE_BYTES[e.dtype] * numel(e.shape) || b > size) {
      throw new Error(`${path}: tensor '${name}' offsets [${a}, ${b}] do not fit shape [${e.shape}] (${e.dtype})`);
    }
  }
  return { entries, metadata };
}

/**
 * Parse a safetensors buffer; `path` only labels errors. F32 and I32 tensors are kept as they are;
 * F16, BF16 and F64 become float32, I64 (checked to fit) and the small integer types int32.
 */
export function decodeSafetensors(bytes: Uint8Array, path = "<buffer>"): SafetensorsFile {
  if (bytes.length < 8) throw new Error(`${path}: not a safetensors file (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (8 + n > bytes.length) throw new Error(`${path}: header length ${n} exceeds the file size ${bytes.length}`);
  const base = 8 + n;
  const { entries, metadata } = parseHeader(bytes.subarray(8, base), bytes.length - base, path);
  const tensors = new Map<string, SafeTensor>();
  for (const [name, e] of entries) {
    const raw = bytes.subarray(base + e.data_offsets[0], base + e.data_offsets[1]);
    const dtype = e.dtype as keyof typeof DTYPE_BYTES;
    const count = numel(e.shape);
    const float = dtype === "F32" || dtype === "F16" || dtype === "BF16" || dtype === "F64";
    tensors.set(
      name,
      float
        ? { shape: e.shape, data: toFloat32(raw, dtype, count) }
        : { shape: e.shape, data: toInt32(raw, dtype, count, `${path}: tensor '${name}'`) },
    );
  }
  return { tensors, metadata };
}

/** A safetensors file opened for lazy reads: the header now, each tensor's bytes when read. */
export async function openSafetensors(path: string): Promise<TensorSource> {
  const file = await Deno.open(path, { read: true }).catch((e) => {
    throw new Error(`${path}: cannot read checkpoint: ${(e as Error).message}`);
  });
  try {
    const size = (await file.stat()).size;
    if (size < 8) throw new Error(`${path}: not a safetensors file (${size} bytes)`);
    const n = Number(new DataView((await readAt(file, 0, 8, path)).buffer).getBigUint64(0, true));
    if (8 + n > size) throw new Error(`${path}: header length ${n} exceeds the file size ${size}`);
    const { entries, metadata } = parseHeader(await readAt(file, 8, n, path), size - 8 - n, path);
    const tensors = new Map<string, TensorEntry>();
    for (const [name, e] of entries) {
      const dtype = e.dtype as keyof typeof DTYPE_BYTES;
      const bytes = () => readAt(file, 8 + n + e.data_offsets[0], e.data_offsets[1] - e.data_offsets[0], path);
      tensors.set(name, {
        name,
        dtype,
        shape: e.shape,
        read: async () => ({ shape: [...e.shape], data: toFloat32(await bytes(), dtype, numel(e.shape)) }),
        readInt32: async () => ({
          shape: [...e.shape],
          data: toInt32(await bytes(), dtype, numel(e.shape), `${path}: tensor '${name}'`),
        }),
      });
    }
    return { path, format: "safetensors", tensors, metadata, opaque: new Map(), close: () => file.close() };
  } catch (e) {
    file.close();
    throw e;
  }
}

export async function writeSafetensors(
  path: string,
  tensors: Map<string, SafeTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await atomicWriteFile(path, encodeSafetensors(tensors, metadata));
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read checkpoint: ${(e as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}

/** One tensor of a streamed file: F32 or I32, its shape fixed up front. */
export interface StreamedTensor {
  name: string;
  dtype: "F32" | "I32";
  shape: number[];
}

/**
 * A safetensors file written piece by piece (the header is known up front, so each tensor's
 * range can be filled in any order): memory stays one piece, not the file. Everything goes
 * to a temp file beside `path`, renamed over it by `close()`; `abort()` removes it.
 */
export async function createSafetensorsWriter(
  path: string,
  tensors: StreamedTensor[],
  metadata: Record<string, string> = {},
): Promise<{
  write(name: string, elementOffset: number, data: Float32Array | Int32Array): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}> {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const starts = new Map<string, { start: number; count: number; dtype: string }>();
  let offset = 0;
  for (const t of tensors) {
    const count = numel(t.shape);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + 4 * count] };
    starts.set(t.name, { start: offset, count, dtype: t.dtype });
    offset += 4 * count;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const base = 8 + jsonBytes.length;
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  const writeAll = async (at: number, bytes: Uint8Array) => {
    await file.seek(at, Deno.SeekMode.Start);
    for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
  };
  const head = new Uint8Array(8);
  new DataView(head.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  await writeAll(0, head);
  await writeAll(8, jsonBytes);
  await file.truncate(base + offset);
  let chain = Promise.resolve();
  return {
    write(name, elementOffset, data) {
      const t = starts.get(name);
      if (!t) throw new Error(`${path}: no tensor '${name}' in this file`);
      if (elementOffset < 0 || elementOffset + data.length > t.count) {
        throw new Error(
          `${path}: '${name}' elements [${elementOffset}, ${elementOffset + data.length}) exceed ${t.count}`,
        );
      }
      if (!LITTLE_ENDIAN) throw new Error("createSafetensorsWriter: big-endian hosts are not supported");
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      chain = chain.then(() => writeAll(base + t.start + 4 * elementOffset, bytes));
      return chain;
    },
    async close() {
      await chain;
      file.close();
      await Deno.rename(tmp, path);
    },
    async abort() {
      await chain.catch(() => {});
      try {
        file.close();
      } catch { /* closed */ }
      await Deno.remove(tmp).catch(() => {});
    },
  };
}
