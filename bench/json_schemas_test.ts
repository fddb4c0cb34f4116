/**
 * The published JSON Schemas in `results/schema/` must equal what the zod source generates.
 * On failure: run `deno task leaderboard` (or `deno run -A bench/json_schemas.ts`) and commit.
 * Also: what the harness writes validates against those schemas (with python3-jsonschema).
 *
 * @module
 */
import assert from "node:assert/strict";
import { jsonSchemas } from "./json_schemas.ts";
import { runFakeCells } from "./fake_phases.ts";
import { writeLeaderboard } from "./leaderboard.ts";

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

/** Whether `python3` with the `jsonschema` package is here (Debian: python3-jsonschema). */
function hasPythonJsonschema(): boolean {
  try {
    return new Deno.Command("python3", { args: ["-c", "import jsonschema"], stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

const canValidate = hasPythonJsonschema();
if (!canValidate) {
  console.log("SKIP schema validation test: python3 with jsonschema not found (apt install python3-jsonschema)");
}

Deno.test({
  name: "a leaderboard and a run record produced by the harness validate against the emitted JSON Schemas",
  ignore: !canValidate,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "bench_schema_test_" });
    const reports = await runFakeCells(root);
    await writeLeaderboard(`${root}/runs`, root);
    const schemas = jsonSchemas();
    const pairs = [
      ["leaderboard.schema.json", `${root}/leaderboard.json`],
      ["run_record.schema.json", reports[0].recordPath!],
      ["run_record.schema.json", reports.at(-1)!.recordPath!],
    ];
    for (const [name, file] of pairs) {
      await Deno.writeTextFile(`${root}/${name}`, schemas[name]);
      const out = new Deno.Command("python3", {
        args: [
          "-c",
          "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))",
          `${root}/${name}`,
          file,
        ],
        stderr: "piped",
      }).outputSync();
      assert.ok(out.success, `${file} fails ${name}: ${new TextDecoder().decode(out.stderr).slice(-1500)}`);
    }
    await Deno.remove(root, { recursive: true });
  },
});
