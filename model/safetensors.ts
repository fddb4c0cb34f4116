/**
 * Read and write `.safetensors` files (huggingface format): an 8-byte little-endian header
 * length, a JSON header `{name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}`
 * padded with spaces to a multiple of 8, then the raw little-endian tensor bytes.
 *
 * Writes are atomic (temp file in the same folder, then rename), so a crash never leaves a
 * half-written checkpoint behind.
 *
 * @module
 */
import { atomicWriteFile } from "./atomic_write.ts";
import type { HostTensor } from "./fixture.ts";

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

/** Parse a safetensors buffer; `path` only labels errors. F32 and I32 are supported. */
export function decodeSafetensors(bytes: Uint8Array, path = "<buffer>"): SafetensorsFile {
  if (bytes.length < 8) throw new Error(`${path}: not a safetensors file (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (8 + n > bytes.length) throw new Error(`${path}: header length ${n} exceeds the file size ${bytes.length}`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new Error(`${path}: safetensors header is not JSON: ${(e as Error).message}`);
  }
  const base = 8 + n;
  const metadata = (header.__metadata__ ?? {}) as unknown as Record<string, string>;
  const tensors = new Map<string, SafeTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [a, b] = e.data_offsets;
    const count = numel(e.shape);
    if (b - a !== 4 * count || base + b > bytes.length) {
      throw new Error(`${path}: tensor '${name}' offsets [${a}, ${b}] do not fit shape [${e.shape}] (${e.dtype})`);
    }
    if (LITTLE_ENDIAN && (e.dtype === "F32" || e.dtype === "I32")) {
      const raw = bytes.slice(base + a, base + b).buffer; // a fresh, aligned copy
      if (e.dtype === "F32") tensors.set(name, { shape: e.shape, data: new Float32Array(raw) });
      else tensors.set(name, { shape: e.shape, data: new Int32Array(raw) });
    } else if (e.dtype === "F32") {
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(base + a + 4 * i, true);
      tensors.set(name, { shape: e.shape, data });
    } else if (e.dtype === "I32") {
      const data = new Int32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getInt32(base + a + 4 * i, true);
      tensors.set(name, { shape: e.shape, data });
    } else {
      throw new Error(`${path}: tensor '${name}' has dtype ${e.dtype}; only F32 and I32 are supported (convert first)`);
    }
  }
  return { tensors, metadata };
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
