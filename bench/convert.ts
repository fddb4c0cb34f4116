/**
 * `deno task convert IN OUT.safetensors [--method capi|mae|simmim] [--preset P] [--config JSON] [--hub-cache DIR]`
 *
 * Released weights (a `.pth` in the CAPI / MAE / SimMIM layout, official-name safetensors, a
 * hub name) -> float32 safetensors under the official state-dict names (the file's prefix,
 * e.g. CAPI's `backbone.` or MAE's `model.`, stripped), with metadata `format`
 * (`mim-released-v1`), `method`, `preset`, `overrides`, `config`, the source and its SHA-256.
 * Every expected tensor is checked first (missing encoder weights and wrong shapes fail
 * before anything is written); tensors are read, converted and written one at a time, to a
 * temp file renamed at the end. `deno task eval` and `embed` read the result without
 * `--method`/`--preset`.
 *
 * Example: deno task convert capi_vitl14_in1k capi_vitl14_in1k.safetensors
 *
 * @module
 */
import { basename } from "node:path";
import { releasedLayout } from "../model/released_encoder.ts";
import { createSafetensorsWriter, type StreamedTensor } from "../model/safetensors.ts";
import { sha256File } from "../model/sha256.ts";
import { checkParams, describeLoad } from "../model/state_dict.ts";
import { openTensorSource } from "../model/tensor_source.ts";
import { RELEASED_FORMAT } from "../eval/checkpoint_encoder.ts";
import { parseConfigFlag, parseMethod, resolveCheckpoint } from "./checkpoint_arg.ts";

import { type CliSpec, type ParsedArgs, runCli } from "./cli.ts";

export const CONVERT_CLI = {
  name: "convert",
  synopsis: "deno task convert IN OUT.safetensors [--method capi|mae|simmim] [--preset P]",
  summary: "Released weights (.pth, official-name safetensors, hub name) -> float32 safetensors with our metadata.",
  flags: {
    method: { type: "string", arg: "capi|mae|simmim", help: "what the weights are (a hub name implies it)" },
    preset: { type: "string", arg: "P", help: "the method's preset (e.g. vit_l, vit_b)" },
    config: { type: "string", arg: "JSON", help: "config keys replacing the preset's" },
    "hub-cache": { type: "string", arg: "DIR", help: "download cache of hub names (default .cache/hub)" },
  },
  positionals: { min: 2, max: 2 },
} as const satisfies CliSpec;

function checkArgs({ values, positionals }: ParsedArgs<typeof CONVERT_CLI>) {
  parseMethod(values.method);
  parseConfigFlag(values.config);
  const [input, out] = positionals;
  return {
    input,
    out,
    method: values.method,
    preset: values.preset,
    config: values.config,
    hubCache: values["hub-cache"],
  };
}

/** Convert `input` (resolved) to `out`; returns the number of tensors written. */
export async function convertReleased(
  input: string,
  out: string,
  o: { method?: string; preset?: string; config?: string; hubCache?: string; log?: (l: string) => void },
): Promise<number> {
  const log = o.log ?? ((l: string) => console.error(l));
  const ckpt = await resolveCheckpoint(input, { hubCache: o.hubCache, flag: "convert" });
  const method = parseMethod(o.method) ?? ckpt.method;
  if (!method) throw new Error(`convert ${input}: pass --method capi|mae|simmim (and --preset) for released weights`);
  const preset = o.preset ?? (o.method ? undefined : ckpt.preset);
  const overrides = parseConfigFlag(o.config);
  const src = await openTensorSource(ckpt.path);
  try {
    const layout = releasedLayout(src, { method, preset, overrides });
    const report = checkParams(src, layout.prefix, layout.expected, layout.model);
    log(`${ckpt.path}: ${src.format}, ${method}: ${describeLoad(report)}`);
    const present = layout.expected.filter((e) => src.tensors.has(layout.prefix + e.name));
    const isInt = (name: string) => !["F32", "F16", "BF16", "F64"].includes(src.tensors.get(name)!.dtype);
    const specs: StreamedTensor[] = present.map((e) => {
      const t = src.tensors.get(layout.prefix + e.name)!;
      return { name: e.name, dtype: isInt(layout.prefix + e.name) ? "I32" : "F32", shape: t.shape };
    });
    const writer = await createSafetensorsWriter(out, specs, {
      format: RELEASED_FORMAT,
      method,
      preset: preset ?? "",
      ...(overrides ? { overrides: JSON.stringify(overrides) } : {}),
      config: JSON.stringify(layout.config),
      source: basename(ckpt.path),
      sourceSha256: ckpt.hub?.sha256 ?? await sha256File(ckpt.path),
      sourcePrefix: layout.prefix,
    });
    try {
      for (const s of specs) {
        const t = src.tensors.get(layout.prefix + s.name)!;
        await writer.write(s.name, 0, s.dtype === "I32" ? (await t.readInt32()).data : (await t.read()).data);
      }
      await writer.close();
    } catch (e) {
      await writer.abort();
      throw e;
    }
    log(`wrote ${out}: ${specs.length} tensors (${method}${preset ? ` preset ${preset}` : ""}, float32)`);
    return specs.length;
  } finally {
    src.close();
  }
}

if (import.meta.main) {
  Deno.exit(
    await runCli(CONVERT_CLI, Deno.args, {
      check: checkArgs,
      run: async (o) => void await convertReleased(o.input, o.out, o),
    }),
  );
}
