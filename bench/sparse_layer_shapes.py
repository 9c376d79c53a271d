#!/usr/bin/python3
"""Sparse 1x4 INT8 against dense INT8, one layer shape at a time, on this
CPU's kernels (COMPRESS_ISA picks both: the dense kernel, and the sparse one,
AVX-512 VNNI under avx512vnni and amx, AVX2 under avx2). For every kernel
side by side in one process see `compress_bench_int8 --only sparse_isa`.

    COMPRESS_ISA=avx2 /usr/bin/python3 bench/sparse_layer_shapes.py build/src/ops/libcompress_ops.so

Per shape (M rows, N outputs, K inputs): the dense time (ms, best of 20
after a warm-up, 1 thread) and the dense/sparse ratio at 80% and 90% of the
1x4 blocks pruned, with activations over all of 0..255 (what compress
quantize produces) and within 0..127 (the sparse kernel's faster 7-bit loop)."""
import sys
import time

import torch
from torch_threads import set_threads  # LibTorch's and OpenBLAS's threads


def best_ms(f, reps=20):
    f()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main():
    torch.ops.load_library(sys.argv[1])
    set_threads(1)
    ops = torch.ops.compress
    print(f"isa {ops.kernel_isa()}")
    print("| M | N | K | dense ms | 80%: u8 | 80%: 7-bit | 90%: u8 | 90%: 7-bit |")
    print("|---|---|---|---|---|---|---|---|")
    shapes = [(32, 128, 1152), (32, 512, 512), (32, 1024, 1024), (32, 1024, 784), (32, 256, 4096),
              (6272, 96, 24), (6272, 24, 96), (1568, 128, 32), (1568, 32, 128), (392, 256, 64), (392, 64, 256)]
    for m, n, k in shapes:
        g = torch.Generator().manual_seed(0)
        w = torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=g)
        x = torch.randint(0, 256, (m, k), dtype=torch.uint8, generator=g)
        x7 = torch.randint(0, 128, (m, k), dtype=torch.uint8, generator=g)
        s = torch.full((n,), 1e-3)
        dense = ops.pack_linear_int8(w, 0, "auto")
        td = best_ms(lambda: ops.linear_int8(x, dense, s, None, 0, False, torch.uint8))
        row = [str(m), str(n), str(k), f"{td:.4f}"]
        for keep in (0.2, 0.1):
            mask = (torch.rand((n, (k + 3) // 4, 1), generator=g) < keep).expand(n, (k + 3) // 4, 4).reshape(n, -1)[:, :k]
            sp = ops.pack_linear_int8_sparse(w * mask, mask, 0, "1x4")
            for a in (x, x7):
                ts = best_ms(lambda: ops.linear_int8_sparse(a, sp, s, None, 0, False, torch.uint8))
                row.append(f"{td / ts:.2f}x")
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
