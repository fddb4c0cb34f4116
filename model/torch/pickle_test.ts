import assert from "node:assert/strict";
import { PickleTruncated, PLAIN_CALLS, PyGlobal, PyOpaque, unpickle } from "./pickle.ts";

const hex = (s: string) => Uint8Array.from(s.match(/../g)!, (b) => parseInt(b, 16));
const run = (bytes: Uint8Array) => unpickle(bytes, { calls: PLAIN_CALLS }, "t.pkl").value;

// pickle.dumps({'a': [1, 2.5, 'xé', b'by', (True, None)], 'big': 2**70, 'neg': -5,
//               'od': OrderedDict(k=300), 's': {3}}, protocol=p), python 3.11
const BY_PROTOCOL: Record<number, string> = {
  0: "286470300a56610a70310a286c70320a49310a6146322e350a615678e90a70330a61635f636f646563730a656e636f64650a70340a285662790a70350a566c6174696e310a70360a7470370a5270380a61284930310a4e7470390a6173566269670a7031300a4c313138303539313632303731373431313330333432344c0a73566e65670a7031310a492d350a73566f640a7031320a63636f6c6c656374696f6e730a4f726465726564446963740a7031330a2874527031340a566b0a7031350a493330300a737356730a7031360a635f5f6275696c74696e5f5f0a7365740a7031370a28286c7031380a49330a61747031390a527032300a732e",
  2: "80027d71002858010000006171015d7102284b01474004000000000000580300000078c3a97103635f636f646563730a656e636f64650a710458020000006279710558060000006c6174696e317106867107527108884e867109655803000000626967710a8a0900000000000000004058030000006e6567710b4afbffffff58020000006f64710c63636f6c6c656374696f6e730a4f726465726564446963740a710d2952710e58010000006b710f4d2c01735801000000737110635f5f6275696c74696e5f5f0a7365740a71115d71124b0361857113527114752e",
  3: "80037d71002858010000006171015d7102284b01474004000000000000580300000078c3a97103430262797104884e86710565580300000062696771068a0900000000000000004058030000006e656771074afbffffff58020000006f64710863636f6c6c656374696f6e730a4f726465726564446963740a71092952710a58010000006b710b4d2c0173580100000073710c636275696c74696e730a7365740a710d5d710e4b036185710f527110752e",
  5: "8005957b000000000000007d94288c0161945d94284b014740040000000000008c0378c3a9944302627994884e8694658c03626967948a090000000000000000408c036e6567944afbffffff8c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944d2c01738c0173948f94284b0390752e",
};

for (const [p, h] of Object.entries(BY_PROTOCOL)) {
  Deno.test(`unpickle: protocol ${p} plain values`, () => {
    const v = run(hex(h)) as Map<string, unknown>;
    assert.ok(v instanceof Map);
    const a = v.get("a") as unknown[];
    assert.deepEqual(a.slice(0, 3), [1, 2.5, "xé"]);
    assert.deepEqual(Array.from(a[3] as Uint8Array), [98, 121]);
    assert.deepEqual(a[4], [true, null]);
    assert.equal(v.get("big"), 2n ** 70n);
    assert.equal(v.get("neg"), -5);
    assert.deepEqual(v.get("od"), new Map([["k", 300]]));
    assert.deepEqual(v.get("s"), new Set([3]));
  });
}

Deno.test("unpickle: unknown globals become inert placeholders with their arguments", () => {
  // pickle of yacs.config.CfgNode({'A': 1}) by hand: GLOBAL, EMPTY_TUPLE, NEWOBJ, dict state, BUILD.
  const te = new TextEncoder();
  const bytes = new Uint8Array([
    0x80,
    0x02,
    0x63,
    ...te.encode("yacs.config\nCfgNode\n"),
    0x29,
    0x81,
    0x7d,
    0x58,
    1,
    0,
    0,
    0,
    0x41,
    0x4b,
    1,
    0x73,
    0x62,
    0x2e,
  ]);
  const v = run(bytes);
  assert.ok(v instanceof PyOpaque);
  assert.equal(v.global, "yacs.config.CfgNode");
  assert.deepEqual(v.state, new Map([["A", 1]]));
});

Deno.test("unpickle: globals that run code are refused before anything else happens", () => {
  const te = new TextEncoder();
  for (const [mod, name] of [["os", "system"], ["posix", "system"], ["subprocess", "Popen"], ["builtins", "eval"]]) {
    const bytes = new Uint8Array([
      0x80,
      0x02,
      0x63,
      ...te.encode(`${mod}\n${name}\n`),
      0x58,
      4,
      0,
      0,
      0,
      ...te.encode("true"),
      0x85,
      0x52,
      0x2e,
    ]);
    assert.throws(() => run(bytes), {
      message: `t.pkl: the pickle names the global '${mod}.${name}', which a checkpoint never needs and which ` +
        `could run code when unpickled; refusing the file (nothing was executed)`,
    });
  }
  // Protocol-0 python-2 spelling of builtins.
  assert.throws(() => run(new TextEncoder().encode("c__builtin__\neval\n(S'1'\ntR.")), /'builtins.eval'/);
  // An allowed module's harmless global stays a placeholder.
  assert.ok(run(new TextEncoder().encode("cnumpy\ndtype\n.")) instanceof PyGlobal);
});

Deno.test("unpickle: truncated input, stack underflow and unknown opcodes are reported with the byte offset", () => {
  assert.throws(() => run(hex(BY_PROTOCOL[2]).subarray(0, 40)), PickleTruncated);
  assert.throws(() => run(new Uint8Array([0x80, 0x02, 0x52, 0x2e])), {
    message: "t.pkl: pickle byte 3: stack underflow",
  });
  assert.throws(() => run(new Uint8Array([0x80, 0x02, 0x82, 1, 0x2e])), /pickle byte 2: opcode 0x82 is not supported/);
  assert.throws(() => run(new Uint8Array([0x80, 0x02, 0x68, 9, 0x2e])), /memo key 9 was never stored/);
  assert.throws(() => run(new Uint8Array([0x80, 0x02, 0x4e, 0x4e, 0x2e])), /STOP with 2 values on the stack/);
});
