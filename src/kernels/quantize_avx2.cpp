// quantize_f32_u8 on AVX2, 32 values per step, in the float order of the
// scalar version (ref.cpp), so both give the same bytes: multiply by the
// reciprocal, round to nearest even (vroundps = nearbyint in the default
// mode), add the zero point, then max(v, 0) and min(v, quant_max) with the
// scalar ternaries' operand order (a NaN becomes 0, as there).
#include <immintrin.h>

#include <limits>

#include "internal.h"

namespace compress::kernels::detail {

int64_t quantize_f32_u8_avx2(const float* x, int64_t n, float scale, int32_t zero_point, uint8_t* q,
                             int32_t quant_max) {
  const float inv = 1.f / scale;
  const __m256 vinv = _mm256_set1_ps(inv), vzp = _mm256_set1_ps(static_cast<float>(zero_point));
  const __m256 zero = _mm256_setzero_ps(), hi = _mm256_set1_ps(static_cast<float>(quant_max));
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i w[4];
    for (int t = 0; t < 4; ++t) {
      __m256 v = _mm256_add_ps(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * t), vinv), kRound), vzp);
      v = _mm256_min_ps(_mm256_max_ps(v, zero), hi);  // max(v, 0): v > 0 ? v : 0; min(v, hi): v < hi ? v : hi
      w[t] = _mm256_cvttps_epi32(v);
    }
    // Values are in 0..255, so the saturating packs are exact; packs work per
    // 128-bit lane, and the permute restores the order.
    const __m256i s16a = _mm256_packs_epi32(w[0], w[1]), s16b = _mm256_packs_epi32(w[2], w[3]);
    const __m256i u8 = _mm256_packus_epi16(s16a, s16b);
    const __m256i ordered = _mm256_permutevar8x32_epi32(u8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), ordered);
  }
  return i;  // the caller's scalar loop does the rest
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
