// The AVX-512 epilogue of gemm.h: 16 int32 accumulators of one output row
// through scale, bias, residual, ReLU and requantization, in the float order
// of epilogue_scalar (internal.h), so every kernel agrees bit for bit. Shared
// by the VNNI kernels (dense and 1x4 sparse; native and SIMDe builds) and the
// AMX kernel; the includer provides the intrinsics (<immintrin.h> or SIMD
// Everywhere).
#pragma once
#include <algorithm>
#include <cstdint>

#include "internal.h"

namespace compress::kernels::detail {
namespace {

struct Ep512 {
  OutType out;
  bool relu;
  __m512 lo, hi, zero, rscale;
  __m512i zp;
  int32_t rzp;
  explicit Ep512(const Epilogue& ep) : out(ep.out), relu(ep.relu), rzp(ep.residual_zero_point) {
    const OutputBounds b = output_bounds(ep);
    lo = _mm512_set1_ps(b.lo);
    hi = _mm512_set1_ps(b.hi);
    zp = _mm512_set1_epi32(ep.out_zero_point);
    zero = _mm512_setzero_ps();
    rscale = _mm512_set1_ps(ep.residual_scale);
  }
};

// What the epilogue needs of 16 output columns n0..: loaded once and reused
// for every row of a block (the compiler cannot hoist these loads itself,
// since the u8 output stores may alias them).
struct Columns16 {
  int64_t n0;
  __mmask16 mask;  // columns that exist (n0 + t < n)
  __m512i comp;
  __m512 scale, bias;
  bool any;
  Columns16() = default;  // filled in later (the AMX kernel's pending block)
  Columns16(const GemmJob& j, int64_t n0_) : n0(n0_) {
    const int64_t n_valid = j.B->n() - n0;
    any = n_valid > 0;
    mask = static_cast<__mmask16>((1u << std::min<int64_t>(16, std::max<int64_t>(0, n_valid))) - 1);
    // Masked: a sparse weight's compensation has n entries, not a multiple of 16
    // (scale and bias are padded copies, see gemm.cpp).
    comp = any ? _mm512_maskz_loadu_epi32(mask, j.B->comp() + n0) : _mm512_setzero_si512();
    scale = any ? _mm512_loadu_ps(j.scale + n0) : _mm512_setzero_ps();
    bias = any ? _mm512_loadu_ps(j.bias + n0) : _mm512_setzero_ps();
  }
};

// Row m of the 16 columns `c` through the epilogue (same order as
// epilogue_scalar), for an output type and residual known at compile time: a
// kernel that loops over many rows can pick the instance once (the AMX
// kernel's epilogue was a third scalar bookkeeping before).
template <OutType kOut, bool kResidual>
static inline __attribute__((always_inline)) void store_row16_as(__m512i acc, const Columns16& c, const GemmJob& j,
                                                                 const Ep512& e, int64_t m) {
  constexpr int64_t esz = kOut == OutType::f32 ? 4 : 1;
  acc = _mm512_add_epi32(acc, c.comp);
  __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), c.scale, c.bias);
  if constexpr (kResidual) {
    const Epilogue& ep = *j.ep;
    const auto* rp = static_cast<const uint8_t*>(ep.residual) + (m * ep.ld_residual + c.n0) * esz;
    __m512 r;
    if constexpr (kOut == OutType::f32) {
      r = _mm512_maskz_loadu_ps(c.mask, rp);
    } else {
      const __m128i b = _mm_maskz_loadu_epi8(c.mask, rp);
      const __m512i i = kOut == OutType::u8 ? _mm512_cvtepu8_epi32(b) : _mm512_cvtepi8_epi32(b);
      r = _mm512_cvtepi32_ps(_mm512_sub_epi32(i, _mm512_set1_epi32(e.rzp)));
    }
    y = _mm512_fmadd_ps(e.rscale, r, y);
  }
  auto* dst = static_cast<uint8_t*>(j.C) + (m * j.ldc + c.n0) * esz;
  if constexpr (kOut == OutType::f32) {
    if (e.relu) y = _mm512_max_ps(y, e.zero);
    _mm512_mask_storeu_ps(dst, c.mask, y);
  } else {
    // Clamped to the integer bounds first, then converted in the current
    // rounding mode (nearest even, as epilogue_scalar's nearbyint): the same
    // as its round-then-clamp (rounding is monotone and the bounds are
    // integers; a NaN becomes lo both ways), one instruction fewer.
    y = _mm512_min_ps(_mm512_max_ps(y, e.lo), e.hi);
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(y), e.zp);
    // q is inside the output type's range (lo >= qmin - zp), so the saturating
    // narrowings are exact.
    const __m128i b = kOut == OutType::u8 ? _mm512_cvtusepi32_epi8(q) : _mm512_cvtsepi32_epi8(q);
    if (c.mask == 0xFFFF)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), b);
    else
      _mm_mask_storeu_epi8(dst, c.mask, b);
  }
}

// The same, choosing the instance at run time.
static inline __attribute__((always_inline)) void store_row16(__m512i acc, const Columns16& c, const GemmJob& j,
                                                              const Ep512& e, int64_t m) {
  const bool res = j.ep->residual != nullptr;
  switch (e.out) {
    case OutType::u8: return res ? store_row16_as<OutType::u8, true>(acc, c, j, e, m)
                                 : store_row16_as<OutType::u8, false>(acc, c, j, e, m);
    case OutType::s8: return res ? store_row16_as<OutType::s8, true>(acc, c, j, e, m)
                                 : store_row16_as<OutType::s8, false>(acc, c, j, e, m);
    default: return res ? store_row16_as<OutType::f32, true>(acc, c, j, e, m)
                        : store_row16_as<OutType::f32, false>(acc, c, j, e, m);
  }
}

}  // namespace
}  // namespace compress::kernels::detail
