"""Generate the PyTorch checkpoints that model/torch/*_test.ts read (dev-only; run once, commit the output).

    /usr/bin/python3 model/torch/testdata/make_testdata.py     # python3-torch 1.13 (Debian), no PyPI needed

Fixed values, no RNG; the legacy files name storages by python object ids, so they differ byte-wise between runs
(their content does not). Every file is a few hundred bytes to a few KB:

  dtypes_zip.pth      torch >= 1.6 zip format: {"model": OrderedDict(f32, f16, bf16, f64, i64, a transposed
                      (non-contiguous) view, two views of one storage at different offsets), "epoch": 7,
                      "config": a yacs-style CfgNode, "max_accuracy": a numpy float64 scalar}
  dtypes_legacy.pth   the same object in the legacy format (_use_new_zipfile_serialization=False)
  expected.json       what the tests must read from both: every tensor's shape, dtype and values (as float)
  truncated.pth       dtypes_zip.pth cut in the middle
  bad_magic.pth       a legacy file whose first pickle is not torch's magic number
  os_system.pth       a state dict whose value unpickles as os.system("touch <marker>") if run by pickle
  short_storage.pth   a tensor [3, 3] over a storage of 6 elements
  bf16.safetensors    a safetensors file with BF16, F16 and F64 tensors (values in expected.json)
  numpy_weight.pth    a state dict whose 'w' is a numpy array (built by a global the reader does not run)
"""
import collections
import json
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import torch

OUT = os.path.dirname(os.path.abspath(__file__))
MARKER = "/tmp/mimbench_pickle_executed"

# A stand-in for yacs.config.CfgNode (what SimMIM's save_checkpoint stores under "config"): pickled
# as the global 'yacs.config.CfgNode' without needing yacs installed.
yacs = types.ModuleType("yacs")
yacs_config = types.ModuleType("yacs.config")


class CfgNode(dict):
    pass


CfgNode.__module__ = "yacs.config"
yacs_config.CfgNode = CfgNode
sys.modules["yacs"], sys.modules["yacs.config"] = yacs, yacs_config


def tensors():
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8 - 0.5
    shared = torch.arange(10, dtype=torch.float32) * 0.25
    sd = collections.OrderedDict()
    sd["f32"] = base.clone()
    sd["f16"] = (base * 3).to(torch.float16)
    sd["bf16"] = (base * 5 + 0.1).to(torch.bfloat16)
    sd["f64"] = (base / 3).to(torch.float64)
    sd["i64"] = torch.tensor([[0, -1, 5], [2**31 - 1, 7, -(2**31)]], dtype=torch.int64)
    sd["transposed"] = base.t()  # [4, 3], strides (1, 4)
    sd["view_a"] = shared[2:6]  # offset 2 into a 10-element storage
    sd["view_b"] = shared[5:].reshape(1, 5)  # the same storage, offset 5
    sd["scalar"] = torch.tensor(1.5)
    return sd


def checkpoint():
    cfg = CfgNode(MODEL=CfgNode(TYPE="vit"), DATA=CfgNode(IMG_SIZE=224))
    return {"model": tensors(), "epoch": 7, "config": cfg, "max_accuracy": np.float64(0.25)}


def expected():
    out = {}
    for k, t in tensors().items():
        out[f"model.{k}"] = {
            "shape": list(t.shape),
            "dtype": str(t.dtype).replace("torch.", ""),
            "values": t.double().flatten().tolist(),
        }
    return out


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


class Oversized:
    """Pickles as _rebuild_tensor_v2 over a 6-element storage, with size [3, 3]."""

    def __reduce__(self):
        storage = torch.arange(6, dtype=torch.float32).storage()
        return (torch._utils._rebuild_tensor_v2, (storage, 0, (3, 3), (3, 1), False, collections.OrderedDict()))


def safetensors(path, named):
    header, blobs, offset = {}, [], 0
    names = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float64: "F64", torch.float32: "F32"}
    for name, t in named.items():
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    js = json.dumps(header).encode()
    js += b" " * (-len(js) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(blobs))


def main():
    torch.save(checkpoint(), f"{OUT}/dtypes_zip.pth")
    torch.save(checkpoint(), f"{OUT}/dtypes_legacy.pth", _use_new_zipfile_serialization=False)
    data = open(f"{OUT}/dtypes_zip.pth", "rb").read()
    open(f"{OUT}/truncated.pth", "wb").write(data[: len(data) // 2])
    legacy = open(f"{OUT}/dtypes_legacy.pth", "rb").read()
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    assert legacy.startswith(magic)
    open(f"{OUT}/bad_magic.pth", "wb").write(pickle.dumps(0x1950A86A20F9469CFC6D, protocol=2) + legacy[len(magic):])
    torch.save({"weight": torch.ones(2), "bias": Evil()}, f"{OUT}/os_system.pth")
    torch.save({"weight": Oversized()}, f"{OUT}/short_storage.pth")
    torch.save({"b": torch.zeros(2), "w": np.ones(3, dtype=np.float32)}, f"{OUT}/numpy_weight.pth")
    sd = tensors()
    safetensors(f"{OUT}/bf16.safetensors", {"bf16": sd["bf16"], "f16": sd["f16"], "f64": sd["f64"], "f32": sd["f32"]})
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump({"torch": torch.__version__, "tensors": expected()}, f, indent=1)
        f.write("\n")
    assert not os.path.exists(MARKER), "the generator itself must not run the payload"


if __name__ == "__main__":
    main()
