"""Thread counts for timing LibTorch from Python.

torch.set_num_threads sets LibTorch's intra-op pool only. Debian's OpenBLAS,
which LibTorch calls for float matmuls and for the convolutions it lowers to
im2col + sgemm, keeps its own pool of one thread per core: a "1 thread" float
model used both cores there, and on a 2-core Zen 5 the zoo resnet ran 0.73 ms
that way against 0.52 ms on one OpenBLAS thread (docs/amc.md). The C++ side
sets both (include/compress/threads.h); so does set_threads here.
"""
import ctypes

import torch


def set_threads(n):
    torch.set_num_threads(n)
    try:
        ctypes.CDLL("libblas.so.3").openblas_set_num_threads(n)  # the library torch already loaded
    except (OSError, AttributeError):
        pass  # another BLAS: no pool of its own to set
