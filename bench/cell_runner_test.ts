/**
 * Harness bookkeeping with fake phases: records, skipping, identities, checkpoint reuse and
 * resume after a kill.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cellIdentity, type CellReport, PretrainDone, runCells } from "./cell_runner.ts";
import { FAKE_SUITE, fakeContext, fakePhases } from "./fake_phases.ts";
import { readRunRecords, RUN_RECORD_SCHEMA_VERSION, RunRecord, writeRunRecord } from "./run_record.ts";
import { expandSuite, Suite } from "./suite.ts";

const quiet = { log: () => {}, context: fakeContext() };
const statuses = (r: CellReport[]) => r.map((x) => x.status);

async function tempDirs() {
  const root = await Deno.makeTempDir({ prefix: "bench_runner_test_" });
  return { root, recordsDir: `${root}/runs`, checkpointsDir: `${root}/ckpt` };
}

Deno.test("runCells writes one valid record per cell, then skips them all on a re-run", async () => {
  const dirs = await tempDirs();
  const cells = expandSuite(Suite.parse(FAKE_SUITE));
  assert.equal(cells.length, 10); // 5 subjects x 2 seeds
  const first = fakePhases();
  const reports = await runCells(cells, first.phases, { ...dirs, ...quiet });
  assert.deepEqual(statuses(reports), Array(10).fill("done"));
  assert.equal(first.calls.pretrain.length, 4); // capi and mae, 2 seeds; baselines never pretrain
  const records = await readRunRecords(dirs.recordsDir);
  assert.equal(records.length, 10);
  for (const { record } of records) {
    RunRecord.parse(record);
    assert.deepEqual(Object.keys(record.metrics).sort(), ["knn/loss", "knn/top1", "seg_knn/loss", "seg_knn/miou"]);
    assert.equal(record.pretraining === null, record.row.subjectKind !== "pretrained");
  }
  const again = fakePhases();
  const reports2 = await runCells(cells, again.phases, { ...dirs, ...quiet });
  assert.deepEqual(statuses(reports2), Array(10).fill("skipped"));
  assert.deepEqual(again.calls, { pretrain: [], evaluate: [], resumedFrom: [] });
  await Deno.remove(dirs.root, { recursive: true });
});

Deno.test("the identity ignores runtime knobs and covers seed, data file list, budget, micro-batches and protocol", async () => {
  const { phases } = fakePhases();
  const base = Suite.parse(FAKE_SUITE);
  const id = async (s: Suite, i = 0) => (await cellIdentity(expandSuite(s)[i], phases.resolveData, fakeContext())).hash;
  const h = await id(base);
  const knobs = Suite.parse({
    ...FAKE_SUITE,
    runtime: { backend: "cpu", workers: 7, logEvery: 1, checkpointEvery: 3, evalBatchSize: 5 },
  });
  assert.equal(await id(knobs), h);
  // A micro-batch that splits the batch changes results (CAPI's stochastic depth per micro-batch); one that does not, nothing.
  const batch = FAKE_SUITE.pretraining[0].batchSize;
  const split = Suite.parse({ ...FAKE_SUITE, runtime: { batchPerDevice: batch / 2 } });
  assert.notEqual(await id(split), h);
  assert.equal(await id(Suite.parse({ ...FAKE_SUITE, runtime: { batchPerDevice: batch } })), h);
  assert.notEqual(await id(base, 1), h); // same subject, seed 1
  const budget = Suite.parse({ ...FAKE_SUITE, pretraining: [{ ...FAKE_SUITE.pretraining[0], steps: 6 }] });
  assert.notEqual(await id(budget), h);
  const proto = Suite.parse({ ...FAKE_SUITE, protocol: { ...FAKE_SUITE.protocol, version: 2 } });
  assert.notEqual(await id(proto), h);
  const otherFiles = {
    ...phases,
    resolveData: async (spec: Parameters<typeof phases.resolveData>[0]) => ({
      ...await phases.resolveData(spec),
      fileListHash: "0".repeat(64),
    }),
  };
  assert.notEqual((await cellIdentity(expandSuite(base)[0], otherFiles.resolveData, fakeContext())).hash, h);
  // Where the data lives is not part of the identity: only its file list is.
  const moved = {
    ...phases,
    resolveData: async (s: Parameters<typeof phases.resolveData>[0]) => ({
      ...await phases.resolveData(s),
      root: "/elsewhere",
    }),
  };
  assert.equal((await cellIdentity(expandSuite(base)[0], moved.resolveData, fakeContext())).hash, h);
});

Deno.test("a killed pretraining leaves no record and resumes from its checkpoint on the next run", async () => {
  const dirs = await tempDirs();
  const cells = expandSuite(Suite.parse(FAKE_SUITE)).slice(0, 1); // capi seed 0
  const dying = fakePhases({ dieAfterStep: 3 });
  const reports = await runCells(cells, dying.phases, { ...dirs, ...quiet });
  assert.equal(reports[0].status, "failed");
  assert.match(reports[0].error!, /killed after step 3/);
  assert.equal((await readRunRecords(dirs.recordsDir)).length, 0);
  const resumed = fakePhases();
  const reports2 = await runCells(cells, resumed.phases, { ...dirs, ...quiet });
  assert.equal(reports2[0].status, "done");
  assert.deepEqual(resumed.calls.resumedFrom, [3]);
  assert.equal(reports2[0].record!.pretraining!.resumedFromStep, 3);
  await Deno.remove(dirs.root, { recursive: true });
});

Deno.test("a finished checkpoint is reused by a cell with the same pretraining and another protocol", async () => {
  const dirs = await tempDirs();
  const first = fakePhases();
  await runCells(expandSuite(Suite.parse(FAKE_SUITE)).slice(0, 1), first.phases, { ...dirs, ...quiet });
  const other = Suite.parse({ ...FAKE_SUITE, protocol: { ...FAKE_SUITE.protocol, id: "fake.other" } });
  const second = fakePhases();
  const reports = await runCells(expandSuite(other).slice(0, 1), second.phases, { ...dirs, ...quiet });
  assert.equal(reports[0].status, "done");
  assert.deepEqual(second.calls.pretrain, []);
  assert.equal(reports[0].record!.pretraining!.reusedCheckpoint, true);
  assert.equal((await readRunRecords(dirs.recordsDir)).length, 2);
  await Deno.remove(dirs.root, { recursive: true });
});

Deno.test("an invalid record is refused before anything is written, naming the field", async () => {
  const dirs = await tempDirs();
  const { phases } = fakePhases();
  const [report] = await runCells(expandSuite(Suite.parse(FAKE_SUITE)).slice(2, 3), phases, { ...dirs, ...quiet });
  const bad = { ...report.record!, seed: -1 };
  const path = `${dirs.root}/bad.json`;
  await assert.rejects(writeRunRecord(path, bad), /invalid, not written[\s\S]*seed/);
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  await Deno.remove(dirs.root, { recursive: true });
});

Deno.test("a missing dataset stops the run before any cell, with the resolver's message", async () => {
  const dirs = await tempDirs();
  const { phases, calls } = fakePhases();
  const broken = {
    ...phases,
    resolveData: () => Promise.reject(new Error("hashFileList: data folder '/nope' does not exist")),
  };
  await assert.rejects(
    runCells(expandSuite(Suite.parse(FAKE_SUITE)), broken, { ...dirs, ...quiet }),
    /data folder '\/nope' does not exist/,
  );
  assert.deepEqual(calls.pretrain, []);
  await Deno.remove(dirs.root, { recursive: true });
});

Deno.test("a change of engine makes a finished cell re-run; a fallback to the same device does not", async () => {
  const dirs = await tempDirs();
  const cells = expandSuite(Suite.parse(FAKE_SUITE)).slice(0, 3); // capi s0, capi s1 (pretrained), mae s0
  const run = async (context: ReturnType<typeof fakeContext>) => {
    const f = fakePhases();
    return { reports: await runCells(cells, f.phases, { ...dirs, log: () => {}, context }), calls: f.calls };
  };
  await run(fakeContext());
  // A `blas` record must not make a `tensorflow` run skip: every cell re-runs, pretraining included.
  const tf = await run(
    fakeContext({ engine: { device: "tensorflow", versions: { "@tensorflow/tfjs-node-gpu": "4.22.0" } } }),
  );
  assert.deepEqual(statuses(tf.reports), ["done", "done", "done"]);
  assert.equal(tf.calls.pretrain.length, 3);
  assert.match(
    tf.reports[0].decision!.kind === "run" ? tf.reports[0].decision!.reasons.join("\n") : "",
    /engine: tfjs blas -> tfjs tensorflow/,
  );
  const rec = tf.reports[0].record!;
  assert.equal(rec.provenance.engine.device, "tensorflow");
  assert.equal(rec.pretraining!.provenance.engine.device, "tensorflow");
  assert.equal(rec.pretraining!.reusedCheckpoint, false);
  // Another library version is another engine too.
  const newer = await run(
    fakeContext({ engine: { device: "tensorflow", versions: { "@tensorflow/tfjs-node-gpu": "4.23.0" } } }),
  );
  assert.deepEqual(statuses(newer.reports), ["done", "done", "done"]);
  // `blas` asked, `wasm` ran (no OpenBLAS): recorded as the fallback, and the same computation as asking `wasm`.
  const wasmVersions = { "@tensorflow/tfjs-core": "4.22.0", "@tensorflow/tfjs-backend-wasm": "4.22.0" };
  const fallback = await run(fakeContext({ engine: { device: "wasm", fallbackFrom: "blas", versions: wasmVersions } }));
  assert.deepEqual(statuses(fallback.reports), ["done", "done", "done"]);
  assert.deepEqual(
    [fallback.reports[0].record!.provenance.engine.device, fallback.reports[0].record!.provenance.engine.fallbackFrom],
    ["wasm", "blas"],
  );
  const wasm = await run(fakeContext({ engine: { device: "wasm", versions: wasmVersions } }));
  assert.deepEqual(statuses(wasm.reports), ["skipped", "skipped", "skipped"]);
  await Deno.remove(dirs.root, { recursive: true });
});

Deno.test("a change of code version re-runs: evaluation code re-evaluates, pretraining code re-pretrains", async () => {
  const dirs = await tempDirs();
  const cells = expandSuite(Suite.parse(FAKE_SUITE)).slice(0, 1); // capi seed 0
  const run = async (context: ReturnType<typeof fakeContext>) => {
    const f = fakePhases();
    const [r] = await runCells(cells, f.phases, { ...dirs, log: () => {}, context });
    return { r, calls: f.calls };
  };
  const first = await run(fakeContext());
  // A commit that changed no result-computing source changes nothing.
  assert.equal((await run(fakeContext({ commit: "d".repeat(40) }))).r.status, "skipped");
  const evalCode = await run(fakeContext({ commit: "e".repeat(40), evaluationSources: "e".repeat(64) }));
  assert.equal(evalCode.r.status, "done");
  assert.deepEqual([evalCode.calls.pretrain, evalCode.calls.evaluate], [[], ["capi/0"]]);
  assert.equal(evalCode.r.record!.pretraining!.reusedCheckpoint, true);
  assert.equal(evalCode.r.record!.pretraining!.provenance.startedAt, first.r.record!.pretraining!.provenance.startedAt);
  assert.equal(evalCode.r.record!.provenance.code.commit, "e".repeat(40));
  assert.equal(evalCode.r.record!.pretraining!.provenance.code.commit, "c0ffee".padEnd(40, "0"));
  const preCode = await run(fakeContext({ evaluationSources: "e".repeat(64), pretrainingSources: "f".repeat(64) }));
  assert.deepEqual([preCode.r.status, preCode.calls.pretrain], ["done", ["capi/0"]]);
  assert.notEqual(preCode.r.record!.identity.pretrainHash, first.r.record!.identity.pretrainHash);
  assert.equal(preCode.r.record!.identity.hash, first.r.record!.identity.hash); // same settings, same cell
  assert.equal((await readRunRecords(dirs.recordsDir)).length, 1); // the stale record was replaced
  await Deno.remove(dirs.root, { recursive: true });
});

Deno.test("--reuse-from keeps a stale cell computed by the named commit, and the record says so", async () => {
  const dirs = await tempDirs();
  const cells = expandSuite(Suite.parse(FAKE_SUITE)).slice(0, 2);
  await runCells(cells, fakePhases().phases, { ...dirs, ...quiet });
  const newCode = fakeContext({ commit: "1".repeat(40), evaluationSources: "9".repeat(64) });
  const other = fakePhases();
  const notNamed = await runCells(cells, other.phases, {
    ...dirs,
    log: () => {},
    context: newCode,
    reuseFrom: "abcdef0",
    plan: true,
  });
  assert.deepEqual(notNamed.map((r) => r.decision!.kind), ["run", "run"]);
  const kept = fakePhases();
  const reports = await runCells(cells, kept.phases, {
    ...dirs,
    log: () => {},
    context: newCode,
    reuseFrom: "c0ffee0",
  });
  assert.deepEqual(statuses(reports), ["reused", "reused"]);
  assert.deepEqual(kept.calls, { pretrain: [], evaluate: [], resumedFrom: [] });
  const reuse = (await readRunRecords(dirs.recordsDir))[0].record.provenance.reuse!;
  assert.equal(reuse.fromCommit, "c0ffee".padEnd(40, "0"));
  assert.equal(reuse.acceptedBy.commit, "1".repeat(40));
  assert.deepEqual(reuse.reasons, [`evaluation code changed (commit c0ffee0000 -> 1111111111)`]);
  // Accepted once, skipped afterwards without the flag; another change re-runs.
  assert.deepEqual(statuses(await runCells(cells, fakePhases().phases, { ...dirs, log: () => {}, context: newCode })), [
    "skipped",
    "skipped",
  ]);
  const later = fakeContext({ commit: "2".repeat(40), evaluationSources: "8".repeat(64) });
  assert.deepEqual(statuses(await runCells(cells, fakePhases().phases, { ...dirs, log: () => {}, context: later })), [
    "done",
    "done",
  ]);
  await Deno.remove(dirs.root, { recursive: true });
});

Deno.test("--plan decides without running or writing; a record of an older schema re-runs", async () => {
  const dirs = await tempDirs();
  const cells = expandSuite(Suite.parse(FAKE_SUITE)).slice(0, 2);
  const planned = fakePhases();
  const lines: string[] = [];
  const reports = await runCells(cells, planned.phases, {
    ...dirs,
    log: (l) => lines.push(l),
    context: fakeContext(),
    plan: true,
  });
  assert.deepEqual(statuses(reports), ["planned", "planned"]);
  assert.deepEqual(planned.calls, { pretrain: [], evaluate: [], resumedFrom: [] });
  await assert.rejects(Deno.stat(dirs.root + "/runs"), Deno.errors.NotFound);
  await assert.rejects(Deno.stat(dirs.root + "/ckpt"), Deno.errors.NotFound);
  assert.match(
    lines.join("\n"),
    /\[1\/2\] capi tiny fake-imagenet 5x4 seed 0: run \(identity [0-9a-f]{12}\), pretraining [0-9a-f]{12}/,
  );
  const [done] = await runCells(cells.slice(0, 1), fakePhases().phases, { ...dirs, ...quiet });
  const old = { ...JSON.parse(await Deno.readTextFile(done.recordPath!)), schemaVersion: 1 };
  await Deno.writeTextFile(done.recordPath!, JSON.stringify(old));
  const again = await runCells(cells.slice(0, 1), fakePhases().phases, { ...dirs, ...quiet });
  assert.equal(again[0].status, "done");
  assert.equal((await readRunRecords(dirs.recordsDir))[0].record.schemaVersion, RUN_RECORD_SCHEMA_VERSION);
  await Deno.remove(dirs.root, { recursive: true });
});

Deno.test("pretrain_done.json: written with the pretraining's identity and provenance; a broken one fails its cell", async () => {
  const dirs = await tempDirs();
  const cells = expandSuite(Suite.parse(FAKE_SUITE)).slice(0, 1);
  const [r] = await runCells(cells, fakePhases().phases, { ...dirs, ...quiet });
  const donePath = `${r.record!.pretraining!.checkpoint}/pretrain_done.json`;
  const done = PretrainDone.parse(JSON.parse(await Deno.readTextFile(donePath)));
  assert.equal(done.pretrainHash, r.record!.identity.pretrainHash);
  assert.deepEqual(done.provenance, r.record!.pretraining!.provenance);
  assert.ok(done.provenance.finishedAt <= r.record!.provenance.startedAt, "pretraining ends before evaluation starts");
  await Deno.writeTextFile(donePath, JSON.stringify({ ...done, outcome: { steps: 5 } }));
  const other = Suite.parse({ ...FAKE_SUITE, protocol: { ...FAKE_SUITE.protocol, id: "fake.other" } });
  const [broken] = await runCells(expandSuite(other).slice(0, 1), fakePhases().phases, { ...dirs, ...quiet });
  assert.equal(broken.status, "failed");
  assert.match(
    broken.error!,
    new RegExp(`^'${donePath}' is not a valid pretrain_done.json; delete it to pretrain again`),
  );
  await Deno.remove(dirs.root, { recursive: true });
});
