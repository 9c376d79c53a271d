// Measures the machine's int8 peak the AVX2 GEMM can reach: the clock (from a
// chain of dependent adds, 1 cycle each) and the throughput of each kernel's
// instruction mix with as many independent accumulators as its tile has.
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

// The ceilings of the two u8 paths, measured with the microkernels' own
// instruction streams minus the weight loads: broadcasts from memory (the
// rows of A; the empty asm with a memory clobber makes every iteration reload
// them), weight vectors in registers, the vector of ones as a memory operand.
alignas(32) const int16_t kOnes16[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
inline __m256i madd_ones(__m256i t) {
  __asm__("vpmaddwd %1, %0, %0" : "+x"(t) : "m"(*reinterpret_cast<const __m256i*>(kOnes16)));
  return t;
}

// vpmaddubsw + vpmaddwd(ones) + vpaddd, 6 rows x 2 column vectors (12
// accumulators): 32 MACs per pair of multiplies. The u8 path, and what
// oneDNN's AVX2 int8 GEMM issues too.
double measure_maddubs_macs_per_s() {
  alignas(32) volatile int32_t rows[8] = {0x01020304, 0x05060708, 0x090a0b0c, 0x0d0e0f10, 0x11121314, 0x15161718};
  __m256i b0 = _mm256_set1_epi8(5), b1 = _mm256_set1_epi8(7);
  __m256i c[6][2];
  for (auto& r : c) r[0] = r[1] = _mm256_setzero_si256();
  const int64_t n = 20000000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; ++i) {
    __asm__ volatile("" : "+x"(b0), "+x"(b1) : : "memory");
#pragma GCC unroll 6
    for (int r = 0; r < 6; ++r) {
      const __m256i x = _mm256_set1_epi32(rows[r]);
      c[r][0] = _mm256_add_epi32(c[r][0], madd_ones(_mm256_maddubs_epi16(x, b0)));
      c[r][1] = _mm256_add_epi32(c[r][1], madd_ones(_mm256_maddubs_epi16(x, b1)));
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  __m256i sum = _mm256_setzero_si256();
  for (auto& r : c) sum = _mm256_add_epi32(sum, _mm256_add_epi32(r[0], r[1]));
  volatile int sink = _mm256_extract_epi32(sum, 0);
  (void)sink;
  return static_cast<double>(n) * 12 * 32 / s;
}

// The 7-bit path: two vpmaddubsw added in s16 (vpaddw), one vpmaddwd with
// ones, one vpaddd; 4 rows x 2 column vectors (8 accumulators): 64 MACs per
// three multiplies.
double measure_u7_macs_per_s() {
  alignas(32) volatile int32_t rows[8] = {0x01020304, 0x05060708, 0x090a0b0c, 0x0d0e0f10,
                                          0x11121314, 0x15161718, 0x191a1b1c, 0x1d1e1f20};
  __m256i b00 = _mm256_set1_epi8(5), b01 = _mm256_set1_epi8(7), b10 = _mm256_set1_epi8(9), b11 = _mm256_set1_epi8(11);
  __m256i c[4][2];
  for (auto& r : c) r[0] = r[1] = _mm256_setzero_si256();
  const int64_t n = 20000000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; ++i) {
    __asm__ volatile("" : "+x"(b00), "+x"(b01), "+x"(b10), "+x"(b11) : : "memory");
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m256i x0 = _mm256_set1_epi32(rows[2 * r]), x1 = _mm256_set1_epi32(rows[2 * r + 1]);
      const __m256i lo = _mm256_add_epi16(_mm256_maddubs_epi16(x0, b00), _mm256_maddubs_epi16(x1, b10));
      const __m256i hi = _mm256_add_epi16(_mm256_maddubs_epi16(x0, b01), _mm256_maddubs_epi16(x1, b11));
      c[r][0] = _mm256_add_epi32(c[r][0], madd_ones(lo));
      c[r][1] = _mm256_add_epi32(c[r][1], madd_ones(hi));
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  __m256i sum = _mm256_setzero_si256();
  for (auto& r : c) sum = _mm256_add_epi32(sum, _mm256_add_epi32(r[0], r[1]));
  volatile int sink = _mm256_extract_epi32(sum, 0);
  (void)sink;
  return static_cast<double>(n) * 8 * 64 / s;
}

}  // namespace bench
