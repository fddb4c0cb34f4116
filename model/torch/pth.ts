/**
 * Read a PyTorch checkpoint (`torch.save`: `.pth`, `.pt`) without Python and without running
 * any of its code, as a lazy `TensorSource`.
 *
 * Two containers: the zip format torch has written since 1.6 (`<archive>/data.pkl` plus one
 * entry `<archive>/data/<key>` per storage) and the legacy format (`_use_new_zipfile_serialization
 * =False`: five pickles - magic number, protocol 1001, sys info, the object, the storage keys -
 * then each storage as an int64 element count and its raw bytes). The object pickle runs in
 * the safe interpreter of `pickle.ts` with the globals a state dict needs: tensors
 * (`_rebuild_tensor_v2` with storage offset, sizes and strides, so non-contiguous views and
 * storages shared between tensors read correctly), parameters, `OrderedDict`, containers.
 * Storages hold float32, float16, bfloat16, float64, int64 (and the small integer types);
 * a tensor's bytes are read only when asked for.
 *
 * @module
 */
import { type DType, DTYPE_BYTES, toFloat32, toInt32 } from "../dtypes.ts";
import type { HostTensor } from "../fixture.ts";
import type { TensorEntry, TensorSource } from "../tensor_source.ts";
import { PickleTruncated, PLAIN_CALLS, PyGlobal, PyOpaque, type PyValue, unpickle } from "./pickle.ts";
import { readAt, ZipReader } from "./zip_reader.ts";

/** `torch.<Name>Storage` -> element type. */
const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: "F32",
  DoubleStorage: "F64",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
  UntypedStorage: "U8",
};

/** The magic number and protocol of the legacy format (torch/serialization.py). */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn, LEGACY_PROTOCOL = 1001;

/** Reads `length` bytes at byte `start` of storage `key`. */
type StorageBytes = (key: string, start: number, length: number) => Promise<Uint8Array>;

export class TorchStorage {
  constructor(readonly key: string, readonly dtype: DType, readonly numel: number, readonly bytes: StorageBytes) {}
}

/** A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage. */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}

  /** Raw bytes of the view, row-major (gathered when the strides are not contiguous). */
  async rowMajorBytes(name: string): Promise<Uint8Array> {
    const { storage, offset, shape, stride } = this;
    const e = DTYPE_BYTES[storage.dtype];
    const count = shape.reduce((a, b) => a * b, 1);
    if (count === 0) return new Uint8Array(0);
    const last = offset + shape.reduce((a, d, i) => a + (d - 1) * stride[i], 0);
    if (offset < 0 || last >= storage.numel || stride.some((s) => s < 0)) {
      throw new Error(
        `tensor '${name}' [${shape}] (offset ${offset}, strides [${stride}]) needs ${last + 1} elements of its ` +
          `storage '${storage.key}', which holds ${storage.numel}: the file is inconsistent or truncated`,
      );
    }
    const span = await storage.bytes(storage.key, offset * e, (last - offset + 1) * e);
    let contiguous = true;
    for (let i = shape.length - 1, s = 1; i >= 0; s *= shape[i], i--) {
      if (shape[i] > 1 && stride[i] !== s) contiguous = false;
    }
    if (contiguous) return span;
    const out = new Uint8Array(count * e);
    const idx = new Array(shape.length).fill(0);
    for (let n = 0; n < count; n++) {
      let src = 0;
      for (let d = 0; d < shape.length; d++) src += idx[d] * stride[d];
      out.set(span.subarray(src * e, src * e + e), n * e);
      for (let d = shape.length - 1; d >= 0 && ++idx[d] === shape[d]; d--) idx[d] = 0;
    }
    return out;
  }
}

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);
const intList = (v: unknown): v is number[] => Array.isArray(v) && v.every(isInt);

/** `_rebuild_tensor_v2(storage, offset, size, stride, ...)`; an inert placeholder when an argument is. */
function rebuildTensor(args: PyValue[]): PyValue {
  const [storage, offset, size, stride] = args;
  if (storage instanceof PyOpaque) return new PyOpaque(storage.global, args);
  if (!(storage instanceof TorchStorage) || !isInt(offset) || !intList(size) || !intList(stride)) {
    return new PyOpaque("torch._utils._rebuild_tensor_v2 (with unexpected arguments)", args);
  }
  if (size.length !== stride.length) return new PyOpaque("torch._utils._rebuild_tensor_v2 (sizes != strides)", args);
  return new TorchTensor(storage, offset, size, stride);
}

/** The globals a state dict needs, and what each builds. */
function stateDictGlobals(storage: (pid: PyValue) => PyValue) {
  const calls: Record<string, (a: PyValue[]) => PyValue> = {
    "torch._utils._rebuild_tensor_v2": rebuildTensor,
    "torch._utils._rebuild_tensor": rebuildTensor,
    "torch._utils._rebuild_parameter": (a) => a[0],
    "torch._utils._rebuild_parameter_with_state": (a) => a[0],
    "torch._tensor._rebuild_from_type_v2": (a) => {
      const [fn, , args] = a;
      const build = fn instanceof PyGlobal ? calls[fn.qualname] : undefined;
      return build && Array.isArray(args) ? build(args) : new PyOpaque(String((fn as PyGlobal)?.qualname), a);
    },
    "torch.Size": (a) => a[0],
    ...PLAIN_CALLS,
  };
  return { calls, persistentLoad: storage };
}

/** The storage a persistent id names: `('storage', torch.<T>Storage, key, location, numel[, view])`. */
function storageFromPid(pid: PyValue, bytes: StorageBytes, where: string): PyValue {
  if (!Array.isArray(pid) || pid[0] !== "storage") {
    return new PyOpaque(`persistent id ${JSON.stringify(Array.isArray(pid) ? pid[0] : typeof pid)}`, pid);
  }
  const [, type, key, , numel, view] = pid;
  const typeName = type instanceof PyGlobal ? type.name : String(type);
  const dtype = STORAGE_DTYPES[typeName];
  if (!dtype) return new PyOpaque(type instanceof PyGlobal ? type.qualname : `storage type ${typeName}`, pid);
  if (typeof key !== "string" || !isInt(numel)) throw new Error(`${where}: malformed storage id for key ${key}`);
  if (view != null) {
    // Legacy view of a root storage: (view_key, offset, view_size), offsets in elements.
    const [, vOffset, vSize] = view as [string, number, number];
    const e = DTYPE_BYTES[dtype];
    return new TorchStorage(key, dtype, vSize, (k, s, n) => bytes(k, vOffset * e + s, n));
  }
  return new TorchStorage(key, dtype, numel, bytes);
}

class TorchTensorEntry implements TensorEntry {
  readonly dtype: DType;
  readonly shape: number[];
  constructor(readonly name: string, readonly t: TorchTensor, readonly where: string) {
    this.dtype = t.storage.dtype;
    this.shape = t.shape;
  }
  async #bytes(): Promise<Uint8Array> {
    try {
      return await this.t.rowMajorBytes(this.name);
    } catch (e) {
      throw new Error(`${this.where}: ${(e as Error).message}`);
    }
  }
  async read(): Promise<HostTensor<Float32Array>> {
    const n = this.shape.reduce((a, b) => a * b, 1);
    return { shape: [...this.shape], data: toFloat32(await this.#bytes(), this.dtype, n) };
  }
  async readInt32(): Promise<HostTensor<Int32Array>> {
    const n = this.shape.reduce((a, b) => a * b, 1);
    return {
      shape: [...this.shape],
      data: toInt32(await this.#bytes(), this.dtype, n, `${this.where}: '${this.name}'`),
    };
  }
}

/** An opened `.pth`: the unpickled object and its tensors by key path. */
export class TorchCheckpoint implements TensorSource {
  readonly tensors = new Map<string, TensorEntry>();
  readonly opaque = new Map<string, string>();
  readonly metadata: Record<string, string> = {};

  constructor(readonly path: string, readonly format: string, readonly root: PyValue, readonly close: () => void) {
    this.#walk(root, "", 0);
  }

  #walk(v: PyValue, at: string, depth: number): void {
    if (depth > 32) return;
    const join = (k: unknown) => (at ? `${at}.${k}` : String(k));
    if (v instanceof TorchTensor) this.tensors.set(at, new TorchTensorEntry(at, v, this.path));
    else if (v instanceof PyOpaque) this.opaque.set(at, v.global);
    else if (v instanceof Map) {
      for (const [k, x] of v) if (typeof k === "string" || typeof k === "number") this.#walk(x, join(k), depth + 1);
    } else if (Array.isArray(v)) v.forEach((x, i) => this.#walk(x, join(i), depth + 1));
  }
}

/** Open `path`: zip or legacy PyTorch checkpoint (by its first bytes). */
export async function openTorchCheckpoint(path: string): Promise<TorchCheckpoint> {
  const file = await Deno.open(path, { read: true });
  try {
    const head = await readAt(file, 0, Math.min(8, (await file.stat()).size), path);
    if (head[0] === 0x50 && head[1] === 0x4b) return await openZip(path, file);
    if (head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return await openLegacy(path, file);
    throw new Error(
      `${path}: not a PyTorch checkpoint (first bytes ${
        [...head].map((b) => b.toString(16).padStart(2, "0")).join(" ")
      }; ` +
        `expected a zip archive 'PK' or a legacy pickle 0x80)`,
    );
  } catch (e) {
    try {
      file.close();
    } catch { /* already closed by the zip reader */ }
    throw e;
  }
}

async function openZip(path: string, file: Deno.FsFile): Promise<TorchCheckpoint> {
  const zip = await ZipReader.open(path, file);
  const pkl = [...zip.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) throw new Error(`${path}: a zip archive without '<archive>/data.pkl': not a torch.save file`);
  const prefix = pkl.slice(0, -"data.pkl".length);
  const order = zip.entries.get(`${prefix}byteorder`);
  if (order && new TextDecoder().decode(await zip.read(order.name)).trim() !== "little") {
    throw new Error(`${path}: a big-endian checkpoint; re-save it on a little-endian machine`);
  }
  const bytes: StorageBytes = (key, start, length) => zip.readRange(`${prefix}data/${key}`, start, length);
  const where = `${path} (${pkl})`;
  const root = unpickle(
    await zip.read(pkl),
    stateDictGlobals((pid) => {
      const s = storageFromPid(pid, bytes, where);
      if (s instanceof TorchStorage && !zip.entries.has(`${prefix}data/${s.key}`)) {
        throw new Error(
          `${path}: storage '${s.key}' is named by the pickle but the archive has no '${prefix}data/${s.key}'`,
        );
      }
      if (
        s instanceof TorchStorage && zip.entries.get(`${prefix}data/${s.key}`)!.size < s.numel * DTYPE_BYTES[s.dtype]
      ) {
        const have = zip.entries.get(`${prefix}data/${s.key}`)!.size;
        throw new Error(
          `${path}: storage '${s.key}' holds ${have} bytes, but its id says ${s.numel} x ${s.dtype} ` +
            `(${s.numel * DTYPE_BYTES[s.dtype]} bytes)`,
        );
      }
      return s;
    }),
    where,
  ).value;
  return new TorchCheckpoint(path, "pth-zip", root, () => zip.close());
}

async function openLegacy(path: string, file: Deno.FsFile): Promise<TorchCheckpoint> {
  const size = (await file.stat()).size;
  // The five pickles come first; read more of the file until they all parse.
  let chunk = Math.min(size, 1 << 20);
  for (;;) {
    const buf = await readAt(file, 0, chunk, path);
    try {
      return await parseLegacy(path, file, size, buf);
    } catch (e) {
      if (!(e instanceof PickleTruncated) || chunk === size) {
        if (e instanceof PickleTruncated) throw new Error(`${path}: ${e.message}: the file is truncated`);
        throw e;
      }
      chunk = Math.min(size, chunk * 4);
    }
  }
}

const hex = (v: unknown) => (typeof v === "bigint" || typeof v === "number" ? `0x${v.toString(16)}` : String(v));

async function parseLegacy(path: string, file: Deno.FsFile, size: number, buf: Uint8Array): Promise<TorchCheckpoint> {
  const plain = { calls: {} };
  const magic = unpickle(buf, plain, `${path} (magic number)`);
  if (magic.value !== LEGACY_MAGIC) {
    throw new Error(
      `${path}: wrong magic number ${hex(magic.value)} (a legacy torch file starts with ${hex(LEGACY_MAGIC)}): ` +
        `not a PyTorch checkpoint, or a corrupt one`,
    );
  }
  const proto = unpickle(buf, plain, `${path} (protocol)`, magic.end);
  if (proto.value !== LEGACY_PROTOCOL) {
    throw new Error(`${path}: legacy protocol version ${String(proto.value)}, expected ${LEGACY_PROTOCOL}`);
  }
  const sysInfo = unpickle(buf, plain, `${path} (sys info)`, proto.end);
  if (sysInfo.value instanceof Map && sysInfo.value.get("little_endian") === false) {
    throw new Error(`${path}: a big-endian checkpoint; re-save it on a little-endian machine`);
  }
  const storages = new Map<string, TorchStorage>();
  const offsets = new Map<string, number>();
  const bytes: StorageBytes = async (key, start, length) => {
    const at = offsets.get(key);
    if (at === undefined) throw new Error(`storage '${key}' is not in the file's storage list`);
    return await readAt(file, at + start, length, `${path} (storage '${key}')`);
  };
  const where = `${path} (object pickle)`;
  const main = unpickle(
    buf,
    stateDictGlobals((pid) => {
      const s = storageFromPid(pid, bytes, where);
      if (s instanceof TorchStorage && !storages.has(s.key)) {
        // A view's storage id still names the root key and the root's element count.
        const [, , , , numel] = pid as PyValue[];
        storages.set(s.key, new TorchStorage(s.key, s.dtype, numel as number, bytes));
      }
      return s;
    }),
    where,
    sysInfo.end,
  );
  const keys = unpickle(buf, plain, `${path} (storage keys)`, main.end);
  if (!Array.isArray(keys.value)) throw new Error(`${path}: the storage key list is not a list`);
  // Index the storages: an int64 element count, then the bytes; only the counts are read.
  let at = keys.end;
  for (const k of keys.value) {
    const s = storages.get(String(k));
    if (!s) throw new Error(`${path}: the file stores storage '${k}', which no tensor names`);
    const n = Number(
      new DataView((await readAt(file, at, 8, `${path} (storage '${k}' header)`)).buffer).getBigInt64(0, true),
    );
    if (n !== s.numel) throw new Error(`${path}: storage '${k}' holds ${n} elements, its id says ${s.numel}`);
    const len = n * DTYPE_BYTES[s.dtype];
    if (at + 8 + len > size) {
      throw new Error(`${path}: storage '${k}' needs bytes up to ${at + 8 + len}, the file has ${size} (truncated?)`);
    }
    offsets.set(String(k), at + 8);
    at += 8 + len;
  }
  return new TorchCheckpoint(path, "pth-legacy", main.value, () => file.close());
}
