#pragma once
// Sparse u8 x s8 GEMM: C = epilogue(A * W^T) with W packed as 1x4 blocks
// (kind sparse_1x4) or 2:4 groups along k (kind sparse_2_4). Same epilogue
// and bit-exact contract as gemm.h.
#include <cstdint>

#include "compress/kernels/gemm.h"

namespace compress::kernels {

void sparse_gemm_u8s8s32(int64_t M, const uint8_t* A, int64_t lda, const PackedView& W, void* C,
                         int64_t ldc, const Epilogue& ep, const ParallelFor& pf,
                         Isa isa = active_isa());
const char* sparse_kernel_name(const PackedView& W, Isa isa);

}  // namespace compress::kernels
