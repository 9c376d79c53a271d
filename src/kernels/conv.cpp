// Convolution dispatch: 1x1 as a plain GEMM, k x k by a direct kernel where
// one takes the shape (reading a padded copy of the input) or via im2col in
// row chunks (bounded scratch), depthwise through its own kernel; sparse
// weights through the same im2col and the sparse GEMM.
#include "compress/kernels/conv.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compress/error.h"
#include "compress/kernels/packing_traits.h"
#include "compress/kernels/sparse.h"
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

// Copies n bytes for the short runs of im2col (a 3-channel tap is 3 bytes, a
// 7-tap stem row 21): two overlapping fixed-size moves instead of a library
// call, which costs more than such a copy. Reads and writes only [0, n).
inline void copy_run(uint8_t* dst, const uint8_t* src, int64_t n) {
  if (n >= 16 && n <= 32) {
    uint8_t head[16], tail[16];
    std::memcpy(head, src, 16);
    std::memcpy(tail, src + n - 16, 16);
    std::memcpy(dst, head, 16);
    std::memcpy(dst + n - 16, tail, 16);
  } else if (n >= 8 && n < 16) {
    uint64_t head, tail;
    std::memcpy(&head, src, 8);
    std::memcpy(&tail, src + n - 8, 8);
    std::memcpy(dst, &head, 8);
    std::memcpy(dst + n - 8, &tail, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t head, tail;
    std::memcpy(&head, src, 4);
    std::memcpy(&tail, src + n - 4, 4);
    std::memcpy(dst, &head, 4);
    std::memcpy(dst + n - 4, &tail, 4);
  } else if (n < 4) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  } else {
    std::memcpy(dst, src, static_cast<size_t>(n));
  }
}

// The im2col row of output pixel (b, oh, ow), K bytes at dst. In NHWC the kw
// taps of one kernel row are kw * C contiguous bytes when the dilation is 1,
// so a window row that lies inside the image is one copy (3 per 3x3 window
// instead of 9; for a C = 3 stem that is what makes im2col cheap).
inline void fill_window(const Im2col& c, int64_t b, int64_t oh, int64_t ow, uint8_t* dst) {
  const ConvGeometry& g = *c.g;
  const int64_t C = c.W->c_in(), kh = c.W->kh(), kw = c.W->kw();
  const int64_t iw0 = ow * g.stride_w - g.pad_w, ih0 = oh * g.stride_h - g.pad_h;
  const bool row_inside = g.dil_w == 1 && iw0 >= 0 && iw0 + kw <= g.width;
  if (row_inside && ih0 >= 0 && ih0 + (kh - 1) * g.dil_h < g.height) {
    // The whole window is inside the image (most rows): kh runs, fixed stride.
    const int64_t run = kw * C, step = g.dil_h * g.width * C;
    const uint8_t* src = c.input + ((b * g.height + ih0) * g.width + iw0) * C;
    for (int64_t y = 0; y < kh; ++y, src += step, dst += run) copy_run(dst, src, run);
    return;
  }
  const uint8_t zp = static_cast<uint8_t>(c.W->a_zero_point());
  for (int64_t y = 0; y < kh; ++y) {
    const int64_t ih = ih0 + y * g.dil_h;
    if (ih < 0 || ih >= g.height) {
      std::memset(dst, zp, static_cast<size_t>(kw * C));
      dst += kw * C;
      continue;
    }
    const uint8_t* in_row = c.input + (b * g.height + ih) * g.width * C;
    if (row_inside) {
      copy_run(dst, in_row + iw0 * C, kw * C);
      dst += kw * C;
      continue;
    }
    for (int64_t x = 0; x < kw; ++x, dst += C) {
      const int64_t iw = iw0 + x * g.dil_w;
      if (iw < 0 || iw >= g.width)
        std::memset(dst, zp, static_cast<size_t>(C));
      else
        copy_run(dst, in_row + iw * C, C);
    }
  }
}

// Rows m0 .. m0 + count - 1 of the implicit im2col matrix, `ld` bytes apart:
// the pixel index is divided once, then stepped (a division per row cost as
// much as a C = 3 stem row's MACs).
void im2col_strip(const void* vctx, int64_t m0, int64_t count, uint8_t* dst, int64_t ld) {
  const Im2col& c = *static_cast<const Im2col*>(vctx);
  const int64_t row = m0 / c.ow;
  int64_t ow = m0 - row * c.ow, b = row / c.oh, oh = row - b * c.oh;
  for (int64_t r = 0; r < count; ++r, dst += ld) {
    fill_window(c, b, oh, ow, dst);
    if (++ow == c.ow) {
      ow = 0;
      if (++oh == c.oh) {
        oh = 0;
        ++b;
      }
    }
  }
}

// Parallel im2col into a buffer (for kernels that read A as a matrix).
void im2col_rows(void* vctx, int64_t begin, int64_t end) {
  const Im2col& c = *static_cast<Im2col*>(vctx);
  const int64_t K = c.W->k();
  im2col_strip(&c, c.row0 + begin, end - begin, c.buf + begin * K, K);
}

// The output's height and width, after the checks both convolutions make.
std::pair<int64_t, int64_t> output_size(const ConvGeometry& g, const PackedView& W, const Epilogue& ep,
                                        const std::string& fn) {
  if (g.batch < 0 || g.height <= 0 || g.width <= 0 || g.stride_h <= 0 || g.stride_w <= 0 || g.pad_h < 0 ||
      g.pad_w < 0 || g.dil_h <= 0 || g.dil_w <= 0)
    bad_input(fn + ": bad geometry (sizes, strides and dilations must be positive, padding >= 0)");
  if (ep.scale == nullptr) bad_input(fn + ": the epilogue needs a per-channel scale");
  const int64_t oh = conv_output_size(g.height, W.kh(), g.stride_h, g.pad_h, g.dil_h);
  const int64_t ow = conv_output_size(g.width, W.kw(), g.stride_w, g.pad_w, g.dil_w);
  if (oh <= 0 || ow <= 0) bad_input(fn + ": the kernel is larger than the padded input");
  return {oh, ow};
}

// The GEMM over a block of im2col rows: dense (gemm_u8s8s32) or sparse.
using GemmFn = void (*)(int64_t, const uint8_t*, int64_t, const PackedView&, void*, int64_t, const Epilogue&,
                        const ParallelFor&, Isa);

// The M output pixels as blocks of `chunk` im2col rows: each block gathered
// into one buffer (in parallel), then multiplied; the residual and output
// pointers advance with the block.
void im2col_in_chunks(const uint8_t* input, const ConvGeometry& g, const PackedView& W, int64_t oh, int64_t ow,
                      int64_t chunk, GemmFn gemm, void* output, const Epilogue& ep, const ParallelFor& pf, Isa isa) {
  const int64_t M = g.batch * oh * ow, N = W.n(), K = W.k();
  // Not zeroed: im2col writes every byte the GEMM reads (a std::vector
  // cleared up to 4 MiB on every call).
  const std::unique_ptr<uint8_t[]> buf(new uint8_t[static_cast<size_t>(std::min(M, chunk) * K)]);
  const int64_t esz = ep.out == OutType::f32 ? 4 : 1;
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    Im2col c{input, &g, &W, oh, ow, r0, buf.get()};
    detail::run_parallel(pf, rows, &c, im2col_rows);
    Epilogue e = ep;
    if (ep.residual) e.residual = static_cast<const uint8_t*>(ep.residual) + r0 * ep.ld_residual * esz;
    gemm(rows, buf.get(), K, W, static_cast<uint8_t*>(output) + r0 * N * esz, N, e, pf, isa);
  }
}

}  // namespace

int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dil) {
  return (in + 2 * pad - dil * (kernel - 1) - 1) / stride + 1;
}

void conv2d_u8s8(const uint8_t* input, const ConvGeometry& g, const PackedView& W, void* output,
                 const Epilogue& ep, const ParallelFor& pf, Isa isa) {
  if (W.kind() != PackedKind::conv && W.kind() != PackedKind::depthwise)
    bad_input("conv2d_u8s8: the packed weight is not a convolution weight");
  if (is_storage_layout(W.layout()))
    return conv2d_u8s8(input, g, detail::Unstored(W, isa).view(), output, ep, pf, isa);
  const auto [oh, ow] = output_size(g, W, ep, "conv2d_u8s8");
  const int64_t kh = W.kh(), kw = W.kw();
  const int64_t M = g.batch * oh * ow, N = W.n();
  if (M == 0) return;

  if (W.kind() == PackedKind::depthwise) {
    std::vector<float> scale(W.n_pad() + 16, 0.f), bias(W.n_pad() + 16, 0.f);
    std::memcpy(scale.data(), ep.scale, static_cast<size_t>(N) * 4);
    if (ep.bias) std::memcpy(bias.data(), ep.bias, static_cast<size_t>(N) * 4);
    detail::DepthwiseJob j{input, g.batch, g.height, g.width, N, kh, kw, g.stride_h, g.stride_w,
                           g.pad_h, g.pad_w, g.dil_h, g.dil_w, oh, ow, &W, output, &ep,
                           scale.data(), bias.data()};
    const bool vnni_allowed = static_cast<int>(isa) >= static_cast<int>(Isa::avx512vnni);
#ifdef COMPRESS_VNNI_SIMDE  // test library: the VNNI kernel's source on AVX2
    if (vnni_allowed && cpu_supports(Isa::avx2)) return detail::depthwise_avx512vnni_simde(j, pf);
#else  // also under amx: no tile kernel for depthwise
    if (vnni_allowed && cpu_supports(Isa::avx512vnni)) return detail::depthwise_avx512vnni(j, pf);
#endif
    if (static_cast<int>(isa) >= static_cast<int>(Isa::avx2) && cpu_supports(Isa::avx2))
      detail::depthwise_avx2(j, pf);
    else
      detail::depthwise_ref(j, pf);
    return;
  }

  const int64_t C = W.c_in(), K = W.k();
  if (kh == 1 && kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0)
    return gemm_u8s8s32(M, input, C, W, output, N, ep, pf, isa);  // NHWC rows are the GEMM's A
  if (layout_needs_7bit_activations(W.layout()))  // im2col rows are copies of these bytes
    detail::require_7bit_activations(input, 1, g.batch * g.height * g.width * C, 0, "conv2d_u8s8");

  // Direct paths read a padded copy of the input, no im2col at all: AMX's A
  // tiles (stride 1, channels a multiple of 64; the stride-2 stems), VNNI's
  // window quads (the stems, small stride-1 layers; internal.h).
  if (detail::conv_direct(input, g, W, output, ep, pf, isa)) return;
  // Kernels that take row functions gather im2col rows while packing A: no
  // im2col buffer and no extra pass.
  {
    Im2col c{input, &g, &W, oh, ow, 0, nullptr};
    if (detail::gemm_u8s8s32_rows(M, im2col_strip, &c, W, output, N, ep, pf, isa)) return;
  }
  // Otherwise: chunks of about 4 MiB of im2col rows, a multiple of the AVX2 row tile.
  const int64_t chunk = std::max<int64_t>(Avx2Traits::MR * 16, (int64_t{4} << 20) / K / 48 * 48);
  im2col_in_chunks(input, g, W, oh, ow, chunk, gemm_u8s8s32, output, ep, pf, isa);
}

void sparse_conv2d_u8s8(const uint8_t* input, const ConvGeometry& g, const PackedView& W, void* output,
                        const Epilogue& ep, const ParallelFor& pf, Isa isa) {
  if (W.kind() != PackedKind::sparse_1x4 && W.kind() != PackedKind::sparse_2_4)
    bad_input("sparse_conv2d_u8s8: the packed weight is not a sparse (1x4 or 2:4) weight");
  const auto [oh, ow] = output_size(g, W, ep, "sparse_conv2d_u8s8");
  const int64_t kh = W.kh(), kw = W.kw();
  const int64_t M = g.batch * oh * ow, N = W.n(), K = W.k();
  if (M == 0) return;
  if (kh == 1 && kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0)
    return sparse_gemm_u8s8s32(M, input, W.c_in(), W, output, N, ep, pf, isa);
  // The sparse kernels transpose 32 rows of A at a time and walk every kept
  // block of the weight over them, so the block of im2col rows is written
  // and read back while it is in L2: about 256 KiB, a multiple of 32 rows.
  const int64_t chunk = std::max<int64_t>(32, (int64_t{256} << 10) / K / 32 * 32);
  im2col_in_chunks(input, g, W, oh, ow, chunk, sparse_gemm_u8s8s32, output, ep, pf, isa);
}

namespace detail {

int16_t* interleave_depthwise_pairs(const PackedView& W, int64_t taps, int64_t lanes, int64_t blocks) {
  const int64_t pairs = (taps + 1) / 2, c_pad = W.n_pad(), n = W.n(), block = lanes * 8;
  const bool s16 = W.layout() == Layout::depthwise_s16;
  auto weight = [&](int64_t t, int64_t ch) -> int16_t {
    if (t >= taps || ch >= n) return 0;
    return s16 ? reinterpret_cast<const int16_t*>(W.data())[t * c_pad + ch]
               : static_cast<int16_t>(reinterpret_cast<const int8_t*>(W.data())[t * c_pad + ch]);
  };
  auto* out = static_cast<int16_t*>(scratch_alloc(pairs * blocks * 2 * block * 2, false));
  int16_t* dst = out;
  for (int64_t p = 0; p < pairs; ++p)
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t half = 0; half < 2; ++half)  // lo, hi
        for (int64_t lane = 0; lane < lanes; ++lane)
          for (int64_t i = 0; i < 4; ++i) {
            const int64_t ch = b * block + lane * 8 + half * 4 + i;
            *dst++ = weight(2 * p, ch);
            *dst++ = weight(2 * p + 1, ch);
          }
  return out;
}

}  // namespace detail
}  // namespace compress::kernels
