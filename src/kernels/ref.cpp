// Reference kernels: plain loops, no ISA flags. They define the results every
// other variant must reproduce bit for bit.
#include <algorithm>
#include <cmath>
#include <vector>

#include "compress/kernels/quantize.h"
#include "internal.h"

namespace compress::kernels {
namespace detail {
namespace {

struct RefCtx {
  const GemmJob* job;
  const int8_t* w;
};

void ref_rows(void* vctx, int64_t begin, int64_t end) {
  const RefCtx& c = *static_cast<RefCtx*>(vctx);
  const GemmJob& j = *c.job;
  const int64_t N = j.B->n(), K = j.B->k();
  const int32_t* comp = j.B->comp();
  for (int64_t m = begin; m < end; ++m) {
    const uint8_t* a = j.A + m * j.lda;
    for (int64_t n = 0; n < N; ++n) {
      const int8_t* w = c.w + n * K;
      int32_t acc = comp[n];
      for (int64_t k = 0; k < K; ++k) acc += static_cast<int32_t>(a[k]) * w[k];
      epilogue_scalar(acc, m, n, *j.ep, j.scale, j.bias, j.C, j.ldc);
    }
  }
}

template <typename W>
void depthwise_rows(void* vctx, int64_t begin, int64_t end) {
  const DepthwiseJob& j = *static_cast<DepthwiseJob*>(vctx);
  const int64_t C = j.channels, taps = j.kh * j.kw, c_pad = j.W->n_pad();
  const auto* w = reinterpret_cast<const W*>(j.W->data());
  const int32_t* comp = j.W->comp();
  const int32_t azp = j.W->a_zero_point();
  for (int64_t row = begin; row < end; ++row) {  // row = (b, oh)
    const int64_t b = row / j.out_h, oh = row % j.out_h;
    for (int64_t ow = 0; ow < j.out_w; ++ow) {
      const int64_t m = row * j.out_w + ow;
      for (int64_t c = 0; c < C; ++c) {
        int32_t acc = comp[c];
        for (int64_t t = 0; t < taps; ++t) {
          const int64_t ih = oh * j.stride_h - j.pad_h + (t / j.kw) * j.dil_h;
          const int64_t iw = ow * j.stride_w - j.pad_w + (t % j.kw) * j.dil_w;
          const int32_t x = (ih < 0 || ih >= j.height || iw < 0 || iw >= j.width)
                                ? azp
                                : j.input[((b * j.height + ih) * j.width + iw) * C + c];
          acc += x * w[t * c_pad + c];
        }
        epilogue_scalar(acc, m, c, *j.ep, j.scale, j.bias, j.output, C);
      }
    }
  }
}

}  // namespace

void gemm_ref(const GemmJob& job, const int8_t* w_rowmajor, const ParallelFor& pf) {
  RefCtx c{&job, w_rowmajor};
  run_parallel(pf, job.M, &c, ref_rows);
}

void depthwise_ref(const DepthwiseJob& job, const ParallelFor& pf) {
  const bool s16 = job.W->layout() == Layout::depthwise_s16;
  run_parallel(pf, job.batch * job.out_h, const_cast<DepthwiseJob*>(&job),
               s16 ? depthwise_rows<int16_t> : depthwise_rows<int8_t>);
}

}  // namespace detail

void quantize_f32_u8(const float* x, int64_t n, float scale, int32_t zero_point, uint8_t* q, int32_t quant_max) {
  // Without SSE4.1 (the baseline build) nearbyint is a libm call per value:
  // AVX2 takes whole blocks of 32, this loop the rest.
  const int64_t done =
      cpu_supports(Isa::avx2) ? detail::quantize_f32_u8_avx2(x, n, scale, zero_point, q, quant_max) : 0;
  const float inv = 1.f / scale, hi = static_cast<float>(quant_max);
  for (int64_t i = done; i < n; ++i) {
    float v = std::nearbyint(x[i] * inv) + static_cast<float>(zero_point);
    v = v > 0.f ? v : 0.f;
    v = v < hi ? v : hi;
    q[i] = static_cast<uint8_t>(v);
  }
}

float max_abs_f32(const float* x, int64_t n) {
  int64_t done = 0;
  float best = cpu_supports(Isa::avx2) ? detail::max_abs_f32_avx2(x, n, &done) : 0.f;
  if (std::isnan(best)) return best;
  for (int64_t i = done; i < n; ++i) {
    const float v = std::fabs(x[i]);
    if (std::isnan(v)) return v;
    best = v > best ? v : best;
  }
  return best;
}

void quantize_f32_u8_nchw_to_nhwc(const float* x, int64_t c, int64_t h, int64_t w, int64_t row_begin,
                                  int64_t row_end, float scale, int32_t zero_point, uint8_t* q, int32_t quant_max) {
  std::vector<uint8_t> plane_row(static_cast<size_t>(w));
  const bool rgb_avx2 = c == 3 && cpu_supports(Isa::avx2);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t b = row / h, y = row % h;
    uint8_t* out = q + row * w * c;
    int64_t done = 0;
    if (rgb_avx2) {  // an RGB image row: quantized and interleaved in registers
      const float* planes[3];
      for (int64_t ch = 0; ch < 3; ++ch) planes[ch] = x + ((b * c + ch) * h + y) * w;
      done = detail::quantize_f32_u8_planes3_avx2(planes, w, scale, zero_point, out, quant_max);
    }
    if (done == w) continue;
    for (int64_t ch = 0; ch < c; ++ch) {
      // One contiguous plane row through the (vectorised) quantizer, then
      // interleaved: the strided reads of a direct transpose cost more.
      quantize_f32_u8(x + ((b * c + ch) * h + y) * w + done, w - done, scale, zero_point, plane_row.data(), quant_max);
      for (int64_t i = done; i < w; ++i) out[i * c + ch] = plane_row[static_cast<size_t>(i - done)];
    }
  }
}

void dequantize_u8_f32(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(static_cast<int32_t>(q[i]) - zero_point) * scale;
}

}  // namespace compress::kernels
