/**
 * `.github/workflows/bench.yml` cannot run here (GPU runners), so it is checked statically: it
 * parses (npm:yaml, strict), its suite choices are the registered suites, its shard matrix comes
 * from `--ci-matrix` of the code and expands as each suite's `ci.shards` says (every cell in exactly
 * one shard, at most one pretraining per shard), `ade20k`'s shards hold the same pretrainings as
 * `in1k_vit_l14`'s (so its checkpoint cache, keyed by pretraining identity, is theirs), caches are
 * saved on failure and cancellation, and every flag it passes to bench exists.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { BENCH_CLI } from "./run_bench.ts";
import { REPO_ROOT, runTask } from "./run_task.ts";
import { ciMatrix, expandSuite, pretrainingKey, selectShard } from "./suite.ts";
import { loadSuite, SUITES } from "./suites/mod.ts";

type Step = { name?: string; uses?: string; run?: string; if?: string; with?: Record<string, string> };
type Job = { steps: Step[]; strategy?: { matrix: unknown }; needs?: string; outputs?: Record<string, string> };
interface Workflow {
  on: { workflow_dispatch: { inputs: Record<string, { options?: string[]; default?: string }> } };
  jobs: Record<string, Job>;
}

const workflow = parse(await Deno.readTextFile(`${REPO_ROOT}.github/workflows/bench.yml`), {
  strict: true,
  uniqueKeys: true,
}) as Workflow;

Deno.test("bench.yml: suite choices are the registered suites; the matrix comes from the code", () => {
  const inputs = workflow.on.workflow_dispatch.inputs;
  assert.deepEqual(inputs.suite.options, Object.keys(SUITES));
  assert.deepEqual(inputs.engine.options, ["ort", "tfjs"]);
  assert.equal(inputs.engine.default, "ort");
  const plan = workflow.jobs.plan.steps.find((s) => s.run?.includes("--ci-matrix"));
  assert.ok(plan, "the plan job asks bench for the matrix");
  assert.equal(workflow.jobs.shard.needs, "plan");
  assert.equal(workflow.jobs.shard.strategy?.matrix, "${{ fromJSON(needs.plan.outputs.matrix) }}");
});

Deno.test("every suite's matrix expands as its ci.shards says: each cell once, at most one pretraining a shard", () => {
  for (const name of Object.keys(SUITES)) {
    const suite = loadSuite(name);
    const { include } = ciMatrix(suite);
    assert.equal(include.length, suite.ci.shards, name);
    const all = expandSuite(suite);
    const seen = include.flatMap((m, i) => {
      assert.equal(m.shard, `${i + 1}/${suite.ci.shards}`);
      const cells = selectShard(all, { index: i + 1, count: suite.ci.shards });
      assert.ok(new Set(cells.map(pretrainingKey).filter((k) => k)).size <= 1, `${name} shard ${m.shard}`);
      return m.cells;
    });
    assert.deepEqual(seen.sort(), all.map((c) => `${c.name} seed ${c.seed}`).sort(), name);
  }
  assert.throws(
    () => ciMatrix({ ...loadSuite("in1k_vit_l14"), ci: { shards: 2 } }),
    /suite 'in1k_vit_l14': ci.shards 2 gives shard 1\/2 4 cells and 2 pretrainings/,
  );
});

Deno.test("ade20k's shards hold in1k_vit_l14's pretrainings, so they restore its checkpoints", () => {
  const seg = loadSuite("ade20k"), cls = loadSuite("in1k_vit_l14");
  assert.equal(seg.ci.shards, cls.ci.shards);
  for (let i = 1; i <= seg.ci.shards; i++) {
    const keys = (s: typeof seg) =>
      selectShard(expandSuite(s), { index: i, count: s.ci.shards }).map(pretrainingKey).filter((k) => k);
    assert.deepEqual(keys(seg), keys(cls), `shard ${i}`);
  }
});

Deno.test("bench.yml: caches are saved on failure and cancellation, keyed by pretraining identity", () => {
  const steps = workflow.jobs.shard.steps;
  const saves = steps.filter((s) => s.uses?.startsWith("actions/cache/save@"));
  assert.equal(saves.length, 2);
  for (const s of saves) assert.match(s.if ?? "", /always\(\)/, s.name ?? "");
  const restore = steps.find((s) => s.uses?.startsWith("actions/cache/restore@") && s.with?.path.includes("pretrain"))!;
  assert.equal(restore.with!.path, ".cache/bench/pretrain/${{ steps.ident.outputs.pretrain }}");
  assert.equal(restore.with!["restore-keys"], "bench-pretrain-${{ steps.ident.outputs.pretrain }}-");
  assert.doesNotMatch(restore.with!.key, /inputs\.suite/, "the checkpoint cache must not be per suite");
  for (const s of [...steps, ...workflow.jobs.plan.steps, ...workflow.jobs.leaderboard.steps]) {
    if (s.uses) assert.match(s.uses, /^[\w-]+\/[\w/-]+@v\d+$/, "actions pinned to a major version");
  }
});

Deno.test("bench.yml: every flag it passes to bench exists; the ORT engine and tfjs-node-gpu are both wired", () => {
  const env = (workflow.jobs.shard as unknown as { env: Record<string, string> }).env;
  assert.match(env.ENGINE_FLAGS, /--engine ort --ep \{0\}/);
  assert.match(env.ENGINE_FLAGS, /--engine tfjs --backend \{0\}/);
  const runs = Object.values(workflow.jobs).flatMap((j) => j.steps.map((s) => s.run ?? ""));
  const benchLines = runs.filter((r) => r.includes("bench/run_bench.ts")).join("\n") + "\n" + env.ENGINE_FLAGS +
    "\n" + env.REUSE_FLAGS;
  const used = [...benchLines.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]);
  assert.ok(used.length > 8);
  for (const flag of used) assert.ok(flag in BENCH_CLI.flags, `--${flag} is not a flag of deno task bench`);
  const install = runs.find((r) => r.includes("deno install"))!;
  assert.match(install, /ONNXRUNTIME_NODE_INSTALL=cuda12 deno install --allow-scripts=npm:onnxruntime-node/);
  assert.match(install, /deno install --allow-scripts=npm:@tensorflow\/tfjs-node-gpu/);
});

Deno.test("the plan job's command prints the matrix the workflow expects (one JSON line)", async () => {
  const r = await runTask("bench/run_bench.ts", ["--suite", "in1k_vit_l14", "--ci-matrix", "--json"], REPO_ROOT);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, JSON.stringify(ciMatrix(loadSuite("in1k_vit_l14"))) + "\n");
});
