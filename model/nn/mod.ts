/**
 * ViT building blocks shared by CAPI, MAE and SimMIM, written once against `Ops`
 * (model/ops/ops.ts) so that every engine runs the same definition. RMSNorm, LayerNorm and
 * GELU are ops themselves (`o.rmsNorm`, `o.layerNorm`, `o.gelu`): an engine may fuse them.
 *
 * @module
 */
export * from "./linear.ts";
export * from "./mlp.ts";
export * from "./attention.ts";
export * from "./patch_embed.ts";
