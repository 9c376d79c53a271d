#!/usr/bin/python3
"""Times saved TorchScript models side by side, out of the process that made
them: an independent check of `compress amc`'s end-to-end latencies
(docs/amc.md, "Latency budget"). One thread; each model's time in a round is
the median of CALLS calls in the thread's CPU time, the models interleaved
over ROUNDS rounds; prints each model's median time and the median over rounds
of its time over the first model's in the same round.
  scripts/amc_time_models.py SHAPE FIRST.pt OTHER.pt... [--rounds 7] [--calls 100] [--ops LIB]
(SHAPE: e.g. 1,1,28,28; --ops build/src/ops/libcompress_ops.so for INT8 models
from compress quantize, whose ops live there.) Python's call overhead (tens of microseconds) is in
every time, so the ratios lean slightly toward 1."""
import argparse
import os
import statistics
import sys
import time

import torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from torch_threads import set_threads  # noqa: E402  (LibTorch's and OpenBLAS's threads)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shape")
    p.add_argument("models", nargs="+")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--ops", help="libcompress_ops.so, for models that call the compress ops")
    a = p.parse_args()
    if a.ops:
        torch.ops.load_library(a.ops)
    set_threads(1)
    x = torch.randn([int(d) for d in a.shape.split(",")], generator=torch.Generator().manual_seed(0))
    models = [torch.jit.load(m).eval() for m in a.models]
    times = [[] for _ in models]
    with torch.no_grad():
        for m in models:  # the profiling executor optimises over the first calls
            for _ in range(5):
                m(x)
        for _ in range(a.rounds):
            for i, m in enumerate(models):
                calls = []
                for _ in range(a.calls):
                    start = time.thread_time_ns()
                    m(x)
                    calls.append(time.thread_time_ns() - start)
                times[i].append(statistics.median(calls) / 1e6)
    for i, name in enumerate(a.models):
        ratio = statistics.median(t / f for t, f in zip(times[i], times[0]))
        print(f"{name}: {statistics.median(times[i]):.4f} ms, {ratio:.3f}x the first")


if __name__ == "__main__":
    main()
