// dwconv_u8s8s32_avx2_16c: depthwise convolution, 16 channels per step,
// two taps per vpmaddwd (compiled with -mavx2 -mfma).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "compress/kernels/packing_traits.h"
#include "epilogue_avx2.h"
#include "internal.h"

namespace compress::kernels::detail {
namespace {

constexpr int64_t CV = DepthwiseTraits::CV;

// Per output pixel the tap addresses are computed once (padding taps point
// at a row of zero points), then every 16-channel block runs without bounds
// checks; only the last, partial block goes through a copy.
constexpr int64_t kMaxTaps = 64;

void rows(void* vctx, int64_t begin, int64_t end) {
  const DepthwiseJob& j = *static_cast<DepthwiseJob*>(vctx);
  const EpAvx2 e(*j.ep);
  const int64_t C = j.channels, taps = j.kh * j.kw, c_pad = j.W->n_pad(), blocks = c_pad / CV;
  int16_t* w = interleave_depthwise_pairs(*j.W, taps, CV / 8, blocks);  // [pair][block] -> lo, hi
  auto* zp_row = static_cast<uint8_t*>(scratch_alloc(c_pad));
  // Epilogue constants of every 16-channel block, loaded once per call rather
  // than once per output pixel.
  std::vector<Cols16> cols;
  cols.reserve(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) cols.emplace_back(j.W->comp(), j.scale, j.bias, b * CV);
  for (int64_t c = 0; c < c_pad; ++c) zp_row[c] = static_cast<uint8_t>(j.W->a_zero_point());
  const uint8_t* tap[kMaxTaps + 1];
  int64_t off[kMaxTaps];
  for (int64_t t = 0; t < taps; ++t) off[t] = ((t / j.kw) * j.dil_h * j.width + (t % j.kw) * j.dil_w) * C;
  const int64_t full = C / CV * CV;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / j.out_h, oh = row % j.out_h;
    NextRowsPrefetch prefetch(j, b, oh);
    for (int64_t ow = 0; ow < j.out_w; ++ow) {
      prefetch.ahead(1);
      const int64_t m = row * j.out_w + ow;
      const int64_t ih0 = oh * j.stride_h - j.pad_h, iw0 = ow * j.stride_w - j.pad_w;
      if (ih0 >= 0 && ih0 + (j.kh - 1) * j.dil_h < j.height && iw0 >= 0 && iw0 + (j.kw - 1) * j.dil_w < j.width) {
        // Interior pixel (most of them): fixed offsets from the window's corner.
        const uint8_t* base = j.input + ((b * j.height + ih0) * j.width + iw0) * C;
        for (int64_t t = 0; t < taps; ++t) tap[t] = base + off[t];
      } else {
        for (int64_t t = 0; t < taps; ++t) {
          const int64_t ih = ih0 + (t / j.kw) * j.dil_h, iw = iw0 + (t % j.kw) * j.dil_w;
          tap[t] = (ih < 0 || ih >= j.height || iw < 0 || iw >= j.width)
                       ? zp_row
                       : j.input + ((b * j.height + ih) * j.width + iw) * C;
        }
      }
      // The odd tap's partner reads any valid bytes: its weights are zero.
      tap[taps] = zp_row;
      // kFull: a whole 16-channel block, loaded straight from the taps; else
      // the last `count` channels, through a zero-padded copy.
      auto block = [&](auto full_tag, int64_t c0, int64_t count) {
        constexpr bool kFull = decltype(full_tag)::value;
        auto load = [&](int64_t t) -> __m256i {
          if (kFull) return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tap[t] + c0)));
          alignas(16) uint8_t tmp[CV] = {0};
          std::memcpy(tmp, tap[t] + c0, static_cast<size_t>(count));
          return _mm256_cvtepu8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
        };
        __m256i lo = _mm256_setzero_si256(), hi = lo;
        const int16_t* wb = w + (c0 / CV) * 2 * CV;
        for (int64_t t = 0; t < taps; t += 2, wb += blocks * 2 * CV) {
          const __m256i x0 = load(t), x1 = load(t + 1);
          const __m256i wlo = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb));
          const __m256i whi = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + CV));
          lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x1), wlo));
          hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x1), whi));
        }
        // lo = channels [0-3, 8-11], hi = [4-7, 12-15]: restore order.
        const __m256i acc0 = _mm256_permute2x128_si256(lo, hi, 0x20), acc1 = _mm256_permute2x128_si256(lo, hi, 0x31);
        const Cols16& k = cols[c0 / CV];
        if (kFull && e.plain) {
          store_row16_plain(acc0, acc1, k, e, static_cast<uint8_t*>(j.output) + m * C + c0);
        } else {
          store_row16(acc0, acc1, k, *j.ep, e, m, c0, count, j.output, C);
        }
      };
      for (int64_t c0 = 0; c0 < full; c0 += CV) block(std::true_type{}, c0, CV);
      if (full < C) block(std::false_type{}, full, C - full);
    }
  }
  scratch_free(zp_row);
  scratch_free(w);
}

}  // namespace

void depthwise_avx2(const DepthwiseJob& job, const ParallelFor& pf) {
  if (job.kh * job.kw > kMaxTaps) return depthwise_ref(job, pf);  // kernels beyond 8x8: reference
  run_parallel(pf, job.batch * job.out_h, const_cast<DepthwiseJob*>(&job), rows);
}

}  // namespace compress::kernels::detail
