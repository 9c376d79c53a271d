// quantize_f32_u8 on AVX2, 32 values per step, in the float order of the
// scalar version (ref.cpp), so both give the same bytes: multiply by the
// reciprocal, round to nearest even (vroundps = nearbyint in the default
// mode), add the zero point, then max(v, 0) and min(v, quant_max) with the
// scalar ternaries' operand order (a NaN becomes 0, as there).
#include <immintrin.h>

#include <limits>

#include "internal.h"

namespace compress::kernels::detail {

namespace {

struct QuantConsts {
  __m256 inv, zp, zero, hi;
  QuantConsts(float scale, int32_t zero_point, int32_t quant_max)
      : inv(_mm256_set1_ps(1.f / scale)),
        zp(_mm256_set1_ps(static_cast<float>(zero_point))),
        zero(_mm256_setzero_ps()),
        hi(_mm256_set1_ps(static_cast<float>(quant_max))) {}
};

// 32 values x[0..31] to 32 codes, in order.
inline __m256i quantize32(const float* x, const QuantConsts& k) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  __m256i w[4];
  for (int t = 0; t < 4; ++t) {
    __m256 v = _mm256_add_ps(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * t), k.inv), kRound), k.zp);
    v = _mm256_min_ps(_mm256_max_ps(v, k.zero), k.hi);  // max(v, 0): v > 0 ? v : 0; min(v, hi): v < hi ? v : hi
    w[t] = _mm256_cvttps_epi32(v);
  }
  // Values are in 0..255, so the saturating packs are exact; packs work per
  // 128-bit lane, and the permute restores the order.
  const __m256i s16a = _mm256_packs_epi32(w[0], w[1]), s16b = _mm256_packs_epi32(w[2], w[3]);
  const __m256i u8 = _mm256_packus_epi16(s16a, s16b);
  return _mm256_permutevar8x32_epi32(u8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

}  // namespace

int64_t quantize_f32_u8_avx2(const float* x, int64_t n, float scale, int32_t zero_point, uint8_t* q,
                             int32_t quant_max) {
  const QuantConsts k(scale, zero_point, quant_max);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), quantize32(x + i, k));
  return i;  // the caller's scalar loop does the rest
}

int64_t quantize_f32_u8_planes3_avx2(const float* const planes[3], int64_t n, float scale, int32_t zero_point,
                                     uint8_t* q, int32_t quant_max) {
  const QuantConsts k(scale, zero_point, quant_max);
  // Output byte g of a 48-byte group is channel g % 3 of pixel g / 3: for
  // each 16-byte third and channel, a shuffle of that channel's 16 codes
  // (-1: a byte of another channel, zeroed, then or-ed together).
  alignas(16) int8_t masks[3][3][16];
  for (int v = 0; v < 3; ++v)
    for (int ch = 0; ch < 3; ++ch)
      for (int b = 0; b < 16; ++b) {
        const int g = 16 * v + b;
        masks[v][ch][b] = static_cast<int8_t>(g % 3 == ch ? g / 3 : -1);
      }
  __m128i m[3][3];
  for (int v = 0; v < 3; ++v)
    for (int ch = 0; ch < 3; ++ch) m[v][ch] = _mm_load_si128(reinterpret_cast<const __m128i*>(masks[v][ch]));
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i c[3] = {quantize32(planes[0] + i, k), quantize32(planes[1] + i, k), quantize32(planes[2] + i, k)};
    for (int half = 0; half < 2; ++half) {
      __m128i h[3];
      for (int ch = 0; ch < 3; ++ch)
        h[ch] = half == 0 ? _mm256_castsi256_si128(c[ch]) : _mm256_extracti128_si256(c[ch], 1);
      auto* out = reinterpret_cast<__m128i*>(q + (i + 16 * half) * 3);
      for (int v = 0; v < 3; ++v)
        _mm_storeu_si128(out + v, _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(h[0], m[v][0]), _mm_shuffle_epi8(h[1], m[v][1])),
                                               _mm_shuffle_epi8(h[2], m[v][2])));
    }
  }
  return i;
}

float max_abs_f32_avx2(const float* x, int64_t n, int64_t* done) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_and_ps(_mm256_loadu_ps(x + i), magnitude);
    m = _mm256_max_ps(m, v);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  *done = i;
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float best = 0.f;
  for (float l : lanes) best = l > best ? l : best;
  return _mm256_movemask_ps(nan) ? std::numeric_limits<float>::quiet_NaN() : best;
}

}  // namespace compress::kernels::detail
