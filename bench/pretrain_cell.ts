/**
 * The pretraining of a cell: reuse the finished checkpoint of its pretraining identity, or run
 * the pretraining phase (which resumes from the trainer's last checkpoint in that folder) and mark
 * it finished. One folder per pretraining identity, `<checkpointsDir>/<pretrainHash>/`; its
 * `pretrain_done.json` (written atomically once the trainer returned, validated when read) holds
 * the identity, the outcome and the pretraining's own provenance: code, engine, decoder, machine,
 * start and finish.
 *
 * @module
 */
import { z } from "zod";
import { atomicWriteJson } from "../model/atomic_write.ts";
import type { CellIdentity } from "./cell_plan.ts";
import type { BenchPhases, RunCellsOptions } from "./cell_runner.ts";
import { LossCurves, LossPoint, PhaseProvenance, type RunRecord } from "./run_record.ts";
import type { Cell } from "./suite.ts";

/** `pretrain_done.json` in a checkpoint folder: written once the pretraining finished. */
export const PretrainDone = z.strictObject({
  pretrainHash: z.string().regex(/^[0-9a-f]{64}$/),
  identity: z.record(z.string(), z.unknown()).describe("what pretrainHash covers (settings, code, engine, decoder)"),
  outcome: z.strictObject({
    steps: z.number().int().nonnegative(),
    imagesSeen: z.number().int().nonnegative(),
    lossCurve: z.array(LossPoint),
    curves: LossCurves.optional().describe("every logged loss component (the trainer's log.jsonl)"),
    imagesPerSec: z.number().nonnegative().nullable(),
    resumedFromStep: z.number().int().nonnegative().nullable(),
    wallSec: z.number().nonnegative().describe("wall time of the session that finished it"),
  }),
  provenance: PhaseProvenance,
});
export type PretrainDone = z.infer<typeof PretrainDone>;

/** The machine facts of this run, shared by the records of both phases. */
export type Machine = Pick<PhaseProvenance, "device" | "ci">;

/** A finished pretraining of exactly this identity, or null; anything else in the file is an error. */
async function readPretrainDone(path: string, pretrainHash: string): Promise<PretrainDone | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  let parsed;
  try {
    parsed = PretrainDone.safeParse(JSON.parse(text));
  } catch (err) {
    throw new Error(`'${path}' is not valid JSON (${(err as Error).message}); delete it to pretrain again`);
  }
  if (!parsed.success) {
    throw new Error(`'${path}' is not a valid pretrain_done.json; delete it to pretrain again:\n${parsed.error}`);
  }
  if (parsed.data.pretrainHash !== pretrainHash) {
    throw new Error(`'${path}' belongs to pretraining ${parsed.data.pretrainHash}, not ${pretrainHash}`);
  }
  return parsed.data;
}

/** Pretrain the cell, or reuse the finished checkpoint of its pretraining identity. */
export async function pretrainCell(
  cell: Cell,
  id: CellIdentity,
  phases: BenchPhases,
  opts: RunCellsOptions,
  machine: Machine,
  log: (line: string) => void,
): Promise<{ pretraining: NonNullable<RunRecord["pretraining"]>; checkpointDir: string; sec: number }> {
  const checkpointDir = `${opts.checkpointsDir}/${id.pretrainHash}`;
  const donePath = `${checkpointDir}/pretrain_done.json`;
  let done = await readPretrainDone(donePath, id.pretrainHash!);
  const reused = done !== null;
  if (done) log(`reusing finished pretraining ${checkpointDir}`);
  else {
    const startedAt = new Date().toISOString();
    const t0 = performance.now();
    const outcome = await phases.pretrain({ cell, checkpointDir, pretrainHash: id.pretrainHash!, log });
    const c = opts.context;
    done = {
      pretrainHash: id.pretrainHash!,
      identity: id.pretrainIdentity!,
      outcome: { ...outcome, wallSec: (performance.now() - t0) / 1000 },
      provenance: {
        code: c.code.pretraining,
        engine: c.trainEngine,
        decoder: c.decoder,
        ...machine,
        startedAt,
        finishedAt: new Date().toISOString(),
      },
    };
    await atomicWriteJson(donePath, done);
  }
  const o = done.outcome, last = o.lossCurve.at(-1);
  log(
    `pretrained ${o.steps} steps` + (o.imagesPerSec ? ` at ${o.imagesPerSec.toFixed(1)} img/s` : "") +
      (last ? `, final loss ${last.loss.toFixed(4)}` : ""),
  );
  const pretraining = {
    steps: o.steps,
    imagesSeen: o.imagesSeen,
    lossCurve: o.lossCurve,
    ...(o.curves ? { curves: o.curves } : {}),
    finalLoss: last ? last.loss : null,
    imagesPerSec: o.imagesPerSec,
    resumedFromStep: o.resumedFromStep,
    reusedCheckpoint: reused,
    checkpoint: checkpointDir,
    provenance: done.provenance,
  };
  // A reused checkpoint reports the wall time of the session that finished it.
  return { pretraining, checkpointDir, sec: o.wallSec };
}
