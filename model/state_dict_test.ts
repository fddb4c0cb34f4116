/** `checkParams` / `loadParams`: load_state_dict(strict=False) semantics and one-line errors, on an in-memory source. */
import assert from "node:assert/strict";
import type { DType } from "./dtypes.ts";
import { initBackend } from "./engine.ts";
import { ParamStore } from "./params.ts";
import { checkParams, describeLoad, type ExpectedParam, loadParams } from "./state_dict.ts";
import type { TensorSource } from "./tensor_source.ts";

await initBackend("cpu");

function source(
  entries: [string, number[], DType?][],
  opaque: [string, string][] = [],
): TensorSource & { reads: string[] } {
  const reads: string[] = [];
  const tensors = new Map(entries.map(([name, shape, dtype]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const read = () => {
      reads.push(name);
      return Promise.resolve({ shape, data: Float32Array.from({ length: n }, (_, i) => i) });
    };
    return [name, { name, dtype: dtype ?? "BF16", shape, read, readInt32: () => Promise.reject(new Error("int")) }];
  }));
  return { path: "f.pth", format: "pth-zip", tensors, metadata: {}, opaque: new Map(opaque), close: () => {}, reads };
}

const EXPECTED: ExpectedParam[] = [
  { name: "w", shape: [2, 3], use: "encode" },
  { name: "b", shape: [3], use: "encode" },
  { name: "dec.w", shape: [4], use: "unused" },
  { name: "dec.x", shape: [4], use: "unused" },
  { name: "any", shape: null, use: "unused" },
];

Deno.test("loadParams: uploads only what encoding needs; reports missing, unexpected, unused and ignored keys", async () => {
  const src = source([["m.w", [2, 3]], ["m.b", [3]], ["m.dec.w", [4]], ["m.any", [9, 9]], ["m.extra", [1]], [
    "optimizer.x",
    [5],
  ]]);
  const store = new ParamStore();
  const r = await loadParams(src, "m.", EXPECTED, store, { model: "M", storeName: (n) => `p.${n}` });
  assert.deepEqual(r, {
    prefix: "m.",
    loaded: 2,
    missing: ["dec.x"],
    unexpected: ["m.extra"],
    unused: ["dec.w", "any"],
    ignored: 1,
  });
  assert.deepEqual(src.reads, ["m.w", "m.b"], "unused and unexpected tensors are never read");
  assert.deepEqual(store.names(), ["p.w", "p.b"]);
  assert.deepEqual(Array.from(await store.get("p.w").data()), [0, 1, 2, 3, 4, 5]);
  assert.equal(
    describeLoad(r),
    "loaded 2 tensors under 'm.'; missing 1 (dec.x); unexpected 1 (m.extra); not needed to encode 2; outside the prefix 1",
  );
  store.dispose();
});

Deno.test("checkParams: a missing needed weight, a wrong shape or an integer weight is one clear error", () => {
  assert.throws(() => checkParams(source([["m.w", [2, 3]]]), "m.", EXPECTED, "CAPI preset vit_l"), {
    message: "f.pth: CAPI preset vit_l weight 'm.b' is missing",
  });
  assert.throws(() => checkParams(source([["m.w", [3, 2]], ["m.b", [3]]]), "m.", EXPECTED, "M"), {
    message: "f.pth: 'm.w' has shape [3,2] in the file; M expects [2,3] (wrong --method/--preset, or pass --config " +
      "to override the architecture)",
  });
  assert.throws(() => checkParams(source([["m.w", [2, 3], "I64"], ["m.b", [3]]]), "m.", EXPECTED, "M"), {
    message: "f.pth: 'm.w' is I64; M expects a floating-point weight",
  });
  // A weight under a value that an unknown global built: the error names the global.
  const src = source([], [["model", "yacs.config.CfgNode"]]);
  assert.throws(
    () => checkParams(src, "model.", EXPECTED, "M"),
    /'model' is built by the python global 'yacs.config.CfgNode'/,
  );
});
