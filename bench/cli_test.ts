/**
 * The command-line contract of every entry point, tested in-process (bench/cli.ts) and by
 * running each `deno task` entry point as a subprocess: `--help` exits 0 with the usage; an
 * unknown flag or an invalid value prints exactly one line naming it, then the usage, exits 2,
 * prints no stack trace and writes nothing; `pretrain` refuses an existing `--out`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type CliSpec, intFlag, parseFlags, runCli, usage } from "./cli.ts";
import { BENCH_CLI } from "./run_bench.ts";
import { PRETRAIN_CLI } from "./pretrain.ts";
import { EVAL_CLI } from "./eval.ts";
import { LEADERBOARD_CLI } from "./leaderboard.ts";
import { SPEED_CLI } from "./speed.ts";
import { PARITY_CLI } from "./parity.ts";
import { DATA_CLI } from "../datasets/data_cli.ts";
import { EMBED_CLI } from "./embed.ts";
import { CONVERT_CLI } from "./convert.ts";
import { assertRefused, REPO_ROOT, runTask, twoAtATime } from "./run_task.ts";

const ROOT = REPO_ROOT;

/** Every task of deno.json with its entry file and spec. */
const ENTRY_POINTS: [string, string, CliSpec][] = [
  ["bench", "bench/run_bench.ts", BENCH_CLI],
  ["pretrain", "bench/pretrain.ts", PRETRAIN_CLI],
  ["eval", "bench/eval.ts", EVAL_CLI],
  ["data", "datasets/data_cli.ts", DATA_CLI],
  ["leaderboard", "bench/leaderboard.ts", LEADERBOARD_CLI],
  ["speed", "bench/speed.ts", SPEED_CLI],
  ["parity", "bench/parity.ts", PARITY_CLI],
  ["embed", "bench/embed.ts", EMBED_CLI],
  ["convert", "bench/convert.ts", CONVERT_CLI],
];

Deno.test("usage lists every flag of every entry point, and --help", () => {
  assert.equal(
    ENTRY_POINTS.length,
    Object.keys(JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks).length - 2,
  );
  for (const [task, , spec] of ENTRY_POINTS) {
    const text = usage(spec);
    assert.ok(text.startsWith(`usage: deno task ${task}`), text);
    for (const name of [...Object.keys(spec.flags), "help"]) assert.match(text, new RegExp(`--${name}\\b`), task);
  }
});

Deno.test("parseFlags: one-line errors that name the flag", () => {
  const spec = {
    name: "t",
    synopsis: "deno task t",
    summary: "test",
    flags: { steps: { type: "string", arg: "N", help: "" }, list: { type: "boolean", help: "" } },
  } as const satisfies CliSpec;
  const refused = (args: string[]) => {
    try {
      parseFlags(spec, args);
    } catch (e) {
      return (e as Error).message;
    }
    return "accepted";
  };
  assert.equal(refused(["--stpes", "3"]), "unknown flag '--stpes' (did you mean --steps?)");
  assert.equal(refused(["--zzz"]), "unknown flag '--zzz'");
  assert.equal(refused(["--steps"]), "--steps needs a value (N)");
  assert.equal(
    refused(["--steps", "--list"]),
    "--steps needs a value (N); a value starting with '-' is written --steps=-VALUE",
  );
  assert.equal(refused(["--list=yes"]), "--list takes no value");
  assert.equal(refused(["extra"]), "unexpected argument 'extra'");
  assert.deepEqual(parseFlags(spec, ["--steps=4", "--list"]).values, { steps: "4", list: true });
  assert.throws(
    () => intFlag("steps", "1.5", { min: 1 }),
    /^UsageError: --steps: expected an integer >= 1, got '1.5'$/,
  );
  assert.equal(intFlag("steps", undefined, { min: 1, fallback: 7 }), 7);
});

Deno.test("runCli: check errors exit 2 before run; run errors exit 1 without a stack", async () => {
  const spec = { name: "t", synopsis: "deno task t", summary: "test", flags: {} } as const satisfies CliSpec;
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(`out ${l}`), err: (l: string) => lines.push(`err ${l}`) };
  let ran = false;
  const refused = await runCli(spec, [], {
    check: () => {
      throw new Error("first\n  second");
    },
    run: () => Promise.resolve(void (ran = true)),
  }, io);
  assert.deepEqual([refused, ran, lines[0]], [2, false, "err t: first second"]);
  lines.length = 0;
  const failed = await runCli(spec, [], {
    check: () => 0,
    run: () => Promise.reject(new Error("disk full")),
  }, io);
  assert.deepEqual([failed, lines], [1, ["err t: disk full"]]);
});

Deno.test("every entry point: an unknown flag exits 2 with one line and the usage, writes nothing", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "cli_test_" });
  try {
    const results = await twoAtATime(ENTRY_POINTS.map(([, file]) => () => runTask(file, ["--no-such-flag"], cwd)));
    ENTRY_POINTS.forEach(([task], i) => assertRefused(results[i], task, `${task}: unknown flag '--no-such-flag'`));
    assert.deepEqual([...Deno.readDirSync(cwd)], []);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("entry points: --help exits 0; invalid values exit 2 naming the flag", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "cli_test_" });
  try {
    const [help, batch, shard, suite] = await twoAtATime([
      () => runTask("bench/pretrain.ts", ["--help"], cwd),
      () => runTask("bench/pretrain.ts", ["--batch", "0", "--out", "x"], cwd),
      () => runTask("bench/run_bench.ts", ["--shard", "3/2"], cwd),
      () => runTask("bench/run_bench.ts", ["--suite", "nope"], cwd),
    ]);
    assert.equal(help.code, 0, help.stderr);
    assert.equal(help.stdout.trimEnd(), usage(PRETRAIN_CLI));
    assertRefused(batch, "pretrain", "pretrain: --batch: expected an integer >= 1, got '0'");
    assertRefused(shard, "bench", "bench: --shard: expected i/n with 1 <= i <= n (e.g. --shard 2/4), got '3/2'");
    assertRefused(
      suite,
      "bench",
      "bench: unknown suite 'nope': choose one of default, in1k_vit_s, in1k_vit_l14, ade20k, released",
    );
    assert.deepEqual([...Deno.readDirSync(cwd)], []);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("pretrain refuses an --out that holds a run unless --resume or --force, and touches nothing", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "cli_test_" });
  try {
    await Deno.mkdir(`${cwd}/run`);
    await Deno.writeTextFile(`${cwd}/run/log.jsonl`, '{"step":1,"loss":2}\n');
    const [exists, both] = await twoAtATime([
      () => runTask("bench/pretrain.ts", ["--out", "run", "--steps", "1"], cwd),
      () => runTask("bench/pretrain.ts", ["--out", "run", "--resume", "--force"], cwd),
    ]);
    assertRefused(
      exists,
      "pretrain",
      "pretrain: --out run already holds a run (log.jsonl); pass --resume to continue it, " +
        "--force to start over (deletes those files), or choose another --out",
    );
    assertRefused(
      both,
      "pretrain",
      "pretrain: --resume and --force exclude each other: continue the run, or start it over",
    );
    assert.equal(await Deno.readTextFile(`${cwd}/run/log.jsonl`), '{"step":1,"loss":2}\n');
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
