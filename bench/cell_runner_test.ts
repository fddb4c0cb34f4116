/**
 * Harness bookkeeping with fake phases: records, skipping, identities, checkpoint reuse and
 * resume after a kill.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cellIdentity, type CellReport, runCells } from "./cell_runner.ts";
import { FAKE_SUITE, fakePhases } from "./fake_phases.ts";
import { readRunRecords, RunRecord, writeRunRecord } from "./run_record.ts";
import { expandSuite, Suite } from "./suite.ts";

const quiet = { log: () => {} };
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

Deno.test("the identity ignores runtime knobs and covers seed, data file list, budget and protocol", async () => {
  const { phases } = fakePhases();
  const base = Suite.parse(FAKE_SUITE);
  const id = async (s: Suite, i = 0) => (await cellIdentity(expandSuite(s)[i], phases.resolveData)).hash;
  const h = await id(base);
  const knobs = Suite.parse({
    ...FAKE_SUITE,
    runtime: { backend: "cpu", batchPerDevice: 2, workers: 7, logEvery: 1, checkpointEvery: 3, evalBatchSize: 5 },
  });
  assert.equal(await id(knobs), h);
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
  assert.notEqual((await cellIdentity(expandSuite(base)[0], otherFiles.resolveData)).hash, h);
  // Where the data lives is not part of the identity: only its file list is.
  const moved = {
    ...phases,
    resolveData: async (s: Parameters<typeof phases.resolveData>[0]) => ({
      ...await phases.resolveData(s),
      root: "/elsewhere",
    }),
  };
  assert.equal((await cellIdentity(expandSuite(base)[0], moved.resolveData)).hash, h);
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
