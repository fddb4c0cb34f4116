/**
 * `TensorSource`: a checkpoint file's tensors by name, read lazily, one at a time. Opening
 * reads only the index (a safetensors header, a PyTorch pickle and zip directory); a
 * tensor's bytes are read when `read()` is called, so loading a model costs its weights,
 * not several copies of the file.
 *
 * Names are key paths: a PyTorch file's nested dicts are joined with `.` (the released MAE
 * file `{"model": {"cls_token": ...}}` gives `model.cls_token`; SimMIM's `save_checkpoint`
 * also `optimizer.state.0.exp_avg`, never read unless asked for).
 *
 * @module
 */
import type { DType } from "./dtypes.ts";
import type { HostTensor } from "./fixture.ts";
import { openSafetensors } from "./safetensors.ts";
import { openTorchCheckpoint } from "./torch/pth.ts";

export interface TensorEntry {
  readonly name: string;
  /** Element type as stored (F32, BF16, ...). */
  readonly dtype: DType;
  readonly shape: number[];
  /** The values upcast (or rounded, for F64) to float32. */
  read(): Promise<HostTensor<Float32Array>>;
  /** The values as int32 (integer dtypes; int64 checked to fit). */
  readInt32(): Promise<HostTensor<Int32Array>>;
}

export interface TensorSource {
  readonly path: string;
  /** `safetensors`, `pth-zip` (torch >= 1.6) or `pth-legacy`. */
  readonly format: string;
  readonly tensors: Map<string, TensorEntry>;
  /** String metadata (safetensors `__metadata__`; empty for PyTorch files). */
  readonly metadata: Record<string, string>;
  /**
   * Key paths of values that globals outside the reader's allow-list would have built (a
   * yacs config, a numpy scalar), with that global: never executed, reported when needed.
   */
  readonly opaque: Map<string, string>;
  close(): void;
}

/**
 * The error for a tensor `key` that `source` lacks: when the key path runs through a value
 * built by an unknown global, it names that global.
 */
export function missingTensorError(source: TensorSource, key: string, what: string): Error {
  const parts = key.split(".");
  for (let i = parts.length; i > 0; i--) {
    const at = parts.slice(0, i).join(".");
    const g = source.opaque.get(at);
    if (g) {
      return new Error(
        `${source.path}: ${what} '${key}' cannot be read: '${at}' is built by the python global '${g}', which ` +
          `this reader does not run (it only rebuilds tensors and plain containers); re-save the state dict ` +
          `with torch.save(model.state_dict())`,
      );
    }
  }
  return new Error(`${source.path}: ${what} '${key}' is missing`);
}

/**
 * Open a checkpoint file by its content (not its name): a PyTorch zip (`PK`), a legacy PyTorch
 * pickle (`0x80`), or safetensors (a little-endian header length, then `{`).
 */
export async function openTensorSource(path: string): Promise<TensorSource> {
  let head: Uint8Array;
  try {
    const f = await Deno.open(path, { read: true });
    try {
      head = new Uint8Array(9);
      head = head.subarray(0, (await f.read(head)) ?? 0);
    } finally {
      f.close();
    }
  } catch (e) {
    throw new Error(`${path}: cannot read checkpoint: ${(e as Error).message}`);
  }
  // Safetensors first: its 8-byte little-endian header length can start with 0x80 too (a 32,384-byte
  // header does), but its high bytes are zero and the JSON header follows. A legacy pickle starts
  // 80 02 8a 0a followed by its magic number, never with zeros then `{`.
  const safetensors = head.length === 9 && head[8] === 0x7b && head[5] === 0 && head[6] === 0 && head[7] === 0;
  if (safetensors) return await openSafetensors(path);
  if ((head[0] === 0x50 && head[1] === 0x4b) || head[0] === 0x80) return await openTorchCheckpoint(path);
  throw new Error(
    `${path}: not a checkpoint this suite reads (first bytes ${
      [...head].map((b) => b.toString(16).padStart(2, "0")).join(" ")
    }): ` +
      `expected safetensors, or a PyTorch .pth/.pt (zip or legacy)`,
  );
}
