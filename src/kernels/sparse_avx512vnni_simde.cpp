// spmm_u8s8s32_1x4_avx512vnni_32_simde: the 1x4 sparse VNNI kernel's source
// (sparse_avx512vnni_body.h) compiled for AVX2 against SIMD Everywhere, for
// the test library compress_kernels_vnni_simde only (see
// gemm_avx512vnni_simde.cpp): the kernel's logic checked bit for bit on
// machines without AVX-512; its speed and encoding only natively.
#include "simde_avx512.h"

#define COMPRESS_SPARSE_VNNI_ENTRY sparse_1x4_avx512vnni_simde
#include "sparse_avx512vnni_body.h"
