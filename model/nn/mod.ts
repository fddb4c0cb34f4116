/**
 * ViT building blocks shared by CAPI, MAE and SimMIM.
 *
 * @module
 */
export * from "./linear.ts";
export * from "./norm.ts";
export * from "./mlp.ts";
export * from "./attention.ts";
export * from "./patch_embed.ts";
