/**
 * The registry of benchmark suites (`deno task bench --suite NAME`): a plain typed object,
 * validated when a suite is loaded so that a typo in a preset fails with the path of the key.
 *
 * @module
 */
import { z } from "zod";
import { Suite, type SuiteInput } from "../suite.ts";
import { DEFAULT_SUITE } from "./default.ts";
import { IN1K_VIT_S_SUITE } from "./in1k_vit_s.ts";
import { IN1K_VIT_L14_SUITE } from "./in1k_vit_l14.ts";
import { ADE20K_SUITE } from "./ade20k.ts";
import { RELEASED_SUITE } from "./released.ts";

export const SUITES: Record<string, SuiteInput> = {
  default: DEFAULT_SUITE,
  in1k_vit_s: IN1K_VIT_S_SUITE,
  in1k_vit_l14: IN1K_VIT_L14_SUITE,
  ade20k: ADE20K_SUITE,
  released: RELEASED_SUITE,
};

/** The suite `name`, validated; the error lists the known suites. */
export function loadSuite(name: string): Suite {
  const input = SUITES[name];
  if (!input) throw new Error(`unknown suite '${name}': choose one of ${Object.keys(SUITES).join(", ")}`);
  const parsed = Suite.safeParse(input);
  if (!parsed.success) throw new Error(`suite '${name}' is invalid:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
