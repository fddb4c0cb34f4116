/**
 * The element types checkpoints store (safetensors names: F64, F32, F16, BF16, I64, I32, ...)
 * and their conversion from little-endian bytes to what the models compute with: float32
 * (exact for F16 and BF16; F64 rounds to nearest) or int32 (I64 checked to fit).
 *
 * @module
 */

export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
} as const;
export type DType = keyof typeof DTYPE_BYTES;

export function isDType(s: string): s is DType {
  return s in DTYPE_BYTES;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** IEEE half -> float32 via the bit layout (exact: every half is a float32). */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24; // subnormal
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** `count` values of `dtype` from the little-endian `bytes`, as float32. */
export function toFloat32(bytes: Uint8Array, dtype: DType, count: number): Float32Array {
  if (bytes.length < count * DTYPE_BYTES[dtype]) {
    throw new Error(`toFloat32: ${bytes.length} bytes for ${count} x ${dtype}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  switch (dtype) {
    case "F32":
      if (LITTLE_ENDIAN) out.set(new Float32Array(bytes.slice(0, 4 * count).buffer));
      else for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case "BF16": {
      // bfloat16 is the top half of a float32: shift it into place.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      break;
    }
    case "F16":
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      break;
    case "F64":
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    case "I64":
      for (let i = 0; i < count; i++) out[i] = Number(view.getBigInt64(8 * i, true));
      break;
    case "I32":
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true);
      break;
    case "I16":
      for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, true);
      break;
    case "I8":
      for (let i = 0; i < count; i++) out[i] = view.getInt8(i);
      break;
    case "U8":
    case "BOOL":
      for (let i = 0; i < count; i++) out[i] = bytes[i];
      break;
  }
  return out;
}

/** `count` integer values of `dtype` as int32; `where` names the tensor when one does not fit. */
export function toInt32(bytes: Uint8Array, dtype: DType, count: number, where: string): Int32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Int32Array(count);
  if (dtype === "I64") {
    for (let i = 0; i < count; i++) {
      const v = view.getBigInt64(8 * i, true);
      if (v > 2147483647n || v < -2147483648n) throw new Error(`${where}: value ${v} at index ${i} does not fit int32`);
      out[i] = Number(v);
    }
    return out;
  }
  if (dtype === "F64" || dtype === "F32" || dtype === "F16" || dtype === "BF16") {
    throw new Error(`${where}: a ${dtype} tensor where integers were expected`);
  }
  const f = toFloat32(bytes, dtype, count);
  for (let i = 0; i < count; i++) out[i] = f[i];
  return out;
}
