"""The official CAPI, MAE and SimMIM models, built and loaded as their own code does (dev-only).

`build(method, arch, repos)` imports the unmodified official model files from checkouts of
facebookresearch/capi, facebookresearch/mae and microsoft/SimMIM (shims.py provides what torch 1.13 lacks);
`load(method, model, path)` loads a checkpoint in the released layout with the official loading code's
semantics; `embed(method, model, images)` returns (patches [N, H/p, W/p, D], global [N, D]) as the
official evaluation code defines them:

  CAPI    EncoderDecoder.forward (eval API): feature_map, and global_repr = mean of dec_norm(decoder block 1)
  MAE     models_vit.VisionTransformer.forward_features with global_pool=False (main_linprobe.py: cls token after
          the final norm); patches = the final-norm tokens after cls (the same norm's output, hooked)
  SimMIM  VisionTransformerForSimMIM.forward with an all-zero mask: final-norm patch tokens; global = their mean
"""
import sys
from functools import partial

import torch
from torch import nn

import shims

shims.install()

ARCHS = {
    # CAPI ViT-L/14 (default_pretrain_config.yaml) and a tiny one for committed test files.
    "capi_vitl14": dict(patch_size=14, embed_dim=1024, num_heads=16, enc_depth=24, dec_depth=12, n_registers=16, img=224),
    "capi_tiny": dict(patch_size=4, embed_dim=16, num_heads=2, enc_depth=2, dec_depth=2, n_registers=4, img=16),
    # MAE ViT-B/16 (models_vit.vit_base_patch16) and tiny.
    "mae_vitb16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, img=224),
    "mae_tiny": dict(patch_size=4, embed_dim=16, depth=2, num_heads=2, img=16),
    # SimMIM ViT-B/16 (configs/vit_base__800ep) and tiny.
    "simmim_vitb16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, img=224),
    "simmim_tiny": dict(patch_size=4, embed_dim=8, depth=2, num_heads=2, img=16),
}


def build(method, arch, repos):
    a = ARCHS[arch]
    sys.path.insert(0, repos[method])
    if method == "capi":
        import model as capi

        return capi.EncoderDecoder(
            patch_size=a["patch_size"],
            n_registers=a["n_registers"],
            transformers_kwargs=dict(
                embed_dim=a["embed_dim"], drop_path_rate=0.0, block_kwargs=dict(attn_kwargs=dict(num_heads=a["num_heads"]))
            ),
            encoder_kwargs=dict(depth=a["enc_depth"]),
            decoder_kwargs=dict(depth=a["dec_depth"]),
        )
    if method == "mae":
        import models_vit

        return models_vit.VisionTransformer(
            img_size=a["img"], patch_size=a["patch_size"], embed_dim=a["embed_dim"], depth=a["depth"],
            num_heads=a["num_heads"], mlp_ratio=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
            global_pool=False, num_classes=1000,
        )
    if method == "simmim":
        from models.simmim import SimMIM, VisionTransformerForSimMIM

        encoder = VisionTransformerForSimMIM(
            img_size=a["img"], patch_size=a["patch_size"], in_chans=3, num_classes=0, embed_dim=a["embed_dim"],
            depth=a["depth"], num_heads=a["num_heads"], mlp_ratio=4, qkv_bias=True, drop_rate=0.0,
            drop_path_rate=0.1, norm_layer=partial(nn.LayerNorm, eps=1e-6), init_values=0.1, use_abs_pos_emb=False,
            use_rel_pos_bias=False, use_shared_rel_pos_bias=True, use_mean_pooling=False,
        )
        return SimMIM(encoder=encoder, encoder_stride=16)  # build_simmim: 16 for every ViT
    raise ValueError(method)


def load(method, model, path):
    """The official loaders' semantics; returns load_state_dict's message."""
    ckpt = torch.load(path, map_location="cpu")
    if method == "capi":  # model.__model_loader__
        sd = {k.removeprefix("backbone."): v for k, v in ckpt.items() if k.startswith("backbone.")}
    else:  # main_linprobe.py (MAE) / utils.load_checkpoint (SimMIM): checkpoint['model']
        sd = ckpt["model"]
    sd = {k: v.to(next(iter(model.state_dict().values())).dtype) if v.is_floating_point() else v for k, v in sd.items()}
    return model.load_state_dict(sd, strict=False)


@torch.no_grad()
def embed(method, model, images):
    model.eval()
    if method == "capi":
        global_repr, _, feature_map = model(images)
        return feature_map, global_repr
    if method == "mae":
        seen = {}
        hook = model.norm.register_forward_hook(lambda m, i, o: seen.setdefault("norm", o))
        outcome = model.forward_features(images)
        hook.remove()
        p = model.patch_embed.patch_size[0]
        n, _, h, w = images.shape
        return seen["norm"][:, 1:].reshape(n, h // p, w // p, -1), outcome
    if method == "simmim":
        enc = model.encoder
        n, _, h, w = images.shape
        p = enc.patch_size
        z = enc(images, torch.zeros(n, h // p, w // p, dtype=images.dtype))  # [N, D, Gh, Gw]
        patches = z.permute(0, 2, 3, 1)
        return patches, patches.mean(dim=(1, 2))
    raise ValueError(method)
