"""PyTorch twin of `deno task speed --method vit`: the same reference ViT, loss, optimizer and batch.

Used only for the side-by-side comparison of `bench/speed.ts --vs-torch`; never imported by the suite.
Run: python3 bench/speed_torch.py --steps 10 --warmup 3 --batch 64 --threads 2
Prints one JSON line: {"imgPerSec": ..., "msPerStep": ..., "cpuMsPerStep": ..., "peakRssMb": ..., "torch": "<version>", "threads": N}.

The model is a plain pre-LN ViT on 32x32 images with 4x4 patches (64 tokens): patch embedding as a
linear layer on flattened patches (as model/kernels/speed_vit.ts, so both sides do the same FLOPs), learned
position embedding, `depth` blocks of (LN, 3-head attention, LN, 4x GELU MLP), a final LN and a linear
pixel head regressing each patch's 48 values with MSE. Adam (AdamW with weight decay 0), lr 1e-4.
"""

import argparse
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        hd = d // self.heads
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, h, N, hd]
        attn = torch.softmax((q * hd**-0.5) @ k.transpose(-2, -1), dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Vit(nn.Module):
    def __init__(self, img: int, patch: int, dim: int, depth: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.patch = patch
        tokens = (img // patch) ** 2
        pdim = 3 * patch * patch
        self.embed = nn.Linear(pdim, dim)
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, pdim)

    def patchify(self, x):
        b, c, h, w = x.shape
        p = self.patch
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)  # [B, N, p*p*3]

    def forward(self, images):
        patches = self.patchify(images)
        x = self.embed(patches) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return F.mse_loss(self.head(self.norm(x)), patches)


def peak_rss_mb() -> float:
    """VmHWM of this process. Not getrusage's ru_maxrss: Linux carries that across exec from the
    parent (the Deno process that launched us), so it would report the caller's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--img", type=int, default=32)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--mlp-ratio", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Vit(args.img, args.patch, args.dim, args.depth, args.heads, args.mlp_ratio)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    images = torch.randn(args.batch, 3, args.img, args.img)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(images)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        loss = step()
    elapsed = time.perf_counter() - t0
    cpu_ms = (time.process_time() - cpu0) / args.steps * 1000  # all threads of this process
    assert math.isfinite(loss.item()), "torch loss is not finite"
    ms = elapsed / args.steps * 1000
    rss_mb = peak_rss_mb()
    print(json.dumps({
        "imgPerSec": args.batch / (ms / 1000),
        "msPerStep": ms,
        "cpuMsPerStep": cpu_ms,
        "peakRssMb": rss_mb,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
