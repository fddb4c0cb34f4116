/**
 * The published JSON Schemas in `results/schema/` must equal what the zod source generates.
 * On failure: run `deno task leaderboard` (or `deno run -A bench/json_schemas.ts`) and commit.
 *
 * @module
 */
import assert from "node:assert/strict";
import { jsonSchemas } from "./json_schemas.ts";

Deno.test("results/schema/*.json match the zod schemas they are generated from", async () => {
  for (const [name, text] of Object.entries(jsonSchemas())) {
    const path = new URL(`../results/schema/${name}`, import.meta.url);
    let committed = "";
    try {
      committed = await Deno.readTextFile(path);
    } catch {
      assert.fail(`results/schema/${name} is missing: run \`deno run -A bench/json_schemas.ts\` and commit it`);
    }
    assert.equal(committed, text, `results/schema/${name} drifted from its zod source: regenerate it`);
    const schema = JSON.parse(text);
    assert.equal(schema.type, "object");
    assert.equal(schema.additionalProperties, false, "strict objects must forbid unknown keys");
  }
});
