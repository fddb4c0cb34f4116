"""PyTorch (CUDA) side of bench/gpu_check.sh: the speed ViT of bench/speed_torch.py, trained on the GPU.

Same model, loss, optimizer and batch as `deno task speed` (the class is imported from
bench/speed_torch.py, so both comparisons use one definition); float32 with TF32 off (PyTorch's
default for matmul), so it does the arithmetic WebGPU does. Timing: `--warmup` steps, then
`--repeats` runs of `--steps` steps each, timed with CUDA events; reports the median.

Run: python3 bench/gpu_torch_speed.py --batch 64 --steps 20 --warmup 5
Prints one JSON line: {"imgPerSec", "msPerStep", "msPerStepRuns", "peakAllocMb", "peakReservedMb",
"device", "torch", "batch", "tf32"}.
"""

import argparse
import json
import math
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed_torch import Vit  # noqa: E402  (the CPU twin's model: one definition for both)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--img", type=int, default=32)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--mlp-ratio", type=int, default=4)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"gpu_torch_speed: torch {torch.__version__} sees no CUDA device")
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = Vit(args.img, args.patch, args.dim, args.depth, args.heads, args.mlp_ratio).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    images = torch.randn(args.batch, 3, args.img, args.img, device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(images)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize(dev)
    runs = []
    loss = None
    for _ in range(args.repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(args.steps):
            loss = step()
        end.record()
        torch.cuda.synchronize(dev)
        runs.append(start.elapsed_time(end) / args.steps)
    assert math.isfinite(loss.item()), "torch loss is not finite"
    ms = statistics.median(runs)
    print(json.dumps({
        "imgPerSec": args.batch / (ms / 1000),
        "msPerStep": ms,
        "msPerStepRuns": runs,
        "peakAllocMb": torch.cuda.max_memory_allocated(dev) / 2**20,
        "peakReservedMb": torch.cuda.max_memory_reserved(dev) / 2**20,
        "device": torch.cuda.get_device_name(dev),
        "torch": torch.__version__,
        "batch": args.batch,
        "tf32": torch.backends.cuda.matmul.allow_tf32,
    }))


if __name__ == "__main__":
    main()
