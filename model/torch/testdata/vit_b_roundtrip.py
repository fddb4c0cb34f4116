"""Write a ViT-B/16-size checkpoint and the statistics the reader must reproduce (used by vit_b_roundtrip_test.ts).

    /usr/bin/python3 model/torch/testdata/vit_b_roundtrip.py OUT_DIR

OUT_DIR/vit_b.pth: {"model": timm ViT-B/16 state dict (86M values, random)} in the zip format, every other tensor
in bfloat16 and one transposed (non-contiguous) view; OUT_DIR/vit_b_legacy.pth: the same in the legacy format;
OUT_DIR/vit_b.json: per tensor its dtype, shape, float64 sum and sum of squares, and its first 4 values.
"""
import collections
import json
import sys

import torch

out = sys.argv[1]
g = torch.Generator().manual_seed(0)
d, hidden = 768, 3072
shapes = [("cls_token", [1, 1, d]), ("pos_embed", [1, 197, d]), ("patch_embed.proj.weight", [d, 3, 16, 16]),
          ("patch_embed.proj.bias", [d])]
for i in range(12):
    b = f"blocks.{i}."
    shapes += [(b + "norm1.weight", [d]), (b + "norm1.bias", [d]), (b + "attn.qkv.weight", [3 * d, d]),
               (b + "attn.qkv.bias", [3 * d]), (b + "attn.proj.weight", [d, d]), (b + "attn.proj.bias", [d]),
               (b + "norm2.weight", [d]), (b + "norm2.bias", [d]), (b + "mlp.fc1.weight", [hidden, d]),
               (b + "mlp.fc1.bias", [hidden]), (b + "mlp.fc2.weight", [d, hidden]), (b + "mlp.fc2.bias", [d])]
shapes += [("norm.weight", [d]), ("norm.bias", [d])]
sd = collections.OrderedDict()
for k, (name, shape) in enumerate(shapes):
    t = torch.randn(shape, generator=g) * 0.02
    sd[name] = t.to(torch.bfloat16) if k % 2 else t
sd["blocks.0.mlp.fc2.weight"] = sd["blocks.0.mlp.fc2.weight"].t().contiguous().t()  # same values, column-major
sd["head_t"] = torch.randn(d, 10, generator=g).t()  # [10, d] view with strides (1, 10)
torch.save({"model": sd, "epoch": 1}, f"{out}/vit_b.pth")
torch.save({"model": sd, "epoch": 1}, f"{out}/vit_b_legacy.pth", _use_new_zipfile_serialization=False)
stats = {
    f"model.{k}": {
        "dtype": str(v.dtype).replace("torch.", ""),
        "shape": list(v.shape),
        "sum": float(v.double().sum()),
        "sumsq": float(v.double().pow(2).sum()),
        "first": v.double().flatten()[:4].tolist(),
    }
    for k, v in sd.items()
}
json.dump(stats, open(f"{out}/vit_b.json", "w"))
