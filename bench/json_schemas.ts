/**
 * JSON Schemas of the published result files, generated from their zod source (zod v4
 * `z.toJSONSchema`), so that tools outside Deno can validate `results/leaderboard.json` and
 * the run records. `json_schemas_test.ts` fails when the committed files drift from the code:
 * regenerate them with `deno task leaderboard` (or `deno run -A bench/json_schemas.ts`).
 *
 * @module
 */
import { z } from "zod";
import { atomicWriteFile } from "../model/atomic_write.ts";
import { Leaderboard } from "./leaderboard_schema.ts";
import { RunRecord } from "./run_record.ts";

/** File name under `results/schema/` -> schema text. */
export function jsonSchemas(): Record<string, string> {
  const text = (schema: z.ZodType, id: string, title: string) =>
    JSON.stringify({ ...z.toJSONSchema(schema, { io: "output" }), $id: id, title }, null, 2) + "\n";
  return {
    "leaderboard.schema.json": text(Leaderboard, "leaderboard.schema.json", "MIM benchmark leaderboard"),
    "run_record.schema.json": text(RunRecord, "run_record.schema.json", "MIM benchmark run record"),
  };
}

/** Write every schema into `dir` atomically. */
export async function writeJsonSchemas(dir: string): Promise<string[]> {
  const written = [];
  for (const [name, text] of Object.entries(jsonSchemas())) {
    await atomicWriteFile(`${dir}/${name}`, text);
    written.push(`${dir}/${name}`);
  }
  return written;
}

if (import.meta.main) {
  for (const p of await writeJsonSchemas(new URL("../results/schema", import.meta.url).pathname)) console.log(p);
}
