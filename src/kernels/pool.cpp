// max_pool2d_u8: NHWC, one output row per work item. The channel loop is a
// plain byte max over contiguous memory, which the compiler vectorises; the
// layer is memory bound, so no ISA-specific version is needed.
#include "compress/kernels/pool.h"

#include <algorithm>
#include <cstring>
#include <string>

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
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / j.oh, y = row % j.oh;
    for (int64_t x = 0; x < j.ow; ++x) {
      uint8_t* __restrict dst = j.output + (row * j.ow + x) * C;
      std::memset(dst, 0, static_cast<size_t>(C));  // 0 is the smallest code
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = y * g.stride_h - g.pad_h + i * g.dil_h;
        if (ih < 0 || ih >= g.height) continue;
        for (int64_t t = 0; t < g.kw; ++t) {
          const int64_t iw = x * g.stride_w - g.pad_w + t * g.dil_w;
          if (iw < 0 || iw >= g.width) continue;
          const uint8_t* __restrict src = j.input + ((b * g.height + ih) * g.width + iw) * C;
          for (int64_t c = 0; c < C; ++c) dst[c] = std::max(dst[c], src[c]);
        }
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
