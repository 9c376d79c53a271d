// max_pool2d_u8: NHWC, one output row per work item. The channel loop is a
// byte max over contiguous memory (SSE2, which every x86-64 has); the layer
// is memory bound, so no ISA-specific version is needed.
#include "compress/kernels/pool.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "compress/error.h"
#include "internal.h"

namespace compress::kernels {
namespace {

struct PoolJob {
  const uint8_t* input;
  const PoolGeometry* g;
  uint8_t* output;
  int64_t oh, ow;
};

void pool_rows(void* vctx, int64_t begin, int64_t end) {
  const PoolJob& j = *static_cast<PoolJob*>(vctx);
  const PoolGeometry& g = *j.g;
  const int64_t C = g.channels;
  std::vector<const uint8_t*> taps(static_cast<size_t>(g.kh * g.kw));
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / j.oh, y = row % j.oh;
    for (int64_t x = 0; x < j.ow; ++x) {
      // The window's pixels inside the image (padding taps are skipped: -inf).
      size_t n = 0;
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = y * g.stride_h - g.pad_h + i * g.dil_h;
        if (ih < 0 || ih >= g.height) continue;
        for (int64_t t = 0; t < g.kw; ++t) {
          const int64_t iw = x * g.stride_w - g.pad_w + t * g.dil_w;
          if (iw >= 0 && iw < g.width) taps[n++] = j.input + ((b * g.height + ih) * g.width + iw) * C;
        }
      }
      uint8_t* dst = j.output + (row * j.ow + x) * C;
      int64_t c = 0;
#if defined(__SSE2__)
      // SSE2 is part of x86-64: 64 channels in four registers across all
      // taps, one store (a read-modify-write of dst per tap would chain
      // through store forwarding).
      for (; c + 64 <= C; c += 64) {
        __m128i m0 = _mm_setzero_si128(), m1 = m0, m2 = m0, m3 = m0;
        for (size_t t = 0; t < n; ++t) {
          const auto* p = reinterpret_cast<const __m128i*>(taps[t] + c);
          m0 = _mm_max_epu8(m0, _mm_loadu_si128(p));
          m1 = _mm_max_epu8(m1, _mm_loadu_si128(p + 1));
          m2 = _mm_max_epu8(m2, _mm_loadu_si128(p + 2));
          m3 = _mm_max_epu8(m3, _mm_loadu_si128(p + 3));
        }
        auto* q = reinterpret_cast<__m128i*>(dst + c);
        _mm_storeu_si128(q, m0);
        _mm_storeu_si128(q + 1, m1);
        _mm_storeu_si128(q + 2, m2);
        _mm_storeu_si128(q + 3, m3);
      }
      for (; c + 16 <= C; c += 16) {
        __m128i m = _mm_setzero_si128();
        for (size_t t = 0; t < n; ++t) m = _mm_max_epu8(m, _mm_loadu_si128(reinterpret_cast<const __m128i*>(taps[t] + c)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + c), m);
      }
#endif
      for (; c < C; ++c) {
        uint8_t m = 0;  // the smallest code
        for (size_t t = 0; t < n; ++t) m = std::max(m, taps[t][c]);
        dst[c] = m;
      }
    }
  }
}

}  // namespace

int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dil, bool ceil_mode) {
  if (in <= 0 || kernel <= 0 || stride <= 0 || dil <= 0 || pad < 0)
    bad_input("max_pool2d_u8: sizes, kernel, stride and dilation must be positive and padding non-negative");
  if (pad > kernel / 2)
    bad_input("max_pool2d_u8: padding " + std::to_string(pad) + " is more than half the kernel " +
              std::to_string(kernel));
  const int64_t span = in + 2 * pad - dil * (kernel - 1) - 1;
  if (span < 0) bad_input("max_pool2d_u8: the kernel is larger than the padded input");
  int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

void max_pool2d_u8(const uint8_t* input, const PoolGeometry& g, uint8_t* output, const ParallelFor& pf) {
  if (g.batch < 0 || g.channels <= 0) bad_input("max_pool2d_u8: batch must be >= 0 and channels positive");
  PoolJob j{input, &g, output, pool_output_size(g.height, g.kh, g.stride_h, g.pad_h, g.dil_h, g.ceil_mode),
            pool_output_size(g.width, g.kw, g.stride_w, g.pad_w, g.dil_w, g.ceil_mode)};
  detail::run_parallel(pf, g.batch * j.oh, &j, pool_rows);
}

}  // namespace compress::kernels
