#!/usr/bin/python3
"""Batch-1 latency of a float model and its INT8 version, one thread.

    /usr/bin/python3 examples/quantization/latency.py build/src/ops/libcompress_ops.so \
        resnet18.pt resnet18.int8.pt [--shape 1,3,224,224] [--runs 20]

Prints the median and the fastest run of each model, and their ratio."""
import argparse
import ctypes
import statistics
import time

import torch


def timed(model, x, runs):
    with torch.no_grad():
        for _ in range(3):  # the profiling executor optimises on the first calls
            model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, min(times) * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ops_library")
    p.add_argument("float_model")
    p.add_argument("int8_model")
    p.add_argument("--shape", default="1,3,224,224")
    p.add_argument("--runs", type=int, default=20)
    a = p.parse_args()
    torch.ops.load_library(a.ops_library)
    torch.set_num_threads(1)
    # The float model's matmuls and im2col convolutions run on OpenBLAS, whose
    # own pool (one thread per core) torch.set_num_threads leaves alone.
    try:
        ctypes.CDLL("libblas.so.3").openblas_set_num_threads(1)
    except (OSError, AttributeError):
        pass  # another BLAS
    torch.manual_seed(0)
    x = torch.randn(*[int(s) for s in a.shape.split(",")])
    results = {}
    for name, path in (("float32", a.float_model), ("int8", a.int8_model)):
        results[name] = timed(torch.jit.load(path).eval(), x, a.runs)
        print(f"{name:8s} {path}: median {results[name][0]:.1f} ms, best {results[name][1]:.1f} ms")
    print(f"speed-up (median): {results['float32'][0] / results['int8'][0]:.2f}x, "
          f"kernel ISA {torch.ops.compress.kernel_isa()}")


if __name__ == "__main__":
    main()
