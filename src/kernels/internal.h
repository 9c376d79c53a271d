#pragma once
// Private to src/kernels: the per-ISA entry points and the scalar epilogue.
// Everything here that has a body is `static` so that a translation unit built
// with -mavx2 or -mavx512* never donates its copy to another one (an inline
// function compiled with AVX2 could otherwise be picked by the linker for the
// reference path and fault on an older CPU).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>

#include "compress/kernels/conv.h"
#include "compress/kernels/gemm.h"

namespace compress::kernels::detail {

// Writes rows m0 .. m0 + count - 1 of A (K bytes each, `ld` bytes apart) to
// dst, e.g. im2col rows of a convolution assembled on the fly.
using RowsFn = void (*)(const void* ctx, int64_t m0, int64_t count, uint8_t* dst, int64_t ld);

struct GemmJob {
  int64_t M;
  const uint8_t* A;
  int64_t lda;
  const PackedView* B;
  void* C;
  int64_t ldc;
  const Epilogue* ep;
  const float* scale;  // n_pad floats, padded copies of ep->scale / ep->bias (0 beyond n)
  const float* bias;
  RowsFn rows = nullptr;  // when set, rows of A come from rows(row_ctx, ...), A is unused
  const void* row_ctx = nullptr;
};

// Parallel loop through a plain function pointer, so ISA translation units
// never instantiate std::function themselves (see above).
using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);
void run_parallel(const ParallelFor& pf, int64_t n, void* ctx, RangeFn fn);

// Scratch memory allocated outside the ISA units (64-byte aligned; zeroed
// unless the caller writes every byte itself).
void* scratch_alloc(int64_t bytes, bool zeroed = true);
void scratch_free(void* p);

// A weight in the storage form (Layout::stored_s8) packed for `isa`, in
// 64-byte aligned scratch: what a kernel entry point handed one computes
// with, packing it on every call (the ops pack it once and keep it).
class Unstored {
 public:
  Unstored(const PackedView& stored, Isa isa);
  PackedView view() const { return PackedView(bytes_.get(), size_); }

 private:
  std::unique_ptr<uint8_t, void (*)(void*)> bytes_{nullptr, scratch_free};
  int64_t size_ = 0;
};

void gemm_ref(const GemmJob& job, const int8_t* w_rowmajor, const ParallelFor& pf);
void gemm_avx2_6x16(const GemmJob& job, const ParallelFor& pf);    // s16 vpmaddwd, exact for any weight
void gemm_avx2_6x16_s8(const GemmJob& job, const ParallelFor& pf);  // the same, weights stored as s8
void gemm_avx2_6x16c4(const GemmJob& job, const ParallelFor& pf);  // u8 vpmaddubsw + correction, honours job.row
void gemm_avx2_4x16c8_u7(const GemmJob& job, const ParallelFor& pf);  // same for activations <= 127, 3/4 the multiplies

// True if no byte of the rows x cols bytes at p (rows `stride` apart) exceeds 127.
bool bytes_fit_7bit(const uint8_t* p, int64_t rows, int64_t cols, int64_t stride);
bool bytes_fit_7bit_avx2(const uint8_t* p, int64_t rows, int64_t cols, int64_t stride);
// BadInput naming `what` unless the activations fit the 7-bit layout.
void require_7bit_activations(const uint8_t* p, int64_t rows, int64_t cols, int64_t stride, const char* what);

// GEMM whose A rows come from a RowsFn (implicit im2col). Returns false,
// computing nothing, when the weight's kernel does not take row functions.
bool gemm_u8s8s32_rows(int64_t M, RowsFn rows, const void* row_ctx, const PackedView& B, void* C, int64_t ldc,
                       const Epilogue& ep, const ParallelFor& pf, Isa isa);
void gemm_avx512vnni_8x32(const GemmJob& job, const ParallelFor& pf);
void gemm_avx512vnni_8x32_simde(const GemmJob& job, const ParallelFor& pf);  // SIMDe test build only
void gemm_amx_32x32(const GemmJob& job, const ParallelFor& pf);  // vnni_n32k4_s8 on AMX tiles, honours job.rows
// Stride-1, undilated convolution with c_in a multiple of 64 on AMX, A tiles
// read in place from a padded copy of the input (no im2col). job.M, A, rows
// are unused. Returns false, computing nothing, if the shape does not qualify.
bool conv_amx_direct(const uint8_t* input, int64_t batch, int64_t height, int64_t width, int64_t pad_h,
                     int64_t pad_w, const GemmJob& job, const ParallelFor& pf);
// A stride-2 stem with c_in <= 4 (resnet's 7x7 on RGB) as a stride-1
// convolution over a space-to-depth form of the input: input pixels
// (2Y + i, 2X + j), i, j in {0, 1}, make one kS2dPixel-byte pixel (four
// 4-byte slots), and the weight is rearranged to match (stem_s2d_weight in
// gemm.cpp: ceil(kh / 2) rows of 4 taps of 16 bytes, zeros where the 7x7
// kernel has no tap). Each kernel row is then one 64-byte k-block (4 for a
// 7x7 instead of im2col's 3 for K = 147), and the A rows are built with one
// byte permute per 64 bytes (the copy holds, per output pixel, the 4 pixels
// each kernel row reads; 64-byte aligned tile rows) instead of seven short
// copies per 147-byte im2col row, which cost more than the tile multiplies.
// job.B is the rearranged weight.
constexpr int64_t kS2dPixel = 16;
void conv_amx_stem_s2d(const uint8_t* input, int64_t batch, int64_t height, int64_t width, int64_t channels,
                       int64_t pad_h, int64_t pad_w, int64_t out_h, int64_t out_w, const GemmJob& job,
                       const ParallelFor& pf);
// A convolution on AVX-512 VNNI without im2col rows, for the stems (1 to 4
// input channels: their 9- or 27-byte rows cost more to gather than to
// multiply) and small stride-1 layers (gemm.cpp, row_quads_applies). The
// weight is rearranged so that each kernel row's kw * C bytes start a new
// 4-byte quad (row_quads quads a row, zero weights past kw * C), and the
// input is copied once with its zero-point border (hp x wp pixels an image,
// kRowQuadSlack bytes more at the end); quad (y, q) of an output pixel is
// then the 4 bytes quad_offset[y * row_quads + q] past its window's first
// byte in the copy, broadcast from there. Zero weights make the bytes a quad
// reads past its kernel row (the next pixel's) count for nothing, so the
// compensation is the original weight's. gemm.M is batch x out_h x out_w,
// gemm.B the rearranged weight (kh x 1 taps of 4 row_quads channels).
constexpr int64_t kRowQuadSlack = 64;
// The input of a direct convolution copied with its zero-point border
// (images of hp x wp pixels, `input` the first image's first byte).
struct FillCtx {
  const uint8_t* input;
  uint8_t* copy;
  int64_t h, w, c, hp, wp, pad_h, pad_w;
  uint8_t zp;
};
// Padded rows [begin, end) of the copy, image-major (a RangeFn on a FillCtx).
void pad_rows(void* vctx, int64_t begin, int64_t end);
struct RowQuadConvJob {
  const uint8_t* padded;
  int64_t hp, wp, channels;
  int64_t stride_h, stride_w;
  int64_t out_h, out_w;
  int64_t kh, row_quads;
  const int64_t* quad_offset;  // kh x row_quads
  GemmJob gemm;
};
void conv_row_quads_avx512vnni(const RowQuadConvJob& job, const ParallelFor& pf);
void conv_row_quads_avx512vnni_simde(const RowQuadConvJob& job, const ParallelFor& pf);  // SIMDe test build only
// conv2d_u8s8's direct paths, which read the input without im2col rows:
// conv_amx_direct (or the AMX stem) when `isa` and the CPU allow the AMX
// kernel for W, conv_row_quads_avx512vnni for the convolutions it takes
// on VNNI; false (nothing computed) otherwise.
bool conv_direct(const uint8_t* input, const ConvGeometry& g, const PackedView& W, void* output,
                 const Epilogue& ep, const ParallelFor& pf, Isa isa);

// The same bytes as quantize_f32_u8's scalar loop, 32 values per step; does
// the whole blocks of 32 and returns how many values that was.
// The LSTM / GRU cells (rnn_cell.h) for whole blocks of 8 channels; return the count done.
int64_t lstm_cell_f32_avx2(const float* gi, const float* gh, int64_t H, float* c, float* h);
int64_t gru_cell_f32_avx2(const float* gi, const float* gh, int64_t H, float* h);
// max |x[i]| over whole blocks of 8 (returns the count done in *done); NaN when any value is NaN.
float max_abs_f32_avx2(const float* x, int64_t n, int64_t* done);
int64_t quantize_f32_u8_avx2(const float* x, int64_t n, float scale, int32_t zero_point, uint8_t* q,
                             int32_t quant_max);
// The same bytes for three planes (channels) interleaved into pixels:
// q[3 * i + c] = code of planes[c][i]; whole blocks of 32 pixels, returns the count done.
int64_t quantize_f32_u8_planes3_avx2(const float* const planes[3], int64_t n, float scale, int32_t zero_point,
                                     uint8_t* q, int32_t quant_max);

void sparse_ref(const GemmJob& job, const int8_t* w_rowmajor, const ParallelFor& pf);
void sparse_1x4_avx2(const GemmJob& job, const ParallelFor& pf);
void sparse_2_4_avx2(const GemmJob& job, const ParallelFor& pf);
void sparse_1x4_avx512vnni(const GemmJob& job, const ParallelFor& pf);
void sparse_1x4_avx512vnni_simde(const GemmJob& job, const ParallelFor& pf);  // SIMDe test build only

struct DepthwiseJob {
  const uint8_t* input;
  int64_t batch, height, width, channels;
  int64_t kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out_h, out_w;
  const PackedView* W;
  void* output;
  const Epilogue* ep;
  const float* scale;
  const float* bias;
};
// Prefetch for a depthwise kernel walking output row (b, oh) left to right:
// the input rows the next output row reads first (below this window's last
// row), a few cache lines at every output pixel, when the input is larger
// than the caches near the core. At batch 32 a layer's input is tens of MB,
// and the hardware prefetcher, which follows the rows being read, starts
// each new row cold (docs/performance.md, "Depthwise on AVX-512"); a small
// input is in cache already and the prefetches would only cost instructions.
// (In an unnamed namespace: each ISA unit keeps its own copy, as above.)
namespace {
class NextRowsPrefetch {
 public:
  NextRowsPrefetch(const DepthwiseJob& j, int64_t b, int64_t oh) {
    const int64_t row_bytes = j.width * j.channels;
    const int64_t ih0 = oh * j.stride_h - j.pad_h;
    const int64_t first = std::max<int64_t>(ih0 + (j.kh - 1) * j.dil_h + 1, 0);
    const int64_t last = std::min<int64_t>(ih0 + j.stride_h + (j.kh - 1) * j.dil_h, j.height - 1);
    if (j.batch * j.height * row_bytes <= (int64_t{2} << 20) || oh + 1 >= j.out_h || first > last) return;
    next_ = j.input + (b * j.height + first) * row_bytes;
    end_ = j.input + (b * j.height + last + 1) * row_bytes;
    lines_per_pixel_ = ((last + 1 - first) * row_bytes / 64 + j.out_w - 1) / j.out_w;
  }
  // Before computing `pixels` output pixels.
  void ahead(int64_t pixels) {
    for (int64_t n = lines_per_pixel_ * pixels; n > 0 && next_ < end_; --n, next_ += 64) __builtin_prefetch(next_, 0, 3);
  }

 private:
  const uint8_t* next_ = nullptr;
  const uint8_t* end_ = nullptr;
  int64_t lines_per_pixel_ = 0;
};
}  // namespace
// The depthwise kernels' weights as tap pairs (t, t + 1), interleaved the
// way _mm256/_mm512_unpacklo/hi_epi16 interleave two taps' widened
// activations, so the inner loops read ready operands: per block of `lanes`
// 128-bit lanes (8 channels each), lo holds channels 8L..8L+3 of every lane L
// and hi 8L+4..8L+7, each as (w_t, w_t+1); laid out [pair][block] -> lo, hi.
// Read once per call from the packed [taps][c_pad] weight (s8, or the older
// s16 padded to tap pairs); channels past n and an odd last tap's partner are
// zero. Scratch memory: the caller frees it (scratch_free).
int16_t* interleave_depthwise_pairs(const PackedView& W, int64_t taps, int64_t lanes, int64_t blocks);
void depthwise_ref(const DepthwiseJob& job, const ParallelFor& pf);
void depthwise_avx2(const DepthwiseJob& job, const ParallelFor& pf);
void depthwise_avx512vnni(const DepthwiseJob& job, const ParallelFor& pf);
void depthwise_avx512vnni_simde(const DepthwiseJob& job, const ParallelFor& pf);  // SIMDe test build only

// Clamp bounds of a u8/s8 output relative to its zero point, as the epilogue
// applies them to the rounded value: [lo, hi] = [max(qmin, zp if relu) - zp,
// qmax - zp], qmax = out_quant_max for u8. Every ISA's epilogue uses these.
struct OutputBounds {
  float lo, hi;
};
static inline OutputBounds output_bounds(const Epilogue& ep) {
  const int32_t qmin = ep.out == OutType::u8 ? 0 : -128, qmax = ep.out == OutType::u8 ? ep.out_quant_max : 127;
  const int32_t zp = ep.out_zero_point;
  return {static_cast<float>((ep.relu && zp > qmin ? zp : qmin) - zp), static_cast<float>(qmax - zp)};
}

// The epilogue of gemm.h for one element, in the exact float order the SIMD
// versions use (fma, then residual fma, then round/clamp).
static inline void epilogue_scalar(int32_t acc, int64_t m, int64_t n, const Epilogue& ep,
                                   const float* scale, const float* bias, void* C, int64_t ldc) {
  float y = std::fma(static_cast<float>(acc), scale[n], bias[n]);
  if (ep.residual) {
    float r;
    const int64_t at = m * ep.ld_residual + n;
    switch (ep.out) {
      case OutType::u8: r = static_cast<float>(static_cast<const uint8_t*>(ep.residual)[at] - ep.residual_zero_point); break;
      case OutType::s8: r = static_cast<float>(static_cast<const int8_t*>(ep.residual)[at] - ep.residual_zero_point); break;
      default: r = static_cast<const float*>(ep.residual)[at]; break;
    }
    y = std::fma(ep.residual_scale, r, y);
  }
  if (ep.out == OutType::f32) {
    if (ep.relu) y = (y > 0.f) ? y : 0.f;
    static_cast<float*>(C)[m * ldc + n] = y;
    return;
  }
  const int32_t zp = ep.out_zero_point;
  const auto [lo, hi] = output_bounds(ep);
  float r = std::nearbyint(y);
  r = (r > lo) ? r : lo;
  r = (r < hi) ? r : hi;
  const int32_t q = static_cast<int32_t>(r) + zp;
  if (ep.out == OutType::u8)
    static_cast<uint8_t*>(C)[m * ldc + n] = static_cast<uint8_t>(q);
  else
    static_cast<int8_t*>(C)[m * ldc + n] = static_cast<int8_t>(q);
}

}  // namespace compress::kernels::detail
