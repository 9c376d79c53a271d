#pragma once
// Shared helpers of the kernel tests: random data, an independent naive
// reference (int64 accumulation, zero point applied explicitly rather than
// folded), skipping what the CPU cannot run, and byte-exact comparison.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "compress/kernels/gemm.h"
#include "compress/kernels/isa.h"
#include "skip.h"

namespace kt {

using namespace compress::kernels;

// What the processor needs to run the kernels of `isa` in this test binary:
// the ISA itself, except in test_kernels_vnni_simde, where the AVX-512 VNNI
// kernel is compiled against SIMD Everywhere and needs AVX2.
inline Isa cpu_needed_for(Isa isa) {
#ifdef COMPRESS_VNNI_SIMDE
  if (isa == Isa::avx512vnni) return Isa::avx2;
#endif
  return isa;
}

// The names the dispatcher gives the VNNI kernels in this binary.
#ifdef COMPRESS_VNNI_SIMDE
constexpr const char* kVnniKernelName = "gemm_u8s8s32_avx512vnni_8x32_simde";
constexpr const char* kSparseVnniKernelName = "spmm_u8s8s32_1x4_avx512vnni_32_simde";
#else
constexpr const char* kVnniKernelName = "gemm_u8s8s32_avx512vnni_8x32";
constexpr const char* kSparseVnniKernelName = "spmm_u8s8s32_1x4_avx512vnni_32";
#endif

inline std::string lacks(Isa isa) { return std::string("this CPU (or its OS) lacks ") + isa_name(cpu_needed_for(isa)); }

}  // namespace kt

// Skips the calling test case (tests/skip.h) when the CPU cannot run `isa`'s kernels.
#define KT_REQUIRE_ISA(isa) \
  if (!::compress::kernels::cpu_supports(::kt::cpu_needed_for(isa))) COMPRESS_SKIP(::kt::lacks(isa))

namespace kt {

inline std::vector<uint8_t> random_u8(std::mt19937& g, int64_t n, int lo = 0, int hi = 255) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<uint8_t>(d(g));
  return v;
}
inline std::vector<int8_t> random_s8(std::mt19937& g, int64_t n, int lo = -128, int hi = 127) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(d(g));
  return v;
}
inline std::vector<float> random_f(std::mt19937& g, int64_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(g);
  return v;
}

inline int64_t out_bytes(OutType t) { return t == OutType::f32 ? 4 : 1; }

// The epilogue of gemm.h, written out once more, independently of the library.
inline void naive_epilogue(int64_t acc, int64_t m, int64_t n, const Epilogue& ep, void* C, int64_t ldc) {
  float y = std::fma(static_cast<float>(acc), ep.scale[n], ep.bias ? ep.bias[n] : 0.f);
  if (ep.residual) {
    const int64_t at = m * ep.ld_residual + n;
    float r = ep.out == OutType::f32 ? static_cast<const float*>(ep.residual)[at]
              : ep.out == OutType::u8
                  ? static_cast<float>(static_cast<const uint8_t*>(ep.residual)[at] - ep.residual_zero_point)
                  : static_cast<float>(static_cast<const int8_t*>(ep.residual)[at] - ep.residual_zero_point);
    y = std::fma(ep.residual_scale, r, y);
  }
  if (ep.out == OutType::f32) {
    static_cast<float*>(C)[m * ldc + n] = (ep.relu && !(y > 0.f)) ? 0.f : y;
    return;
  }
  const int qmin = ep.out == OutType::u8 ? 0 : -128, qmax = ep.out == OutType::u8 ? ep.out_quant_max : 127;
  const int lo = ep.relu ? std::max(qmin, ep.out_zero_point) : qmin;
  long q = std::lrint(y) + ep.out_zero_point;
  if (!(y == y)) q = lo;
  q = std::min<long>(std::max<long>(q, lo), qmax);
  if (ep.out == OutType::u8) static_cast<uint8_t*>(C)[m * ldc + n] = static_cast<uint8_t>(q);
  else static_cast<int8_t*>(C)[m * ldc + n] = static_cast<int8_t>(q);
}

// C = epilogue(sum_k (A - a_zp) * W) with W row-major [N][K]; int64 accumulators.
inline void naive_gemm(int64_t M, int64_t N, int64_t K, const uint8_t* A, int32_t a_zp, const int8_t* W,
                       const Epilogue& ep, void* C) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int64_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += (static_cast<int64_t>(A[m * K + k]) - a_zp) * W[n * K + k];
      naive_epilogue(acc, m, n, ep, C, N);
    }
}

// Index of the first differing element, or -1.
inline int64_t first_mismatch(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, OutType t) {
  const int64_t es = out_bytes(t);
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return static_cast<int64_t>(i) / es;
  return -1;
}

}  // namespace kt
