/**
 * Masked image modeling benchmark suite: CAPI, MAE and SimMIM in TypeScript on Deno.
 *
 * The public API of each workspace member, re-exported. Import a member directly
 * (`@mim/model`, `@mim/datasets`, `@mim/eval`, `@mim/bench`) to take only part of it.
 *
 * @module
 */
export * from "./model/mod.ts";
export * from "./datasets/mod.ts";
export * from "./eval/mod.ts";
export * from "./bench/mod.ts";
