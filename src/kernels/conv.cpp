// Convolution dispatch: 1x1 as a plain GEMM, k x k via im2col in row chunks
// (bounded scratch), depthwise through its own kernel.
#include "compress/kernels/conv.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "compress/error.h"
#include "compress/kernels/packing_traits.h"
#include "internal.h"

namespace compress::kernels {
namespace {

struct Im2col {
  const uint8_t* input;
  const ConvGeometry* g;
  const PackedView* W;
  int64_t oh, ow, row0;
  uint8_t* buf;
};

void im2col_rows(void* vctx, int64_t begin, int64_t end) {
  const Im2col& c = *static_cast<Im2col*>(vctx);
  const ConvGeometry& g = *c.g;
  const int64_t C = c.W->c_in(), kh = c.W->kh(), kw = c.W->kw(), K = kh * kw * C;
  const uint8_t zp = static_cast<uint8_t>(c.W->a_zero_point());
  for (int64_t r = begin; r < end; ++r) {
    const int64_t m = c.row0 + r;
    const int64_t b = m / (c.oh * c.ow), oh = (m / c.ow) % c.oh, ow = m % c.ow;
    uint8_t* dst = c.buf + r * K;
    for (int64_t y = 0; y < kh; ++y)
      for (int64_t x = 0; x < kw; ++x, dst += C) {
        const int64_t ih = oh * g.stride_h - g.pad_h + y * g.dil_h;
        const int64_t iw = ow * g.stride_w - g.pad_w + x * g.dil_w;
        if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width)
          std::memset(dst, zp, static_cast<size_t>(C));
        else
          std::memcpy(dst, c.input + ((b * g.height + ih) * g.width + iw) * C, static_cast<size_t>(C));
      }
  }
}

// Row m of the implicit im2col matrix, assembled in `scratch` (or, for an
// unpadded 1x1 kernel, a pointer straight into the input pixel).
const uint8_t* im2col_row(const void* vctx, int64_t m, uint8_t* scratch) {
  const Im2col& c = *static_cast<const Im2col*>(vctx);
  const ConvGeometry& g = *c.g;
  const int64_t C = c.W->c_in(), kh = c.W->kh(), kw = c.W->kw();
  const int64_t b = m / (c.oh * c.ow), oh = (m / c.ow) % c.oh, ow = m % c.ow;
  if (kh == 1 && kw == 1 && g.pad_h == 0 && g.pad_w == 0)
    return c.input + ((b * g.height + oh * g.stride_h) * g.width + ow * g.stride_w) * C;
  const uint8_t zp = static_cast<uint8_t>(c.W->a_zero_point());
  uint8_t* dst = scratch;
  for (int64_t y = 0; y < kh; ++y)
    for (int64_t x = 0; x < kw; ++x, dst += C) {
      const int64_t ih = oh * g.stride_h - g.pad_h + y * g.dil_h;
      const int64_t iw = ow * g.stride_w - g.pad_w + x * g.dil_w;
      const bool pad = ih < 0 || ih >= g.height || iw < 0 || iw >= g.width;
      const uint8_t* src = pad ? nullptr : c.input + ((b * g.height + ih) * g.width + iw) * C;
      if (C <= 4) {
        // Stem layers (C = 3): a library memcpy call per 3-byte tap costs more than the copy.
        for (int64_t q = 0; q < C; ++q) dst[q] = pad ? zp : src[q];
      } else if (pad) {
        std::memset(dst, zp, static_cast<size_t>(C));
      } else {
        std::memcpy(dst, src, static_cast<size_t>(C));
      }
    }
  return scratch;
}

}  // namespace

int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dil) {
  return (in + 2 * pad - dil * (kernel - 1) - 1) / stride + 1;
}

void conv2d_u8s8(const uint8_t* input, const ConvGeometry& g, const PackedView& W, void* output,
                 const Epilogue& ep, const ParallelFor& pf, Isa isa) {
  if (W.kind() != PackedKind::conv && W.kind() != PackedKind::depthwise)
    bad_input("conv2d_u8s8: the packed weight is not a convolution weight");
  if (g.batch < 0 || g.height <= 0 || g.width <= 0 || g.stride_h <= 0 || g.stride_w <= 0 || g.pad_h < 0 ||
      g.pad_w < 0 || g.dil_h <= 0 || g.dil_w <= 0)
    bad_input("conv2d_u8s8: bad geometry (sizes, strides and dilations must be positive, padding >= 0)");
  if (ep.scale == nullptr) bad_input("conv2d_u8s8: the epilogue needs a per-channel scale");
  const int64_t kh = W.kh(), kw = W.kw();
  const int64_t oh = conv_output_size(g.height, kh, g.stride_h, g.pad_h, g.dil_h);
  const int64_t ow = conv_output_size(g.width, kw, g.stride_w, g.pad_w, g.dil_w);
  if (oh <= 0 || ow <= 0) bad_input("conv2d_u8s8: the kernel is larger than the padded input");
  const int64_t M = g.batch * oh * ow, N = W.n();
  if (M == 0) return;

  if (W.kind() == PackedKind::depthwise) {
    std::vector<float> scale(W.n_pad() + 16, 0.f), bias(W.n_pad() + 16, 0.f);
    std::memcpy(scale.data(), ep.scale, static_cast<size_t>(N) * 4);
    if (ep.bias) std::memcpy(bias.data(), ep.bias, static_cast<size_t>(N) * 4);
    detail::DepthwiseJob j{input, g.batch, g.height, g.width, N, kh, kw, g.stride_h, g.stride_w,
                           g.pad_h, g.pad_w, g.dil_h, g.dil_w, oh, ow, &W, output, &ep,
                           scale.data(), bias.data()};
    if (static_cast<int>(isa) >= static_cast<int>(Isa::avx2) && cpu_supports(Isa::avx2))
      detail::depthwise_avx2(j, pf);
    else
      detail::depthwise_ref(j, pf);
    return;
  }

  const int64_t C = W.c_in(), K = W.k();
  if (kh == 1 && kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0)
    return gemm_u8s8s32(M, input, C, W, output, N, ep, pf, isa);  // NHWC rows are the GEMM's A

  // Kernels that take row functions gather im2col rows while packing A: no
  // im2col buffer and no extra pass.
  {
    Im2col c{input, &g, &W, oh, ow, 0, nullptr};
    if (detail::gemm_u8s8s32_rows(M, im2col_row, &c, W, output, N, ep, pf, isa)) return;
  }
  // Otherwise: chunks of about 4 MiB of im2col rows, a multiple of the AVX2 row tile.
  const int64_t chunk = std::max<int64_t>(Avx2Traits::MR * 16, (int64_t{4} << 20) / K / 48 * 48);
  std::vector<uint8_t> buf(static_cast<size_t>(std::min(M, chunk) * K));
  const int64_t esz = ep.out == OutType::f32 ? 4 : 1;
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    Im2col c{input, &g, &W, oh, ow, r0, buf.data()};
    detail::run_parallel(pf, rows, &c, im2col_rows);
    Epilogue e = ep;
    if (ep.residual) e.residual = static_cast<const uint8_t*>(ep.residual) + r0 * ep.ld_residual * esz;
    gemm_u8s8s32(rows, buf.data(), K, W, static_cast<uint8_t*>(output) + r0 * N * esz, N, e, pf, isa);
  }
}

}  // namespace compress::kernels
