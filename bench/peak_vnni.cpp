// The AVX-512 VNNI int8 throughput on one core: vpdpbusd on zmm registers
// (64 u8 x s8 multiply-accumulates each) into 16 independent accumulators, as
// many as the VNNI GEMM's tile keeps (gemm_avx512vnni_body.h). Compiled with
// the AVX-512 VNNI flags (this file only); called only where
// cpu_supports(Isa::avx512vnni).
#include <immintrin.h>

#include <chrono>
#include <cstdint>

namespace bench {

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
    // Written out in assembly: with intrinsics GCC copies accumulators
    // between registers around the destructive vpdpbusd and spills some.
    // (two statements: an asm takes at most 30 operands).
    __asm__ volatile(
        "vpdpbusd %[b], %[a], %[c0]\n\tvpdpbusd %[b], %[a], %[c1]\n\t"
        "vpdpbusd %[b], %[a], %[c2]\n\tvpdpbusd %[b], %[a], %[c3]\n\t"
        "vpdpbusd %[b], %[a], %[c4]\n\tvpdpbusd %[b], %[a], %[c5]\n\t"
        "vpdpbusd %[b], %[a], %[c6]\n\tvpdpbusd %[b], %[a], %[c7]"
        : [c0] "+v"(c0), [c1] "+v"(c1), [c2] "+v"(c2), [c3] "+v"(c3), [c4] "+v"(c4), [c5] "+v"(c5),
          [c6] "+v"(c6), [c7] "+v"(c7)
        : [a] "v"(a), [b] "v"(b));
    __asm__ volatile(
        "vpdpbusd %[b], %[a], %[c8]\n\tvpdpbusd %[b], %[a], %[c9]\n\t"
        "vpdpbusd %[b], %[a], %[c10]\n\tvpdpbusd %[b], %[a], %[c11]\n\t"
        "vpdpbusd %[b], %[a], %[c12]\n\tvpdpbusd %[b], %[a], %[c13]\n\t"
        "vpdpbusd %[b], %[a], %[c14]\n\tvpdpbusd %[b], %[a], %[c15]"
        : [c8] "+v"(c8), [c9] "+v"(c9), [c10] "+v"(c10), [c11] "+v"(c11), [c12] "+v"(c12), [c13] "+v"(c13),
          [c14] "+v"(c14), [c15] "+v"(c15)
        : [a] "v"(a), [b] "v"(b));
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
