#pragma once
// AVX2 form of the epilogue in gemm.h; included only by -mavx2 translation units.
// Same float operations, same order as detail::epilogue_scalar: vfmadd (one
// rounding, like std::fma), max/min whose operand order matches the scalar
// ternaries, NaN included, and a rounding conversion (like std::nearbyint).
#include <immintrin.h>

#include <cstring>

#include "compress/kernels/gemm.h"
#include "internal.h"

namespace compress::kernels::detail {
namespace {

struct EpAvx2 {
  OutType out;
  bool relu;
  // u8/s8 output without residual, the common case of a quantized layer:
  // full 16-column rows can take store_row16_plain.
  bool plain;
  __m256 lo, hi, zero, rscale;
  __m256i zp;
  int32_t rzp;
  explicit EpAvx2(const Epilogue& ep)
      : out(ep.out), relu(ep.relu), plain(ep.residual == nullptr && ep.out != OutType::f32),
        rzp(ep.residual_zero_point) {
    const OutputBounds b = output_bounds(ep);
    lo = _mm256_set1_ps(b.lo);
    hi = _mm256_set1_ps(b.hi);
    zp = _mm256_set1_epi32(ep.out_zero_point);
    zero = _mm256_setzero_ps();
    rscale = _mm256_set1_ps(ep.residual_scale);
  }
};

inline int64_t out_size(OutType t) { return t == OutType::f32 ? 4 : 1; }

// 16 residual values (count <= 16 valid, rest zero) as floats r - zero_point.
inline void load_residual16(const void* p, OutType t, int64_t count, int32_t rzp, __m256& r0, __m256& r1) {
  alignas(64) uint8_t tmp[64] = {0};
  if (count < 16) {
    std::memcpy(tmp, p, static_cast<size_t>(count * out_size(t)));
    p = tmp;
  }
  const __m256i z = _mm256_set1_epi32(rzp);
  if (t == OutType::f32) {
    r0 = _mm256_loadu_ps(static_cast<const float*>(p));
    r1 = _mm256_loadu_ps(static_cast<const float*>(p) + 8);
    return;
  }
  const __m128i b = _mm_loadu_si128(static_cast<const __m128i*>(p));
  __m256i i0, i1;
  if (t == OutType::u8) {
    i0 = _mm256_cvtepu8_epi32(b);
    i1 = _mm256_cvtepu8_epi32(_mm_srli_si128(b, 8));
  } else {
    i0 = _mm256_cvtepi8_epi32(b);
    i1 = _mm256_cvtepi8_epi32(_mm_srli_si128(b, 8));
  }
  r0 = _mm256_cvtepi32_ps(_mm256_sub_epi32(i0, z));
  r1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(i1, z));
}

// Rounds/clamps/converts 16 values y0|y1 and writes them as 16 elements of e.out to dst.
inline void finalize16(__m256 y0, __m256 y1, const EpAvx2& e, void* dst) {
  if (e.out == OutType::f32) {
    if (e.relu) {
      y0 = _mm256_max_ps(y0, e.zero);
      y1 = _mm256_max_ps(y1, e.zero);
    }
    _mm256_storeu_ps(static_cast<float*>(dst), y0);
    _mm256_storeu_ps(static_cast<float*>(dst) + 8, y1);
    return;
  }
  // Clamp, then round with the conversion itself (vcvtps2dq rounds in the
  // current mode, nearest-even by default, as std::nearbyint does): lo and hi
  // are integers, so clamping before rounding gives what rounding first would,
  // and a NaN becomes lo either way (vmaxps returns its second operand).
  y0 = _mm256_min_ps(_mm256_max_ps(y0, e.lo), e.hi);
  y1 = _mm256_min_ps(_mm256_max_ps(y1, e.lo), e.hi);
  const __m256i q0 = _mm256_add_epi32(_mm256_cvtps_epi32(y0), e.zp);
  const __m256i q1 = _mm256_add_epi32(_mm256_cvtps_epi32(y1), e.zp);
  // packs works within 128-bit lanes: [q0 0-3, q1 0-3 | q0 4-7, q1 4-7]; 0xD8 restores order.
  const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
  const __m256i b8 = e.out == OutType::u8 ? _mm256_packus_epi16(w16, w16) : _mm256_packs_epi16(w16, w16);
  // bytes 0-7 of each lane hold the result: gather qwords 0 and 2.
  const __m256i r = _mm256_permute4x64_epi64(b8, 0x08);
  _mm_storeu_si128(static_cast<__m128i*>(dst), _mm256_castsi256_si128(r));
}

// Per-column epilogue constants of a 16-column segment, loaded once per tile
// (stores to the u8 output may alias anything, so the compiler would reload
// them for every row otherwise).
struct Cols16 {
  __m256i k0, k1;
  __m256 s0, s1, b0, b1;
  Cols16(const int32_t* comp, const float* scale, const float* bias, int64_t n0)
      : k0(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(comp + n0))),
        k1(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(comp + n0 + 8))),
        s0(_mm256_loadu_ps(scale + n0)), s1(_mm256_loadu_ps(scale + n0 + 8)),
        b0(_mm256_loadu_ps(bias + n0)), b1(_mm256_loadu_ps(bias + n0 + 8)) {}
};

// (acc + compensation) * scale + bias for 8 columns, one rounding (vfmadd).
inline __m256 scale8(__m256i acc, __m256i comp, __m256 scale, __m256 bias) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc, comp)), scale, bias);
}

// store_row16 for a full 16-column row when e.plain: no residual, no partial
// row, no output-type tests beyond finalize16's. dst points at column n0.
inline void store_row16_plain(__m256i acc0, __m256i acc1, const Cols16& cols, const EpAvx2& e, void* dst) {
  finalize16(scale8(acc0, cols.k0, cols.s0, cols.b0), scale8(acc1, cols.k1, cols.s1, cols.b1), e, dst);
}

// One output row segment: 16 accumulators (acc0 = columns n0..n0+7, acc1 =
// n0+8..n0+15) of row m through the whole epilogue into C; `count` <= 16
// columns are valid.
inline void store_row16(__m256i acc0, __m256i acc1, const Cols16& cols, const Epilogue& ep, const EpAvx2& e,
                        int64_t m, int64_t n0, int64_t count, void* C, int64_t ldc) {
  const int64_t esz = out_size(ep.out);
  __m256 y0 = scale8(acc0, cols.k0, cols.s0, cols.b0), y1 = scale8(acc1, cols.k1, cols.s1, cols.b1);
  if (ep.residual) {
    __m256 r0, r1;
    const auto* rp = static_cast<const uint8_t*>(ep.residual) + (m * ep.ld_residual + n0) * esz;
    load_residual16(rp, ep.out, count, e.rzp, r0, r1);
    y0 = _mm256_fmadd_ps(e.rscale, r0, y0);
    y1 = _mm256_fmadd_ps(e.rscale, r1, y1);
  }
  auto* dst = static_cast<uint8_t*>(C) + (m * ldc + n0) * esz;
  if (count == 16) {
    finalize16(y0, y1, e, dst);
  } else {
    alignas(64) uint8_t tmp[64];
    finalize16(y0, y1, e, tmp);
    std::memcpy(dst, tmp, static_cast<size_t>(count * esz));
  }
}

inline void store_row16(__m256i acc0, __m256i acc1, const int32_t* comp, const float* scale,
                        const float* bias, const Epilogue& ep, const EpAvx2& e, int64_t m,
                        int64_t n0, int64_t count, void* C, int64_t ldc) {
  store_row16(acc0, acc1, Cols16(comp, scale, bias, n0), ep, e, m, n0, count, C, ldc);
}

}  // namespace
}  // namespace compress::kernels::detail
