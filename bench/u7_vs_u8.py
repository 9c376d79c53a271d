#!/usr/bin/env python3
# Side by side, interleaved in one process: INT8 models (e.g. one quantized with --activations u8, one with u7)
# on the kernels COMPRESS_ISA selects, 1 thread, thread CPU time, median of REPS; ratios against the first.
#   u7_vs_u8.py LIBCOMPRESS_OPS.so N,C,H,W REPS MODEL.pt [MODEL.pt ...]   (docs/quantization.md, 7-bit activations)
import sys, time, torch
from torch_threads import set_threads  # LibTorch's and OpenBLAS's threads
torch.ops.load_library(sys.argv[1])
set_threads(1)
shape = [int(v) for v in sys.argv[2].split(',')]
reps = int(sys.argv[3])
models = {p: torch.jit.load(p).eval() for p in sys.argv[4:]}
x = torch.randn(*shape)
times = {p: [] for p in models}
with torch.no_grad():
    for p, m in models.items():
        for _ in range(3): m(x)
    for _ in range(reps):
        for p, m in models.items():
            t = time.thread_time(); m(x); times[p].append(time.thread_time() - t)
print('isa', torch.ops.compress.kernel_isa())
base = None
for p, ts in times.items():
    ts.sort(); med = ts[len(ts) // 2] * 1000
    base = base or med
    print(f'{p}: {med:.2f} ms  ({base / med:.2f}x of the first)')
