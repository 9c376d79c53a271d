#!/usr/bin/python3
"""Whole-model latency of several TorchScript models side by side, in one
process: e.g. the same network as dense INT8 and as sparse INT8
(compress quantize --sparse off / auto), and its float model.

    /usr/bin/python3 bench/sparse_vs_dense.py --ops build/src/ops/libcompress_ops.so \\
        --shape 32,1,28,28 --threads 1 --reps 30 dense=int8_dense.pt sparse=int8_sparse.pt [float=f.pt]

Inputs are standard normal (seeded). Per round every model runs once, in
turn (interleaved, so all see the same machine load); after a warm-up call
each, --reps rounds; the median per model is printed with its ratio to the
first model. The outputs of the models named by --same (default: the first
two) must be identical, which checks the sparse INT8 model computes exactly
what the dense one does."""
import argparse
import statistics
import time

import torch
from torch_threads import set_threads  # LibTorch's and OpenBLAS's threads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", required=True, help="libcompress_ops.so")
    ap.add_argument("--shape", required=True, help="input shape N,C,H,W")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--same", default="0,1", help="indices of two models whose outputs must be equal ('' = none)")
    ap.add_argument("models", nargs="+", help="name=path.pt")
    a = ap.parse_args()
    torch.ops.load_library(a.ops)
    set_threads(a.threads)
    torch.manual_seed(0)
    x = torch.randn([int(v) for v in a.shape.split(",")])
    models = []
    for spec in a.models:
        name, path = spec.split("=", 1)
        models.append((name, torch.jit.load(path).eval()))
    times = {name: [] for name, _ in models}
    outputs = {}
    with torch.no_grad():
        for name, m in models:
            outputs[name] = m(x)
        for _ in range(a.reps):
            for name, m in models:
                t0 = time.perf_counter()
                m(x)
                times[name].append((time.perf_counter() - t0) * 1e3)
    if a.same:
        i, j = (int(v) for v in a.same.split(","))
        ni, nj = models[i][0], models[j][0]
        equal = torch.equal(outputs[ni], outputs[nj])
        print(f"outputs of {ni} and {nj} identical: {equal}")
    base = statistics.median(times[models[0][0]])
    print(f"| model | median ms (batch {a.shape.split(',')[0]}, {a.threads} thread(s), {a.reps} reps) | speed-up vs {models[0][0]} |")
    print("|---|---|---|")
    for name, _ in models:
        med = statistics.median(times[name])
        print(f"| {name} | {med:.3f} | {base / med:.2f}x |")


if __name__ == "__main__":
    main()
