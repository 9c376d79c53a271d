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

// 16 columns `c` of one output row through the epilogue (same order as
// epilogue_scalar), for an output type and residual known at compile time;
// rp: the row's residual at column c.n0, dst: its output there.
template <OutType kOut, bool kResidual>
static inline __attribute__((always_inline)) void store16_as(__m512i acc, const Columns16& c, const Ep512& e,
                                                             const uint8_t* rp, uint8_t* dst) {
  acc = _mm512_add_epi32(acc, c.comp);
  __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), c.scale, c.bias);
  if constexpr (kResidual) {
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

// Row m of the 16 columns `c` through the epilogue.
template <OutType kOut, bool kResidual>
static inline __attribute__((always_inline)) void store_row16_as(__m512i acc, const Columns16& c, const GemmJob& j,
                                                                 const Ep512& e, int64_t m) {
  constexpr int64_t esz = kOut == OutType::f32 ? 4 : 1;
  const Epilogue& ep = *j.ep;
  const uint8_t* rp = kResidual ? static_cast<const uint8_t*>(ep.residual) + (m * ep.ld_residual + c.n0) * esz : nullptr;
  store16_as<kOut, kResidual>(acc, c, e, rp, static_cast<uint8_t*>(j.C) + (m * j.ldc + c.n0) * esz);
}

// Rows m0 .. m0 + rows - 1 of two 16-column halves (acc[i][0] for `lo`,
// acc[i][1] for `hi`; a half with no columns is skipped): the pointers and
// constants read once, not per row (the compiler cannot keep them across the
// u8 stores, which might alias them), and the instance chosen by the caller.
template <OutType kOut, bool kResidual, int64_t kRows>
static inline __attribute__((always_inline)) void store_rows_as(const __m512i (&acc)[kRows][2], const Columns16& lo,
                                                                const Columns16& hi, const GemmJob& j,
                                                                const Ep512& e, int64_t m0, int64_t rows) {
  constexpr int64_t esz = kOut == OutType::f32 ? 4 : 1;
  const Columns16 cols[2] = {lo, hi};
  const Epilogue& ep = *j.ep;
  const int64_t ld = j.ldc * esz, ld_r = kResidual ? ep.ld_residual * esz : 0;
  for (int h = 0; h < 2; ++h) {
    const Columns16 c = cols[h];
    if (!c.any) continue;
    uint8_t* dst = static_cast<uint8_t*>(j.C) + (m0 * j.ldc + c.n0) * esz;
    const uint8_t* rp =
        kResidual ? static_cast<const uint8_t*>(ep.residual) + (m0 * ep.ld_residual + c.n0) * esz : nullptr;
    for (int64_t i = 0; i < rows; ++i, dst += ld, rp += ld_r) store16_as<kOut, kResidual>(acc[i][h], c, e, rp, dst);
  }
}

template <int64_t kRows>
static inline __attribute__((always_inline)) void store_rows(const __m512i (&acc)[kRows][2], const Columns16& lo,
                                                             const Columns16& hi, const GemmJob& j, const Ep512& e,
                                                             int64_t m0, int64_t rows) {
  const bool res = j.ep->residual != nullptr;
  switch (e.out) {
    case OutType::u8: return res ? store_rows_as<OutType::u8, true>(acc, lo, hi, j, e, m0, rows)
                                 : store_rows_as<OutType::u8, false>(acc, lo, hi, j, e, m0, rows);
    case OutType::s8: return res ? store_rows_as<OutType::s8, true>(acc, lo, hi, j, e, m0, rows)
                                 : store_rows_as<OutType::s8, false>(acc, lo, hi, j, e, m0, rows);
    default: return res ? store_rows_as<OutType::f32, true>(acc, lo, hi, j, e, m0, rows)
                        : store_rows_as<OutType::f32, false>(acc, lo, hi, j, e, m0, rows);
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
