// The AVX-512 VNNI int8 throughput on one core: vpdpbusd on zmm registers
// (64 u8 x s8 multiply-accumulates each) into 16 independent accumulators, as
// many as the VNNI GEMM's tile keeps (gemm_avx512vnni_body.h). Compiled with
// the AVX-512 VNNI flags (this file only); called only where
// cpu_supports(Isa::avx512vnni).
#include <immintrin.h>

#include <chrono>
#include <cstdint>

namespace bench {

namespace {

// Eight independent vpdpbusd, written out in assembly: with intrinsics GCC
// copies accumulators between registers around the destructive instruction
// and spills some. (Eight per statement: an asm takes at most 30 operands.)
inline void dpbusd8(__m512i& c0, __m512i& c1, __m512i& c2, __m512i& c3, __m512i& c4, __m512i& c5, __m512i& c6,
                    __m512i& c7, __m512i a, __m512i b) {
  __asm__ volatile(
      "vpdpbusd %[b], %[a], %[c0]\n\tvpdpbusd %[b], %[a], %[c1]\n\t"
      "vpdpbusd %[b], %[a], %[c2]\n\tvpdpbusd %[b], %[a], %[c3]\n\t"
      "vpdpbusd %[b], %[a], %[c4]\n\tvpdpbusd %[b], %[a], %[c5]\n\t"
      "vpdpbusd %[b], %[a], %[c6]\n\tvpdpbusd %[b], %[a], %[c7]"
      : [c0] "+v"(c0), [c1] "+v"(c1), [c2] "+v"(c2), [c3] "+v"(c3), [c4] "+v"(c4), [c5] "+v"(c5),
        [c6] "+v"(c6), [c7] "+v"(c7)
      : [a] "v"(a), [b] "v"(b));
}

}  // namespace

double measure_vnni_macs_per_s() {
  __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(2);
  __m512i c0 = _mm512_set1_epi32(0), c1 = _mm512_set1_epi32(1), c2 = _mm512_set1_epi32(2), c3 = _mm512_set1_epi32(3);
  __m512i c4 = _mm512_set1_epi32(4), c5 = _mm512_set1_epi32(5), c6 = _mm512_set1_epi32(6), c7 = _mm512_set1_epi32(7);
  __m512i c8 = _mm512_set1_epi32(8), c9 = _mm512_set1_epi32(9), c10 = _mm512_set1_epi32(10), c11 = _mm512_set1_epi32(11);
  __m512i c12 = _mm512_set1_epi32(12), c13 = _mm512_set1_epi32(13), c14 = _mm512_set1_epi32(14),
          c15 = _mm512_set1_epi32(15);
  const int64_t n = 10000000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; ++i) {
    dpbusd8(c0, c1, c2, c3, c4, c5, c6, c7, a, b);
    dpbusd8(c8, c9, c10, c11, c12, c13, c14, c15, a, b);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  __m512i sum = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
  sum = _mm512_add_epi32(sum, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)),
                                               _mm512_add_epi32(_mm512_add_epi32(c12, c13), _mm512_add_epi32(c14, c15))));
  // 16 lanes x (the starting values 0 + ... + 15, plus 16 accumulators x n
  // steps x 4 products of 1 x 2), mod 2^32: using the result keeps the
  // compiler from dropping the work.
  const uint32_t expected = 16u * (120u + 16u * 8u * static_cast<uint32_t>(n));
  const bool exact = static_cast<uint32_t>(_mm512_reduce_add_epi32(sum)) == expected;
  return static_cast<double>(n) * 16 * 64 / s * (exact ? 1 : 0);
}

}  // namespace bench
