/**
 * Which runner checks which fixture. Each method keeps its runner beside its model.
 *
 * @module
 */
import type { Fixture } from "../model/fixture.ts";
import type { ParityReport } from "../model/parity.ts";
import type { EngineFactory } from "../model/train_engine.ts";
import { runCapiParity } from "../model/capi/parity.ts";
import { runMaeParity } from "../model/mae/parity.ts";
import { runSimmimParity } from "../model/simmim/parity.ts";
import { runProbeParity } from "../eval/probe_parity.ts";

export const FIXTURE_KINDS = ["capi", "capi_probe", "mae", "simmim"] as const;
export type FixtureKind = typeof FIXTURE_KINDS[number];

/** Runs a fixture's checks; method runners run the method's training step on the engine `createEngine` builds. */
export type ParityRunner = (fx: Fixture, report: ParityReport, createEngine: EngineFactory) => Promise<void>;

/** Tell a fixture's kind from the tensors it holds (file names are not trusted). */
export function detectFixtureKind(fx: Fixture): FixtureKind {
  if (fx.has("teacher.head.assignments")) return "capi";
  if (fx.names().some((n) => n.startsWith("param.attn") || n.startsWith("param.linear."))) return "capi_probe";
  if (fx.has("ids_restore") || fx.has("target.norm_pix")) return "mae";
  if (fx.has("dec.x_rec") || fx.has("rel_pos_bias")) return "simmim";
  throw new Error(
    `${fx.path}: cannot tell which method this fixture is for (expected CAPI, CAPI probe, MAE or SimMIM tensors)`,
  );
}

export const PARITY_RUNNERS: Record<FixtureKind, ParityRunner> = {
  capi: runCapiParity,
  capi_probe: (fx, report) => runProbeParity(fx, report),
  mae: runMaeParity,
  simmim: runSimmimParity,
};
