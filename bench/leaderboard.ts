/**
 * `deno task leaderboard [--records DIR] [--out DIR]`
 *
 * Builds `results/leaderboard.json` (validated against its zod schema), `results/LEADERBOARD.md`
 * and the self-contained `results/leaderboard.html` from every run record under `--records`
 * (default `results/runs`, recursively: shards' downloaded artifacts can simply be unpacked
 * there), and regenerates the JSON Schemas in `results/schema/`. Deterministic: the same set of
 * records gives byte-identical files, however they were sharded.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { atomicWriteFile, atomicWriteJson } from "../model/atomic_write.ts";
import { type CliSpec, runCli } from "./cli.ts";
import { writeJsonSchemas } from "./json_schemas.ts";
import { buildLeaderboard } from "./leaderboard_build.ts";
import { leaderboardHtml } from "./leaderboard_html.ts";
import { leaderboardMarkdown } from "./leaderboard_markdown.ts";
import type { Leaderboard } from "./leaderboard_schema.ts";
import { readRunRecords } from "./run_record.ts";

export const RESULTS_DIR = fileURLToPath(new URL("../results", import.meta.url));

/** Build and write all leaderboard files; returns the leaderboard. */
export async function writeLeaderboard(recordsDir: string, outDir: string): Promise<Leaderboard> {
  const records = await readRunRecords(recordsDir);
  const lb = buildLeaderboard(records);
  await atomicWriteJson(`${outDir}/leaderboard.json`, lb);
  await atomicWriteFile(`${outDir}/LEADERBOARD.md`, leaderboardMarkdown(lb));
  await atomicWriteFile(`${outDir}/leaderboard.html`, leaderboardHtml(lb));
  await writeJsonSchemas(`${outDir}/schema`);
  return lb;
}

export const LEADERBOARD_CLI = {
  name: "leaderboard",
  synopsis: "deno task leaderboard [--records DIR] [--out DIR]",
  summary: "Build leaderboard.json, LEADERBOARD.md, leaderboard.html and the JSON Schemas from run records.",
  flags: {
    records: { type: "string", arg: "DIR", help: "run records, read recursively (default <out>/runs)" },
    out: { type: "string", arg: "DIR", help: "where the leaderboard files go (default results)" },
  },
} as const satisfies CliSpec;

if (import.meta.main) {
  Deno.exit(
    await runCli(LEADERBOARD_CLI, Deno.args, {
      check: ({ values }) => {
        const out = values.out ?? RESULTS_DIR;
        return { out, records: values.records ?? `${out}/runs` };
      },
      run: async ({ out, records }) => {
        const lb = await writeLeaderboard(records, out);
        console.log(
          `leaderboard: ${lb.rows.length} rows from ${records} -> ${out}/leaderboard.{json,html}, LEADERBOARD.md`,
        );
        for (const n of lb.notes.slice(1)) console.log(`  ${n}`);
      },
    }),
  );
}
