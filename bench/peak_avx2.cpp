// Measures the machine's int8 peak the AVX2 GEMM can reach: the clock (from a
// chain of dependent adds, 1 cycle each) and the vpmaddwd+vpaddd throughput
// with 12 independent accumulators (the shape of the 6x16 microkernel).
#include <immintrin.h>

#include <chrono>
#include <cstdint>

namespace bench {

// Core clock in GHz: a dependent integer add chain retires one add per cycle.
double measure_clock_ghz() {
  const int64_t n = 400000000;
  uint64_t x = 1;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; i += 4) {
    __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(n) / s / 1e9 * (x > 0 ? 1 : 0);
}

// int8 multiply-accumulates per second on one core through vpmaddwd (16 MACs each).
double measure_madd_macs_per_s() {
  __m256i a = _mm256_set1_epi16(3), b = _mm256_set1_epi16(5);
  __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  __m256i c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  const int64_t n = 20000000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; ++i) {
    __asm__ volatile("" : "+x"(a), "+x"(b));  // keep the loop from being folded
    __asm__ volatile("" : "+x"(a));
    c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c4 = _mm256_add_epi32(c4, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c5 = _mm256_add_epi32(c5, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c6 = _mm256_add_epi32(c6, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c7 = _mm256_add_epi32(c7, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c8 = _mm256_add_epi32(c8, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c9 = _mm256_add_epi32(c9, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(a, b));
    __asm__ volatile("" : "+x"(a));
    c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(a, b));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  __m256i sum = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
  sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)));
  volatile int sink = _mm256_extract_epi32(sum, 0);
  (void)sink;
  return static_cast<double>(n) * 12 * 16 / s;
}

// Same with vpmaddubsw + vpmaddwd(ones) + vpaddd (the u8 path of other libraries), 32 MACs per triple.
double measure_maddubs_macs_per_s() {
  __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(5), ones = _mm256_set1_epi16(1);
  __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  __m256i c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  const int64_t n = 20000000;
  const auto t0 = std::chrono::steady_clock::now();
#define STEP(c) __asm__ volatile("" : "+x"(a)); c = _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones))
  for (int64_t i = 0; i < n; ++i) {
    __asm__ volatile("" : "+x"(a), "+x"(b));
    STEP(c0); STEP(c1); STEP(c2); STEP(c3); STEP(c4); STEP(c5);
    STEP(c6); STEP(c7); STEP(c8); STEP(c9); STEP(c10); STEP(c11);
  }
#undef STEP
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  __m256i sum = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
  sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)));
  volatile int sink = _mm256_extract_epi32(sum, 0);
  (void)sink;
  return static_cast<double>(n) * 12 * 32 / s;
}

}  // namespace bench
