/**
 * `deno task data`: dataset checks and the synthetic default.
 *
 *   deno task data check --kind imagenet|ade20k|synthetic [--root DIR] [--split train|val]
 *   deno task data generate [--root DIR] [--seed N]
 *
 * `check` reads every file once, prints per split the image and class counts (next to the
 * official full sizes) and for segmentation the label histogram, and lists every problem
 * with its file path. It only looks: a `--root` that does not exist, or a synthetic folder
 * that was never generated, is refused (exit 2) and nothing is created. The synthetic kind
 * checks both its classification and segmentation parts (`--root` defaults to the cache).
 * Exit 0 when clean, 1 with problems, 2 on a refused command line. Runtime: ~5 s for the
 * synthetic default on 2 cores.
 *
 * This entry point imports the shared flag handling from bench/cli.ts (every task fails the
 * same way); entry points are leaves, so this does not make the datasets library depend on bench.
 *
 * @module
 */
import { type CliIo, type CliSpec, intFlag, type ParsedArgs, runCli, UsageError } from "../bench/cli.ts";
import { checkDataset, formatReport } from "./check.ts";
import type { ImageDataset, Split } from "./dataset.ts";
import { DATA_KINDS, type DataKind, openDataset } from "./data_spec.ts";
import { ensureSynthetic, requireSynthetic } from "./synthetic.ts";

export const DATA_CLI = {
  name: "data",
  synopsis: "deno task data check|generate [flags]",
  summary: "check: read every file of a data set once and list every problem with its path; " +
    "generate: write the synthetic default.",
  flags: {
    kind: { type: "string", arg: DATA_KINDS.join("|"), help: "check: the layout to read" },
    root: { type: "string", arg: "DIR", help: "the data folder (synthetic: default the cache folder)" },
    split: { type: "string", arg: "train|val", help: "check: one split only (default both)" },
    concurrency: { type: "string", arg: "N", help: "check: decodes in flight (default 8)" },
    seed: { type: "string", arg: "N", help: "generate: generator seed (default 0)" },
  },
  positionals: { min: 1, max: 1 },
  notes: [
    "commands:",
    "  check --kind imagenet|ade20k|synthetic [--root DIR] [--split train|val] [--concurrency N]",
    "  generate [--root DIR] [--seed N]",
  ],
} as const satisfies CliSpec;

type Command =
  | { command: "generate"; root?: string; seed: number }
  | { command: "check"; kind: DataKind; root: string | null; splits: Split[]; concurrency: number };

async function checkArgs({ values, positionals }: ParsedArgs<typeof DATA_CLI>): Promise<Command> {
  const command = positionals[0];
  if (command === "generate") {
    return { command, root: values.root, seed: intFlag("seed", values.seed, { min: 0, fallback: 0 }) };
  }
  if (command !== "check") throw new UsageError(`unknown command '${command}'; expected check or generate`);
  const kind = values.kind;
  if (kind === undefined || !(DATA_KINDS as readonly string[]).includes(kind)) {
    throw new UsageError(`--kind must be one of ${DATA_KINDS.join(", ")}, got '${kind ?? ""}'`);
  }
  if (kind !== "synthetic" && !values.root) throw new UsageError(`--root DIR is required for --kind ${kind}`);
  if (values.split !== undefined && values.split !== "train" && values.split !== "val") {
    throw new UsageError(`--split must be train or val, got '${values.split}'`);
  }
  const concurrency = intFlag("concurrency", values.concurrency, { min: 1, fallback: 8 });
  // Look, never make: a typo in --root must not generate a data set there.
  if (kind === "synthetic") await requireSynthetic(values.root);
  else if (!(await Deno.stat(values.root!).then((s) => s.isDirectory, () => false))) {
    throw new UsageError(`--root ${values.root}: folder not found`);
  }
  const splits: Split[] = values.split ? [values.split as Split] : ["train", "val"];
  return { command, kind: kind as DataKind, root: values.root ?? null, splits, concurrency };
}

async function check(c: Extract<Command, { command: "check" }>, print: (line: string) => void): Promise<number> {
  const tasks = c.kind === "synthetic" ? (["classification", "segmentation"] as const) : [undefined];
  let problems = 0;
  for (const task of tasks) {
    for (const split of c.splits) {
      let ds: ImageDataset;
      try {
        ds = await openDataset({ kind: c.kind, root: c.root }, split, { task, log: print, generate: false });
      } catch (e) {
        print(`${c.kind} ${split}: ${(e as Error).message}`);
        problems++;
        continue;
      }
      let last = performance.now();
      const onProgress = (done: number, total: number) => {
        if (performance.now() - last < 10_000) return; // a line every 10 s on big datasets
        last = performance.now();
        console.error(`  ${ds.description}: ${done.toLocaleString("en-US")} / ${total.toLocaleString("en-US")} read`);
      };
      const report = await checkDataset(ds, { concurrency: c.concurrency, onProgress });
      for (const line of formatReport(report, ds.classNames)) print(line);
      problems += report.problems.length;
    }
  }
  print(problems === 0 ? "data check: clean" : `data check: ${problems} problem(s)`);
  return problems === 0 ? 0 : 1;
}

/** Run the CLI; returns the exit code (tests call this directly). */
export function main(args: string[], io?: CliIo): Promise<number> {
  const print = io?.out ?? ((line: string) => console.log(line));
  return runCli(DATA_CLI, args, {
    check: checkArgs,
    run: async (c) => {
      if (c.command === "check") return await check(c, print);
      print(await ensureSynthetic({ root: c.root, config: { seed: c.seed }, log: print }));
      return 0;
    },
  }, io);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
