// LSTM / GRU cell arithmetic on AVX2 + FMA, 8 channels per step (rnn_cell.h).
// exp: x = n ln2 + r with |r| <= ln2 / 2, e^r by Cephes' degree-7 polynomial
// for expf, times 2^n built in the exponent bits; the input is clamped to
// +-88 (e^88 still finite) so sigmoid and tanh saturate cleanly.
#include <immintrin.h>

#include "internal.h"

namespace compress::kernels::detail {

namespace {

inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.f)), _mm256_set1_ps(88.f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

inline __m256 sigmoid_ps(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// tanh(x) = 2 sigmoid(2x) - 1
inline __m256 tanh_ps(__m256 x) {
  const __m256 two = _mm256_set1_ps(2.f);
  return _mm256_fmsub_ps(two, sigmoid_ps(_mm256_mul_ps(two, x)), _mm256_set1_ps(1.f));
}

inline __m256 gate(const float* gi, const float* gh, int64_t j) {
  return _mm256_add_ps(_mm256_loadu_ps(gi + j), _mm256_loadu_ps(gh + j));
}

}  // namespace

int64_t lstm_cell_f32_avx2(const float* gi, const float* gh, int64_t H, float* c, float* h) {
  int64_t j = 0;
  for (; j + 8 <= H; j += 8) {
    const __m256 i = sigmoid_ps(gate(gi, gh, j)), f = sigmoid_ps(gate(gi, gh, H + j));
    const __m256 g = tanh_ps(gate(gi, gh, 2 * H + j)), o = sigmoid_ps(gate(gi, gh, 3 * H + j));
    const __m256 cell = _mm256_fmadd_ps(f, _mm256_loadu_ps(c + j), _mm256_mul_ps(i, g));
    _mm256_storeu_ps(c + j, cell);
    _mm256_storeu_ps(h + j, _mm256_mul_ps(o, tanh_ps(cell)));
  }
  return j;
}

int64_t gru_cell_f32_avx2(const float* gi, const float* gh, int64_t H, float* h) {
  int64_t j = 0;
  const __m256 one = _mm256_set1_ps(1.f);
  for (; j + 8 <= H; j += 8) {
    const __m256 r = sigmoid_ps(gate(gi, gh, j)), z = sigmoid_ps(gate(gi, gh, H + j));
    const __m256 n = tanh_ps(_mm256_fmadd_ps(r, _mm256_loadu_ps(gh + 2 * H + j), _mm256_loadu_ps(gi + 2 * H + j)));
    const __m256 prev = _mm256_loadu_ps(h + j);
    _mm256_storeu_ps(h + j, _mm256_fmadd_ps(_mm256_sub_ps(one, z), n, _mm256_mul_ps(z, prev)));
  }
  return j;
}

}  // namespace compress::kernels::detail
