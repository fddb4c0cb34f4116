"""Scale-relative error of ours against the official outputs: max|ours - ref| / max|ref|, per tensor (dev-only).

    /usr/bin/python3 tools/released/compare.py OURS.safetensors REF.safetensors [--tol 1e-4]

Exits 1 when any of `patches` / `global` differs in shape or exceeds the tolerance.
"""
import json
import struct
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, e in header.items():
            if name == "__metadata__":
                continue
            a, b = e["data_offsets"]
            f.seek(base + a)
            dt = {"F32": np.float32, "I32": np.int32}[e["dtype"]]
            out[name] = np.frombuffer(f.read(b - a), dtype=dt).reshape(e["shape"])
        return out


def main():
    args = sys.argv[1:]
    tol = 1e-4
    if "--tol" in args:
        i = args.index("--tol")
        tol = float(args[i + 1])
        del args[i : i + 2]
    ours, ref = read(args[0]), read(args[1])
    ok = True
    for name in ("patches", "global"):
        if ours[name].shape != ref[name].shape:
            print(f"{name}: shape {list(ours[name].shape)} != official {list(ref[name].shape)} FAIL")
            ok = False
            continue
        err = float(np.abs(ours[name].astype(np.float64) - ref[name]).max() / np.abs(ref[name]).max())
        good = err <= tol
        ok &= good
        print(f"{name} {list(ref[name].shape)}: scale-relative error {err:.2e} (tol {tol:g}) {'PASS' if good else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
