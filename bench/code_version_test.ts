/**
 * The code version: the source hash moves with a result-computing source and with nothing else
 * (tests, docs, other phases' files), and the dirty flag sees uncommitted and untracked sources.
 */
import assert from "node:assert/strict";
import { codeVersion, isSource, SOURCE_SETS, type SourceSet } from "./code_version.ts";

async function git(cwd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("git", { args, cwd, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

async function write(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(`${root}${path}`.replace(/\/[^/]+$/, ""), { recursive: true });
    await Deno.writeTextFile(`${root}${path}`, text);
  }
}

Deno.test("isSource: code, not tests, benchmarks or test data", () => {
  assert.deepEqual(
    ["model/a.ts", "model/a_test.ts", "datasets/loader_bench.ts", "model/testdata/x.ts", "eval/README.md"].map(
      isSource,
    ),
    [true, false, false, false, false],
  );
});

Deno.test("codeVersion: the hash follows the result sources of each set; dirty sees edits and new files", async () => {
  const root = `${await Deno.makeTempDir({ prefix: "code_version_test_" })}/`;
  try {
    await write(root, {
      "model/a.ts": "export const a = 1;\n",
      "model/a_test.ts": "// test\n",
      "datasets/b.ts": "export const b = 2;\n",
      "eval/c.ts": "export const c = 3;\n",
      "bench/bench_phases.ts": "export const p = 4;\n",
      "bench/raw_pixels.ts": "export const r = 6;\n",
      "bench/protocol_probes.ts": "export const q = 7;\n",
      "bench/leaderboard.ts": "export const l = 5;\n",
      "README.md": "docs\n",
    });
    await git(root, "init", "-q");
    await git(root, "add", ".");
    await git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init");
    const pre0 = await codeVersion("pretraining", root), ev0 = await codeVersion("evaluation", root);
    assert.match(pre0.commit, /^[0-9a-f]{40}$/);
    assert.deepEqual([pre0.dirty, pre0.files, ev0.files], [false, 3, 6]);

    // Tests, docs and files no set computes with change no hash and make nothing dirty.
    await write(root, { "model/a_test.ts": "// edited\n", "README.md": "more\n", "bench/leaderboard.ts": "x\n" });
    assert.deepEqual(await codeVersion("pretraining", root), pre0);
    assert.deepEqual(await codeVersion("evaluation", root), ev0);

    // A probe change is an evaluation change only: checkpoints keep their identity.
    await write(root, { "eval/c.ts": "export const c = 4;\n" });
    const pre1 = await codeVersion("pretraining", root), ev1 = await codeVersion("evaluation", root);
    assert.deepEqual(pre1, pre0);
    assert.notEqual(ev1.sourceHash, ev0.sourceHash);
    assert.equal(ev1.dirty, true);

    // A new, untracked model file changes both and makes both dirty.
    await write(root, { "model/new.ts": "export const n = 0;\n" });
    const pre2 = await codeVersion("pretraining", root);
    assert.notEqual(pre2.sourceHash, pre0.sourceHash);
    assert.deepEqual([pre2.dirty, pre2.files], [true, 4]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("every source set names files of this repository (a rename must update SOURCE_SETS)", async () => {
  for (const set of Object.keys(SOURCE_SETS) as SourceSet[]) {
    const v = await codeVersion(set);
    assert.ok(v.files > 20, `${set}: ${v.files} files`);
    assert.match(v.sourceHash, /^[0-9a-f]{64}$/);
  }
});
