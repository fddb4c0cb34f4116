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
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { atomicWriteFile, atomicWriteJson } from "../model/atomic_write.ts";
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

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { records: { type: "string" }, out: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log("usage: deno task leaderboard [--records results/runs] [--out results]");
    Deno.exit(0);
  }
  const out = values.out ?? RESULTS_DIR;
  const records = values.records ?? `${out}/runs`;
  try {
    const lb = await writeLeaderboard(records, out);
    console.log(
      `leaderboard: ${lb.rows.length} rows from ${records} -> ${out}/leaderboard.{json,html}, LEADERBOARD.md`,
    );
    for (const n of lb.notes.slice(1)) console.log(`  ${n}`);
  } catch (err) {
    console.error(`leaderboard: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
