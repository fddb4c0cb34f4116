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

/** A NodeProto; `domain` is "" for the ONNX operators, "com.microsoft" for onnxruntime's contrib ops. */
export interface OnnxNode {
  op: string;
  domain?: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attrs?: Record<string, OnnxAttr>;
}

export interface OnnxIo {
  name: string;
  dtype: OnnxDtype;
  dims: (number | string)[];
}

/** A whole ModelProto: nodes in topological order, initializers, typed inputs and outputs, opset imports. */
export interface OnnxModel {
  irVersion: number;
  /** Opset per domain, e.g. `{ "": 17, "com.microsoft": 1 }`. */
  opsets: Record<string, number>;
  graphName: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxIo[];
  outputs: OnnxIo[];
  producer?: string;
}

export function writeModel(m: OnnxModel): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, m.irVersion);
  w.string(2, m.producer ?? "mim-bench");
  w.message(7, (g) => {
    for (const n of m.nodes) {
      g.message(1, (p) => {
        for (const i of n.inputs) p.string(1, i);
        for (const o of n.outputs) p.string(2, o);
        p.string(3, n.name);
        p.string(4, n.op);
        for (const [k, a] of Object.entries(n.attrs ?? {})) p.message(5, (am) => writeAttribute(am, k, a));
        if (n.domain) p.string(7, n.domain);
      });
    }
    g.string(2, m.graphName);
    for (const t of m.initializers) g.message(5, (p) => writeTensor(p, t));
    for (const i of m.inputs) g.message(11, (p) => writeValueInfo(p, i.name, i.dtype, i.dims));
    for (const o of m.outputs) g.message(12, (p) => writeValueInfo(p, o.name, o.dtype, o.dims));
  });
  for (const [domain, version] of Object.entries(m.opsets)) {
    w.message(8, (op) => {
      op.string(1, domain);
      op.int(2, version);
    });
  }
  return w.finish();
}
