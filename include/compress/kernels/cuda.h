#pragma once
// CUDA INT8 tensor-core kernels (built when nvcc is found at configure time;
// see COMPRESS_HAVE_CUDA). Host wrappers take host buffers, copy to the
// device, run one kernel and copy C back, so tests compare them directly
// with the CPU reference. Integer results: C[m][n] = sum_k A[m][k] * W[n][k].
// Every wrapper throws compress::Error(Failure) on a CUDA error and
// compress::Error(BadInput) when the device lacks the kernel's architecture.
#include <cstdint>
#include <string>

#include "compress/kernels/packed.h"

namespace compress::kernels::cuda {

// Whether this build has the CUDA kernels at all.
bool built();
// Whether a CUDA device is usable now; `why` says why not.
bool device_available(std::string* why = nullptr);
// Compute capability of device 0 as major * 10 + minor (0 if none).
int device_sm();

// mma.sync.m16n8k32 u8 x s8 -> s32, one warp per 16x8 tile (sm_80+).
void gemm_u8s8s32_mma_m16n8k32_sm80(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K);
// wgmma.mma_async m64n8k32 u8 x s8 -> s32, one warpgroup per 64x8 tile (sm_90a only).
void gemm_u8s8s32_wgmma_m64n8k32_sm90a(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N,
                                      int64_t K);
// mma.sp.sync m16n8k64: 2:4-sparse s8 weights (kind sparse_2_4) x u8 activations (sm_80+).
// Like the CPU kernels, C[m][n] = sum_k (A[m][k] - zp) * W[n][k] with zp the
// activation zero point the weight was packed for (its compensation comp[n]).
void spmm_2of4_u8s8s32_mma_sp_m16n8k64_sm80(const uint8_t* A, const PackedView& W, int32_t* C, int64_t M);

// The same kernels on device pointers, for callers that keep data on the GPU
// (bench/bench_cuda_int8.cu): enqueue on the default stream, no copies, no
// synchronisation; the caller checks the architecture (device_sm()).
// The sparse one takes the arrays of layout::pad_2of4_for_mma_sp (rows of k64
// columns: values [N][k64/2], indices [N][k64/4]) and comp [N] or nullptr.
void launch_gemm_mma_m16n8k32(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K);
void launch_gemm_wgmma_m64n8k32(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K);
void launch_spmm_mma_sp_m16n8k64(const uint8_t* A, const int8_t* values64, const uint8_t* idx64, const int32_t* comp,
                                 int32_t* C, int64_t M, int64_t N, int64_t K, int64_t k64);

}  // namespace compress::kernels::cuda
