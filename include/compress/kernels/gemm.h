#pragma once
// u8 x s8 -> s32 GEMM with a fused requantizing epilogue:
//   acc[m][n] = sum_k A[m][k] * W[n][k] + comp[n]      (exact int32; comp folds
//                                                        the activation zero point)
//   y = fma(float(acc), scale[n], bias[n])              (bias optional)
//   y = fma(residual_scale, float(r[m][n] - residual_zp), y)   (residual optional)
//   f32 out:  y (ReLU: max(y, 0))
//   u8/s8 out: q = clamp(nearbyint(y), lo - zp, hi - zp) + zp, lo = zp under ReLU
// Every ISA computes exactly these float operations in this order, so all
// variants agree with the reference bit for bit.
#include <cstdint>

#include "compress/kernels/isa.h"
#include "compress/kernels/packed.h"
#include "compress/kernels/parallel.h"

namespace compress::kernels {

enum class OutType { u8 = 0, s8 = 1, f32 = 2 };

struct Epilogue {
  const float* scale = nullptr;  // [n], required
  const float* bias = nullptr;   // [n] or nullptr
  int32_t out_zero_point = 0;    // u8/s8 output only
  // u8 output only: the largest code written. 127 feeds a next layer packed
  // for 7-bit activations (Layout::avx2_n16k8_u7s8), like PyTorch's
  // reduce_range; must be in out_zero_point..255.
  int32_t out_quant_max = 255;
  bool relu = false;
  OutType out = OutType::f32;
  // Residual of the same type as the output, added before ReLU (ResNet blocks).
  const void* residual = nullptr;
  int64_t ld_residual = 0;
  float residual_scale = 1.f;
  int32_t residual_zero_point = 0;
};

// C[m][n] for m < M, n < B.n(). A is u8 [M][lda >= K]. C has row stride ldc
// elements of the output type. `isa` selects the kernel; when B's layout is not
// the one that ISA's kernel reads, or the CPU lacks the ISA, the reference runs
// (declined, never miscomputed). B must be of kind gemm or conv.
void gemm_u8s8s32(int64_t M, const uint8_t* A, int64_t lda, const PackedView& B, void* C,
                  int64_t ldc, const Epilogue& ep, const ParallelFor& pf, Isa isa = active_isa());

// The name of the kernel gemm_u8s8s32 would run (tests check no silent fallback).
const char* gemm_kernel_name(const PackedView& B, Isa isa);

}  // namespace compress::kernels
