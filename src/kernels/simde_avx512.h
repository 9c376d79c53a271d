// SIMD Everywhere (Debian's libsimde-dev) for the AVX-512 kernels' SIMDe
// test builds (gemm_avx512vnni_simde.cpp, sparse_avx512vnni_simde.cpp): the
// AVX-512 intrinsics implemented with AVX2 or scalar code of the same
// result, plus stand-ins for those SIMDe 0.7.4 lacks. Include before a
// kernel body, in a translation unit compiled for AVX2 only.
#pragma once
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

// Scalar stand-ins for the intrinsics SIMDe 0.7.4 lacks, each written from
// the instruction's definition in Intel's manual. Masked loads and stores
// touch only the selected lanes, as the instructions do (the kernel relies
// on that at the end of a row).
namespace compress_vnni_simde {

template <typename To, typename From>
static inline To bits(const From& f) {
  static_assert(sizeof(To) == sizeof(From), "same size");
  To t;
  std::memcpy(&t, &f, sizeof(t));
  return t;
}
struct I32x16 { int32_t v[16]; };
struct F32x16 { float v[16]; };
struct U8x16 { uint8_t v[16]; };
struct S8x16 { int8_t v[16]; };

// vcvtdq2ps: int32 -> float, rounded in the current mode (nearest-even), as a C++ conversion is.
static inline simde__m512 cvtepi32_ps(simde__m512i a) {
  const I32x16 i = bits<I32x16>(a);
  F32x16 f;
  for (int t = 0; t < 16; ++t) f.v[t] = static_cast<float>(i.v[t]);
  return bits<simde__m512>(f);
}
// vcvtps2dq: rounded in the current mode (nearest-even), as nearbyint does;
// NaN and out-of-range give 0x80000000.
static inline simde__m512i cvtps_epi32(simde__m512 a) {
  const F32x16 f = bits<F32x16>(a);
  I32x16 i;
  for (int t = 0; t < 16; ++t) {
    const float r = std::nearbyint(f.v[t]);
    i.v[t] = r >= -2147483648.f && r < 2147483648.f ? static_cast<int32_t>(r) : INT32_MIN;
  }
  return bits<simde__m512i>(i);
}
// vcvttps2dq: truncation; NaN and out-of-range give 0x80000000.
static inline simde__m512i cvttps_epi32(simde__m512 a) {
  const F32x16 f = bits<F32x16>(a);
  I32x16 i;
  for (int t = 0; t < 16; ++t)
    i.v[t] = (f.v[t] >= -2147483648.f && f.v[t] < 2147483648.f) ? static_cast<int32_t>(f.v[t]) : INT32_MIN;
  return bits<simde__m512i>(i);
}
// vpmovusdb: unsigned int32 -> uint8 with unsigned saturation.
static inline simde__m128i cvtusepi32_epi8(simde__m512i a) {
  const I32x16 i = bits<I32x16>(a);
  U8x16 b;
  for (int t = 0; t < 16; ++t) {
    const auto u = static_cast<uint32_t>(i.v[t]);
    b.v[t] = static_cast<uint8_t>(u > 255u ? 255u : u);
  }
  return bits<simde__m128i>(b);
}
// vpmovzxbd / vpmovsxbd: 16 bytes widened to int32.
static inline simde__m512i cvtepu8_epi32(simde__m128i a) {
  const U8x16 b = bits<U8x16>(a);
  I32x16 i;
  for (int t = 0; t < 16; ++t) i.v[t] = b.v[t];
  return bits<simde__m512i>(i);
}
static inline simde__m512i cvtepi8_epi32(simde__m128i a) {
  const S8x16 b = bits<S8x16>(a);
  I32x16 i;
  for (int t = 0; t < 16; ++t) i.v[t] = b.v[t];
  return bits<simde__m512i>(i);
}
// vmovups / vmovdqu8 with a zeroing mask, and masked stores.
static inline simde__m512 maskz_loadu_ps(simde__mmask16 k, const void* p) {
  F32x16 f{};
  for (int t = 0; t < 16; ++t)
    if ((k >> t) & 1) std::memcpy(&f.v[t], static_cast<const float*>(p) + t, 4);
  return bits<simde__m512>(f);
}
static inline simde__m128i maskz_loadu_epi8(simde__mmask16 k, const void* p) {
  U8x16 b{};
  for (int t = 0; t < 16; ++t)
    if ((k >> t) & 1) b.v[t] = static_cast<const uint8_t*>(p)[t];
  return bits<simde__m128i>(b);
}
static inline simde__m512i maskz_loadu_epi32(simde__mmask16 k, const void* p) {
  I32x16 i{};
  for (int t = 0; t < 16; ++t)
    if ((k >> t) & 1) std::memcpy(&i.v[t], static_cast<const int32_t*>(p) + t, 4);
  return bits<simde__m512i>(i);
}
static inline void mask_storeu_ps(void* p, simde__mmask16 k, simde__m512 a) {
  const F32x16 f = bits<F32x16>(a);
  for (int t = 0; t < 16; ++t)
    if ((k >> t) & 1) std::memcpy(static_cast<float*>(p) + t, &f.v[t], 4);
}
static inline void mask_storeu_epi8(void* p, simde__mmask16 k, simde__m128i a) {
  const U8x16 b = bits<U8x16>(a);
  for (int t = 0; t < 16; ++t)
    if ((k >> t) & 1) static_cast<uint8_t*>(p)[t] = b.v[t];
}

// 32 lanes of bytes (the depthwise kernel's channel blocks).
static inline simde__m256i maskz_loadu_epi8_32(simde__mmask32 k, const void* p) {
  uint8_t b[32] = {};
  for (int t = 0; t < 32; ++t)
    if ((k >> t) & 1) b[t] = static_cast<const uint8_t*>(p)[t];
  return bits<simde__m256i>(b);
}
static inline simde__m512i cvtepu8_epi16(simde__m256i a) {
  const auto b = bits<std::array<uint8_t, 32>>(a);
  std::array<int16_t, 32> w{};
  for (int t = 0; t < 32; ++t) w[t] = b[t];
  return bits<simde__m512i>(w);
}

}  // namespace compress_vnni_simde

// The kernel's spellings, redirected from GCC's AVX-512 builtins (which an
// AVX2 build cannot inline) to the stand-ins above.
#define _mm512_cvtepi32_ps compress_vnni_simde::cvtepi32_ps
#define _mm512_cvttps_epi32 compress_vnni_simde::cvttps_epi32
#define _mm512_cvtps_epi32 compress_vnni_simde::cvtps_epi32
#define _mm512_cvtusepi32_epi8 compress_vnni_simde::cvtusepi32_epi8
#define _mm512_cvtepu8_epi32 compress_vnni_simde::cvtepu8_epi32
#define _mm512_cvtepi8_epi32 compress_vnni_simde::cvtepi8_epi32
#define _mm512_maskz_loadu_ps compress_vnni_simde::maskz_loadu_ps
#define _mm_maskz_loadu_epi8 compress_vnni_simde::maskz_loadu_epi8
#define _mm512_maskz_loadu_epi32 compress_vnni_simde::maskz_loadu_epi32
#define _mm512_mask_storeu_ps compress_vnni_simde::mask_storeu_ps
#define _mm_mask_storeu_epi8 compress_vnni_simde::mask_storeu_epi8
#define _mm256_maskz_loadu_epi8 compress_vnni_simde::maskz_loadu_epi8_32
#define _mm512_cvtepu8_epi16 compress_vnni_simde::cvtepu8_epi16
