/**
 * A minimal protobuf *writer* for the ONNX messages the exporter emits (onnx/onnx.proto3:
 * ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto). Only
 * writing is needed: onnxruntime parses the result. Hand-written (~150 lines) rather than an
 * npm protobuf runtime plus generated code: the suite needs 6 message types and 5 wire forms.
 *
 * Wire format: key = (field << 3) | wire type; varint (0), 64-bit (1), length-delimited (2),
 * 32-bit (5). int64 values go through BigInt so negative values (axes = -1) encode as the
 * 10-byte two's complement varint protobuf requires.
 *
 * @module
 */

/** Growable byte buffer with protobuf field writers. */
export class ProtoWriter {
  #buf = new Uint8Array(256);
  #len = 0;

  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  #byte(b: number): void {
    this.#ensure(1);
    this.#buf[this.#len++] = b;
  }

  /** Unsigned or signed (int64 two's complement) varint. */
  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    if (typeof v === "number" && !Number.isSafeInteger(v)) throw new Error(`protobuf: ${v} is not a safe integer`);
    while (x >= 0x80n) {
      this.#byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.#byte(Number(x));
  }

  #key(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  bytes(data: Uint8Array): void {
    this.#ensure(data.length);
    this.#buf.set(data, this.#len);
    this.#len += data.length;
  }

  /** Varint field (int32, int64, enum, bool). Zero is written too: callers skip defaults if they want. */
  int(field: number, v: number | bigint): void {
    this.#key(field, 0);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.#key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.bytes(b);
  }

  /** Length-delimited bytes field. */
  lenDelim(field: number, data: Uint8Array): void {
    this.#key(field, 2);
    this.varint(data.length);
    this.bytes(data);
  }

  string(field: number, s: string): void {
    this.lenDelim(field, new TextEncoder().encode(s));
  }

  /** Embedded message written by `fill`. */
  message(field: number, fill: (w: ProtoWriter) => void): void {
    const inner = new ProtoWriter();
    fill(inner);
    this.lenDelim(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** ONNX TensorProto.DataType values used here. */
export const ONNX_DTYPE = { float32: 1, int32: 6, int64: 7 } as const;
export type OnnxDtype = keyof typeof ONNX_DTYPE;

/** An initializer or attribute tensor. */
export interface OnnxTensor {
  name: string;
  dtype: OnnxDtype;
  dims: number[];
  data: Float32Array | Int32Array | BigInt64Array;
}

export function writeTensor(w: ProtoWriter, t: OnnxTensor): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, ONNX_DTYPE[t.dtype]);
  w.string(8, t.name);
  // raw_data is little-endian; typed arrays are little-endian on every platform we run on.
  w.lenDelim(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

/** Attribute value kinds (AttributeProto.AttributeType). */
export type OnnxAttr =
  | { kind: "float"; value: number }
  | { kind: "int"; value: number }
  | { kind: "string"; value: string }
  | { kind: "ints"; value: number[] }
  | { kind: "floats"; value: number[] }
  | { kind: "tensor"; value: OnnxTensor };

export function writeAttribute(w: ProtoWriter, name: string, a: OnnxAttr): void {
  w.string(1, name);
  switch (a.kind) {
    case "float":
      w.float(2, a.value);
      w.int(20, 1);
      break;
    case "int":
      w.int(3, a.value);
      w.int(20, 2);
      break;
    case "string":
      w.string(4, a.value);
      w.int(20, 3);
      break;
    case "tensor":
      w.message(5, (m) => writeTensor(m, a.value));
      w.int(20, 4);
      break;
    case "floats":
      for (const v of a.value) w.float(7, v);
      w.int(20, 6);
      break;
    case "ints":
      for (const v of a.value) w.int(8, v);
      w.int(20, 7);
      break;
    default: {
      const never: never = a;
      throw new Error(`onnx: unknown attribute kind ${JSON.stringify(never)}`);
    }
  }
}

/** ValueInfoProto for a graph input/output: dims are numbers or symbolic names (e.g. "batch"). */
export function writeValueInfo(w: ProtoWriter, name: string, dtype: OnnxDtype, dims: (number | string)[]): void {
  w.string(1, name);
  w.message(2, (type) =>
    type.message(1, (tt) => {
      tt.int(1, ONNX_DTYPE[dtype]);
      tt.message(2, (shape) => {
        for (const d of dims) shape.message(1, (dim) => (typeof d === "number" ? dim.int(1, d) : dim.string(2, d)));
      });
    }));
}
