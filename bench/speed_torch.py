"""PyTorch twins of `deno task speed --method vit|capi|mae|simmim`: the same model, config, weights, batch and optimizer.

Used only for the side-by-side comparison of `bench/speed.ts --vs-torch`; never imported by the suite.
bench/speed.ts writes one safetensors file and runs
    python3 bench/speed_torch.py --inputs FILE --steps 10 --warmup 3 --threads 2
The file holds `param.<name>` (our initial parameters under their official names), `images` [B, 3, H, W],
`step<k>.<draw>` (our draws of the first `check_steps` steps: masks, indices, drop-path subsets) and metadata:
`method`, `config` (the resolved TypeScript config as JSON), `hyper` (lr, weight decay, EMA momentum: the same
scalars at every step), `check_steps`.

The twin (bench/speed_torch_<method>.py: the official code's module structure, float32, torch autograd,
torch.optim.AdamW with the official parameter groups) loads the weights by name, trains `check_steps` steps on
our draws (drop path replayed from our subsets) and reports their losses and how far each parameter moved, so
bench/speed.ts can check that both sides compute the same thing; then it times `warmup` + `steps` more steps on the first step's masks, drawing its
own drop path as the official code does (the official masks come from data-loader workers, outside the step).

Prints one JSON line: {"imgPerSec", "msPerStep", "cpuMsPerStep", "peakRssMb", "torch", "threads", "checkLosses",
"checkUpdates"} (the last: per parameter, by our name, the L2 norm of its change over the check steps and that
change's projection on its initial value).
"""

import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed_torch_capi  # noqa: E402
import speed_torch_mae  # noqa: E402
import speed_torch_simmim  # noqa: E402
import speed_torch_vit  # noqa: E402
from speed_torch_vit import Vit  # noqa: E402,F401  (bench/gpu_torch_speed.py imports the ViT from here)

TWINS = {"vit": speed_torch_vit, "capi": speed_torch_capi, "mae": speed_torch_mae, "simmim": speed_torch_simmim}

DTYPES = {"F32": np.float32, "I32": np.int32}


def read_safetensors(path):
    """(metadata, {name: torch tensor}) of a safetensors file (F32 and I32, as model/safetensors.ts writes)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        if t["dtype"] not in DTYPES:
            sys.exit(f"{path}: tensor '{name}' has dtype {t['dtype']}; expected F32 or I32")
        a, b = t["data_offsets"]
        arr = np.frombuffer(raw, dtype=DTYPES[t["dtype"]], count=(b - a) // 4, offset=8 + n + a)
        out[name] = torch.from_numpy(arr.reshape(t["shape"]).copy())
    return meta, out


def update_stats(p0, p1):
    """[|p1 - p0|, <p1 - p0, p0> / |p0|] in float64 (the projection is 0 for a zero p0)."""
    p0, d = p0.double().flatten(), (p1.double() - p0.double()).flatten()
    n0 = float(torch.linalg.norm(p0))
    return [float(torch.linalg.norm(d)), float(d @ p0) / n0 if n0 > 0 else 0.0]


def peak_rss_mb():
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
    ap.add_argument("--inputs", required=True, help="safetensors file written by bench/speed.ts")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    meta, tensors = read_safetensors(args.inputs)
    method = meta.get("method")
    if method not in TWINS:
        sys.exit(f"{args.inputs}: metadata 'method' is {method!r}; expected one of {', '.join(TWINS)}")
    cfg, hyper, n_check = json.loads(meta["config"]), json.loads(meta["hyper"]), int(meta["check_steps"])
    images = tensors["images"]
    twin = TWINS[method].Twin(cfg, hyper)
    twin.load({k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")})

    def draws(k):
        prefix = f"step{k}."
        return {n[len(prefix):]: v for n, v in tensors.items() if n.startswith(prefix)}

    initial = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    check = [twin.step(twin.prepare(images, draws(k), replay=True)).item() for k in range(1, n_check + 1)]
    # How each parameter moved over the check steps, by our name: [|dp|, <dp, p0>/|p0|] (float64). The norm shows
    # the optimizers' param groups, clipping, the EMA and the clustering head; the projection on p0 weight decay.
    updates = {n: update_stats(initial[n], p.detach()) for n, p in twin.named_params().items()}
    batch = twin.prepare(images, draws(1), replay=False)
    for _ in range(args.warmup):
        twin.step(batch)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        loss = twin.step(batch).item()  # as the official loops read the loss every step
    elapsed = time.perf_counter() - t0
    cpu_ms = (time.process_time() - cpu0) / args.steps * 1000  # all threads of this process
    assert math.isfinite(loss), "torch loss is not finite"
    ms = elapsed / args.steps * 1000
    print(json.dumps({
        "imgPerSec": images.shape[0] / (ms / 1000),
        "msPerStep": ms,
        "cpuMsPerStep": cpu_ms,
        "peakRssMb": peak_rss_mb(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "checkLosses": check,
        "checkUpdates": updates,
    }))


if __name__ == "__main__":
    main()
