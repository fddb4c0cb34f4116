"""Make a checkpoint in a released layout with random weights, test images, and the official code's outputs.

    /usr/bin/python3 tools/released/make_released.py --arch capi_tiny --out-dir DIR \
        --capi-repo CAPI_CHECKOUT --mae-repo MAE_CHECKOUT --simmim-repo SIMMIM_CHECKOUT [--images 2] [--seed 0]

Writes DIR/<arch>.pth, DIR/<arch>_images.safetensors (`images` [N, 3, H, W] float32, roughly normalised) and
DIR/<arch>_ref.safetensors (`patches`, `global`: the official model run in float64 on the loaded weights,
rounded to float32). Layouts (as published, see issue 14):

  capi_*    flat state dict of bfloat16 tensors, EncoderDecoder keys under `backbone.`, plus keys the official
            loader ignores (`head.*`)
  mae_*     {"model": encoder state dict}, float32 (mae_pretrain_vit_*.pth)
  simmim_*  SimMIM's save_checkpoint: {"model", "optimizer" (AdamW state after one step), "lr_scheduler",
            "max_accuracy", "epoch", "config" (a yacs CfgNode), "amp"}, float32

Weights: the official initialisation, then every constant-initialised tensor (norms, biases, LayerScale, the
RPB table, tokens) gets noise, so a loader that skips one is caught.
"""
import argparse
import json
import os
import struct

import torch

import official
import shims


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    js = json.dumps(header).encode()
    js += b" " * (-len(js) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(blobs))
    os.replace(tmp, path)


def randomise(model, gen):
    with torch.no_grad():
        if hasattr(model, "init_weights"):
            model.init_weights()  # CAPI: xavier, RoPE freqs (model.py init_weights)
        for name, p in model.named_parameters():
            if p.numel() > 1 and float(p.std()) > 0 and "freqs" not in name:
                continue
            if "freqs" in name:
                continue
            p.add_(torch.randn(p.shape, generator=gen) * (0.02 if "token" in name or "pos_embed" in name else 0.2))


def released_layout(method, model, gen):
    sd = model.state_dict()
    if method == "capi":
        out = {f"backbone.{k}": v.to(torch.bfloat16) for k, v in sd.items()}
        d = model.embed_dim
        out["head.last_layer.weight_g"] = torch.ones(8, 1, dtype=torch.bfloat16)
        out["head.last_layer.weight_v"] = torch.randn(8, d, generator=gen).to(torch.bfloat16)
        return out
    if method == "mae":
        return {"model": {k: v for k, v in sd.items() if not k.startswith("head.")}}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    opt.step()
    opt.zero_grad()
    cfg = shims.CfgNode(MODEL=shims.CfgNode(TYPE="vit", NAME="simmim_pretrain"), AMP_OPT_LEVEL="O1")
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "lr_scheduler": {"last_epoch": 799, "base_lrs": [1e-4]},
        "max_accuracy": 0.0,
        "epoch": 799,
        "config": cfg,
        "amp": {"loss_scaler0": {"loss_scale": 65536.0, "unskipped": 7}},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, choices=sorted(official.ARCHS))
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--capi-repo")
    ap.add_argument("--mae-repo")
    ap.add_argument("--simmim-repo")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--legacy", action="store_true", help="write the pre-1.6 (non-zip) format")
    args = ap.parse_args()
    method = args.arch.split("_")[0]
    repos = {"capi": args.capi_repo, "mae": args.mae_repo, "simmim": args.simmim_repo}
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = official.build(method, args.arch, repos)
    randomise(model, gen)
    ckpt = released_layout(method, model, gen)
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, f"{args.arch}.pth")
    torch.save(ckpt, path, _use_new_zipfile_serialization=not args.legacy)
    del ckpt, model

    size = official.ARCHS[args.arch]["img"]
    images = torch.randn(args.images, 3, size, size, generator=gen)
    ref = official.build(method, args.arch, repos)
    msg = official.load(method, ref, path)
    print(f"{path}: official load_state_dict: {msg}")
    ref = ref.double()
    patches, glob = official.embed(method, ref, images.double())
    write_safetensors(os.path.join(args.out_dir, f"{args.arch}_images.safetensors"), {"images": images})
    write_safetensors(os.path.join(args.out_dir, f"{args.arch}_ref.safetensors"), {"patches": patches, "global": glob})
    print(f"patches {list(patches.shape)} global {list(glob.shape)}; file {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
