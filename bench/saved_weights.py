#!/usr/bin/python3
"""A saved INT8 model's speed where other kernels run: the storage form
against a file holding the packing of the machine that saved it.

usage: saved_weights.py --ops build/src/ops/libcompress_ops.so --model M.int8.pt
                        --input-shape 32,1,28,28 [--isas avx512vnni,avx2] [--reps 15]

M.int8.pt is a file `compress quantize` wrote (weights in their storage form,
docs/kernels.md). This script writes a copy whose weights are packed for this
machine's kernels (packed_weight_for_cpu on every buffer: what files held
before the storage form), then times both, alternating, one thread, in one
child process per ISA (COMPRESS_ISA). Under an ISA whose kernels do not read
this machine's packing, that copy runs the reference kernel; the storage form
is packed for the ISA at its first call.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_threads import set_threads  # noqa: E402


def packed_copy(model_path, out_path):
    m = torch.jit.load(model_path)
    for owner in m.modules():
        for name, b in list(owner.named_buffers(recurse=False)):
            setattr(owner, name, torch.ops.compress.packed_weight_for_cpu(b))
    torch.jit.save(m, out_path)


def time_both(files, shape, reps):
    set_threads(1)
    x = torch.randn(shape)
    models = {label: torch.jit.load(path) for label, path in files.items()}
    for m in models.values():
        m(x)  # the storage form is packed here, untimed
    times = {label: [] for label in models}
    for _ in range(reps):
        for label, m in models.items():
            t0 = time.perf_counter()
            m(x)
            times[label].append(time.perf_counter() - t0)
    for label, ts in times.items():
        ts.sort()
        print("  %-34s median %8.3f ms" % (label, ts[len(ts) // 2] * 1e3))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ops", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--input-shape", required=True)
    p.add_argument("--isas", default="avx512vnni,avx2")
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.ops.load_library(a.ops)
    shape = [int(v) for v in a.input_shape.split(",")]
    if a.child:
        print("kernels %s:" % torch.ops.compress.kernel_isa())
        time_both({"storage form": a.model, "packed for the saving machine": a.child}, shape, a.reps)
        return
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "packed.pt")
        packed_copy(a.model, copy)
        print("saved by a machine running %s kernels" % torch.ops.compress.kernel_isa())
        for isa in a.isas.split(","):
            env = dict(os.environ, COMPRESS_ISA=isa)
            subprocess.run([sys.executable, os.path.abspath(__file__), "--ops", a.ops, "--model", a.model,
                            "--input-shape", a.input_shape, "--reps", str(a.reps), "--child", copy],
                           env=env, check=True)


if __name__ == "__main__":
    main()
