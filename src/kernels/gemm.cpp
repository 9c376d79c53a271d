// Dispatch: an ordered choice of kernels that ends in the reference. A kernel
// runs only if the CPU has its ISA, the caller allows that ISA, and the weight
// is packed in the layout it reads; otherwise the reference computes the same
// bits from an unpacked copy.
#include "compress/kernels/gemm.h"

#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "compress/error.h"
#include "compress/kernels/sparse.h"
#include "internal.h"

namespace compress::kernels {
namespace detail {

void run_parallel(const ParallelFor& pf, int64_t n, void* ctx, RangeFn fn) {
  if (n <= 0) return;
  pf(n, [ctx, fn](int64_t b, int64_t e) { fn(ctx, b, e); });
}

void* scratch_alloc(int64_t bytes, bool zeroed) {
  const size_t size = static_cast<size_t>((bytes + 63) / 64 * 64 + 64);
  void* p = std::aligned_alloc(64, size);
  if (p == nullptr) failure("kernels: out of memory allocating " + std::to_string(bytes) + " bytes of scratch");
  if (zeroed) std::memset(p, 0, size);
  return p;
}

void scratch_free(void* p) { std::free(p); }

Unstored::Unstored(const PackedView& stored, Isa isa) {
  const std::vector<uint8_t> blob = from_stored(stored, isa);
  size_ = static_cast<int64_t>(blob.size());
  bytes_.reset(static_cast<uint8_t*>(scratch_alloc(size_, false)));
  std::memcpy(bytes_.get(), blob.data(), blob.size());
}

bool bytes_fit_7bit(const uint8_t* p, int64_t rows, int64_t cols, int64_t stride) {
  if (cpu_supports(Isa::avx2)) return bytes_fit_7bit_avx2(p, rows, cols, stride);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t any = 0;
    for (int64_t i = 0; i < cols; ++i) any |= p[r * stride + i];
    if (any & 0x80) return false;
  }
  return true;
}

void require_7bit_activations(const uint8_t* p, int64_t rows, int64_t cols, int64_t stride, const char* what) {
  // One read of the activations (a few per cent of a small layer's time):
  // the alternative, wrong sums without a word, is worse.
  if (!bytes_fit_7bit(p, rows, cols, stride))
    bad_input(std::string(what) +
              ": an activation exceeds 127, but the weight is packed for 7-bit activations "
              "(layout avx2_n16k8_u7s8); quantize the input to 0..127 or pack the weight for u8");
}

}  // namespace detail

namespace {

// A kernel of level `isa` that needs `cpu` from the processor: the same ISA
// except for the emulated VNNI kernels of the SIMDe test build.
bool allowed(Isa isa, Isa cpu, Isa requested) {
  return static_cast<int>(isa) <= static_cast<int>(requested) && cpu_supports(cpu);
}

void check_epilogue(const Epilogue& ep, const char* what) {
  if (ep.scale == nullptr) bad_input(std::string(what) + ": the epilogue needs a per-channel scale");
  if (ep.out == OutType::u8 && (ep.out_zero_point < 0 || ep.out_zero_point > 255))
    bad_input(std::string(what) + ": u8 output zero point " + std::to_string(ep.out_zero_point) + " is outside 0..255");
  if (ep.out == OutType::u8 && (ep.out_quant_max < ep.out_zero_point || ep.out_quant_max > 255))
    bad_input(std::string(what) + ": u8 output quant max " + std::to_string(ep.out_quant_max) +
              " is outside out_zero_point..255");
  if (ep.out == OutType::s8 && (ep.out_zero_point < -128 || ep.out_zero_point > 127))
    bad_input(std::string(what) + ": s8 output zero point " + std::to_string(ep.out_zero_point) + " is outside -128..127");
}

struct Padded {
  std::vector<float> scale, bias;
  Padded(const Epilogue& ep, int64_t n, int64_t n_pad) : scale(n_pad + 16, 0.f), bias(n_pad + 16, 0.f) {
    std::memcpy(scale.data(), ep.scale, static_cast<size_t>(n) * 4);
    if (ep.bias) std::memcpy(bias.data(), ep.bias, static_cast<size_t>(n) * 4);
  }
};

// The dense kernels: the layout each reads and the ISA it needs. One table
// answers gemm_kernel_name, gemm_u8s8s32 and gemm_u8s8s32_rows alike.
struct DenseKernel {
  Layout layout;
  Isa isa;  // the level a caller must allow
  Isa cpu;  // what the processor must have to run it
  const char* name;
  void (*run)(const detail::GemmJob&, const ParallelFor&);
  bool takes_rows;  // reads A through GemmJob::rows (implicit im2col)
  // The same ISA's direct convolution (RowQuadConvJob), if it has one.
  void (*row_quads)(const detail::RowQuadConvJob&, const ParallelFor&);
};
constexpr DenseKernel kDenseKernels[] = {
    {Layout::avx2_n16k2_s16, Isa::avx2, Isa::avx2, "gemm_u8s8s32_avx2_6x16c2_s16", detail::gemm_avx2_6x16, false, nullptr},
    {Layout::avx2_n16k2_s8, Isa::avx2, Isa::avx2, "gemm_u8s8s32_avx2_6x16c2_s8", detail::gemm_avx2_6x16_s8, false, nullptr},
    {Layout::avx2_n16k4_u8s8, Isa::avx2, Isa::avx2, "gemm_u8s8s32_avx2_6x16c4", detail::gemm_avx2_6x16c4, true, nullptr},
    {Layout::avx2_n16k8_u7s8, Isa::avx2, Isa::avx2, "gemm_u8s8s32_avx2_4x16c8_u7", detail::gemm_avx2_4x16c8_u7, true, nullptr},
#ifdef COMPRESS_VNNI_SIMDE
    // Test library only (src/kernels/CMakeLists.txt): the VNNI kernel's source
    // compiled against SIMD Everywhere, run where the CPU has AVX2.
    {Layout::vnni_n32k4_s8, Isa::avx512vnni, Isa::avx2, "gemm_u8s8s32_avx512vnni_8x32_simde",
     detail::gemm_avx512vnni_8x32_simde, true, detail::conv_row_quads_avx512vnni_simde},
#else
    // First match wins: AMX where the caller allows it and the CPU has it.
    {Layout::vnni_n32k4_s8, Isa::amx, Isa::amx, "gemm_u8s8s32_amx_32x32", detail::gemm_amx_32x32, true, nullptr},
    {Layout::vnni_n32k4_s8, Isa::avx512vnni, Isa::avx512vnni, "gemm_u8s8s32_avx512vnni_8x32",
     detail::gemm_avx512vnni_8x32, true, detail::conv_row_quads_avx512vnni},
#endif
};

// The kernel for B's layout that `isa` allows and the CPU runs, or nullptr
// (the reference then computes the same bits).
const DenseKernel* dense_kernel(const PackedView& B, Isa isa) {
  for (const DenseKernel& k : kDenseKernels)
    if (B.layout() == k.layout && allowed(k.isa, k.cpu, isa)) return &k;
  return nullptr;
}

// The sparse kernels, in the same way: first match wins.
struct SparseKernel {
  PackedKind kind;
  Isa isa, cpu;
  const char* name;
  void (*run)(const detail::GemmJob&, const ParallelFor&);
};
constexpr SparseKernel kSparseKernels[] = {
#ifdef COMPRESS_VNNI_SIMDE
    {PackedKind::sparse_1x4, Isa::avx512vnni, Isa::avx2, "spmm_u8s8s32_1x4_avx512vnni_32_simde",
     detail::sparse_1x4_avx512vnni_simde},
#else
    // Also under amx: no AMX sparse kernel, and VNNI beats the AVX2 one.
    {PackedKind::sparse_1x4, Isa::avx512vnni, Isa::avx512vnni, "spmm_u8s8s32_1x4_avx512vnni_32",
     detail::sparse_1x4_avx512vnni},
#endif
    {PackedKind::sparse_1x4, Isa::avx2, Isa::avx2, "spmm_u8s8s32_1x4_avx2_32", detail::sparse_1x4_avx2},
    {PackedKind::sparse_2_4, Isa::avx2, Isa::avx2, "spmm_u8s8s32_2of4_avx2_32", detail::sparse_2_4_avx2},
};

const SparseKernel* sparse_kernel(const PackedView& W, Isa isa) {
  for (const SparseKernel& k : kSparseKernels)
    if (W.kind() == k.kind && allowed(k.isa, k.cpu, isa)) return &k;
  return nullptr;
}

}  // namespace

const char* gemm_kernel_name(const PackedView& B, Isa isa) {
  const DenseKernel* k = dense_kernel(B, isa);
  return k ? k->name : "gemm_u8s8s32_ref";
}

void gemm_u8s8s32(int64_t M, const uint8_t* A, int64_t lda, const PackedView& B, void* C,
                  int64_t ldc, const Epilogue& ep, const ParallelFor& pf, Isa isa) {
  if (B.kind() != PackedKind::gemm && B.kind() != PackedKind::conv)
    bad_input("gemm_u8s8s32: the packed weight is not a dense GEMM weight");
  if (is_storage_layout(B.layout()))
    return gemm_u8s8s32(M, A, lda, detail::Unstored(B, isa).view(), C, ldc, ep, pf, isa);
  if (M < 0 || lda < B.k() || ldc < B.n()) bad_input("gemm_u8s8s32: bad M, lda or ldc");
  check_epilogue(ep, "gemm_u8s8s32");
  if (M == 0) return;
  // Every ISA refuses what the 7-bit layout cannot take, not only the kernel
  // that would get it wrong, so a model behaves the same wherever it runs.
  if (layout_needs_7bit_activations(B.layout())) detail::require_7bit_activations(A, M, B.k(), lda, "gemm_u8s8s32");
  Padded pad(ep, B.n(), B.n_pad());
  detail::GemmJob job{M, A, lda, &B, C, ldc, &ep, pad.scale.data(), pad.bias.data()};
  if (const DenseKernel* k = dense_kernel(B, isa)) return k->run(job, pf);
  const std::vector<int8_t> w = unpack_weight_rowmajor(B);
  detail::gemm_ref(job, w.data(), pf);
}

namespace detail {

void pad_rows(void* vctx, int64_t begin, int64_t end) {
  const FillCtx& p = *static_cast<FillCtx*>(vctx);
  for (int64_t r = begin; r < end; ++r) {
    const int64_t b = r / p.hp, y = r % p.hp - p.pad_h;
    uint8_t* dst = p.copy + r * p.wp * p.c;
    if (y < 0 || y >= p.h) {
      std::memset(dst, p.zp, static_cast<size_t>(p.wp * p.c));
      continue;
    }
    std::memset(dst, p.zp, static_cast<size_t>(p.pad_w * p.c));
    std::memcpy(dst + p.pad_w * p.c, p.input + (b * p.h + y) * p.w * p.c, static_cast<size_t>(p.w * p.c));
    std::memset(dst + (p.pad_w + p.w) * p.c, p.zp, static_cast<size_t>((p.wp - p.pad_w - p.w) * p.c));
  }
}

bool gemm_u8s8s32_rows(int64_t M, RowsFn rows, const void* row_ctx, const PackedView& B, void* C, int64_t ldc,
                       const Epilogue& ep, const ParallelFor& pf, Isa isa) {
  const DenseKernel* k = dense_kernel(B, isa);
  if (k == nullptr || !k->takes_rows) return false;
  check_epilogue(ep, "gemm_u8s8s32");
  if (M == 0) return true;
  Padded pad(ep, B.n(), B.n_pad());
  GemmJob job{M, nullptr, B.k(), &B, C, ldc, &ep, pad.scale.data(), pad.bias.data(), rows, row_ctx};
  k->run(job, pf);  // for the 7-bit layout the caller checked the activations the rows come from
  return true;
}

namespace {

// A packed blob at a 64-byte boundary (B tile rows that straddle cache lines
// cost a 3x3 layer ~1.4x its time).
struct AlignedBlob {
  std::unique_ptr<uint8_t, void (*)(void*)> bytes{nullptr, scratch_free};
  int64_t size = 0;
};

AlignedBlob aligned_copy(const std::vector<uint8_t>& packed) {
  AlignedBlob out;
  out.size = static_cast<int64_t>(packed.size());
  out.bytes.reset(static_cast<uint8_t*>(scratch_alloc(out.size, false)));
  std::memcpy(out.bytes.get(), packed.data(), packed.size());
  return out;
}

// A weight rearranged for one of the direct paths.
using Rearrange = AlignedBlob (*)(const PackedView&);

// rearrange(W), remembered for the last few weights (a model calls the same
// stem every forward). An entry matches on the blob's bytes, not its
// address, so a freed and reused address cannot return a stale weight.
std::shared_ptr<const AlignedBlob> rearranged_weight(const PackedView& W, Rearrange rearrange) {
  struct Entry {
    Rearrange how;
    std::vector<uint8_t> original;
    std::shared_ptr<const AlignedBlob> rearranged;
  };
  static std::mutex mutex;
  static std::deque<Entry> cache;
  constexpr size_t kEntries = 8;
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (const Entry& e : cache)
      if (e.how == rearrange && static_cast<int64_t>(e.original.size()) == W.bytes() &&
          std::memcmp(e.original.data(), W.blob(), e.original.size()) == 0)
        return e.rearranged;
  }
  auto rearranged = std::make_shared<const AlignedBlob>(rearrange(W));
  std::lock_guard<std::mutex> lock(mutex);
  cache.push_back({rearrange, std::vector<uint8_t>(W.blob(), W.blob() + W.bytes()), rearranged});
  if (cache.size() > kEntries) cache.pop_front();
  return rearranged;
}

// Quads a kernel row takes in the direct path's weight.
int64_t row_quads_of(const PackedView& W) { return (W.kw() * W.c_in() + 3) / 4; }

// The weight for RowQuadConvJob: W'[o][y][0][r] = W[o][y][x][c] at r = x C + c
// (zero for r >= kw C), packed as a kh x 1 convolution over 4 row_quads
// channels in W's own layout.
AlignedBlob rearrange_row_quads_weight(const PackedView& W) {
  const int64_t n = W.n(), kh = W.kh(), row = 4 * row_quads_of(W), run = W.kw() * W.c_in();
  const std::vector<int8_t> w = unpack_weight_rowmajor(W);
  std::vector<int8_t> w2(static_cast<size_t>(n * kh * row), 0);
  for (int64_t o = 0; o < n; ++o)
    for (int64_t y = 0; y < kh; ++y)
      std::memcpy(&w2[(o * kh + y) * row], &w[o * W.k() + y * run], static_cast<size_t>(run));
  return aligned_copy(pack_conv_u8s8(w2.data(), n, kh, 1, row, W.a_zero_point(), W.layout()));
}

// Convolutions the direct path takes, all with undilated kernel rows (each
// one run of bytes in NHWC): up to 4 input channels (the stems: their im2col
// rows are a few short copies each, which cost more than their multiplies),
// and stride-1 layers with kernel rows of whole quads and K up to 576 (a
// 3x3 over 64 channels), where it was 5-15% faster than gathering im2col
// rows (docs/performance.md). With larger K, or stride 2, gathering the
// rows into a compact block was faster.
bool row_quads_applies(const ConvGeometry& g, const PackedView& W) {
  if (W.kind() != PackedKind::conv || g.dil_w != 1) return false;
  if (W.c_in() <= 4) return true;
  return (W.kw() * W.c_in()) % 4 == 0 && g.stride_w == 1 && g.stride_h == 1 && W.k() <= 576;
}

void conv_row_quads(const uint8_t* input, const ConvGeometry& g, const PackedView& W, void* output,
                  const Epilogue& ep, const ParallelFor& pf, const DenseKernel& kernel) {
  check_epilogue(ep, "conv2d_u8s8");
  // Kernel rows of whole quads are already laid out so (k = (y kw + x) C + c,
  // no quad straddles two rows): the weight runs as it is. Otherwise (the
  // stems) it is rearranged, once per weight.
  std::shared_ptr<const AlignedBlob> w2;
  if ((W.kw() * W.c_in()) % 4 != 0) w2 = rearranged_weight(W, rearrange_row_quads_weight);
  const PackedView W2 = w2 ? PackedView(w2->bytes.get(), w2->size) : W;
  const int64_t C = W.c_in(), hp = g.height + 2 * g.pad_h, wp = g.width + 2 * g.pad_w;
  const int64_t image = hp * wp * C;
  const std::unique_ptr<uint8_t, void (*)(void*)> padded(
      static_cast<uint8_t*>(scratch_alloc(g.batch * image + kRowQuadSlack, false)), scratch_free);
  const auto zp = static_cast<uint8_t>(W.a_zero_point());
  FillCtx copy{input, padded.get(), g.height, g.width, C, hp, wp, g.pad_h, g.pad_w, zp};
  run_parallel(pf, g.batch * hp, &copy, pad_rows);
  std::memset(padded.get() + g.batch * image, zp, kRowQuadSlack);  // read only by zero weights

  Padded pad(ep, W2.n(), W2.n_pad());
  RowQuadConvJob job;
  job.padded = padded.get();
  job.hp = hp;
  job.wp = wp;
  job.channels = C;
  job.stride_h = g.stride_h;
  job.stride_w = g.stride_w;
  job.out_h = conv_output_size(g.height, W.kh(), g.stride_h, g.pad_h, g.dil_h);
  job.out_w = conv_output_size(g.width, W.kw(), g.stride_w, g.pad_w, g.dil_w);
  job.kh = W.kh();
  job.row_quads = row_quads_of(W);
  std::vector<int64_t> quad_offset(static_cast<size_t>(job.kh * job.row_quads));
  for (int64_t y = 0; y < job.kh; ++y)
    for (int64_t q = 0; q < job.row_quads; ++q) quad_offset[y * job.row_quads + q] = y * g.dil_h * wp * C + 4 * q;
  job.quad_offset = quad_offset.data();
  job.gemm = GemmJob{g.batch * job.out_h * job.out_w, nullptr, W2.k(), &W2, output, W2.n(), &ep,
                     pad.scale.data(), pad.bias.data()};
  kernel.row_quads(job, pf);
}

}  // namespace

#ifndef COMPRESS_VNNI_SIMDE  // the SIMDe test library has no AMX kernel
namespace {

// The stem weight rearranged for conv_amx_stem_s2d: W'[o][a][b][i][j][c4] =
// W[o][2a + i][2b + j][c] (zero where 2a + i >= kh, 2b + j >= kw or c >= C),
// packed as a ceil(kh / 2) x 4 convolution over 16 channels. The zeros add
// nothing, so its compensation equals the original's.
AlignedBlob rearrange_stem_weight(const PackedView& W) {
  const int64_t n = W.n(), kh = W.kh(), kw = W.kw(), C = W.c_in(), taps_h = (kh + 1) / 2;
  const std::vector<int8_t> w = unpack_weight_rowmajor(W);
  const int64_t k2 = taps_h * 4 * kS2dPixel;
  std::vector<int8_t> w2(static_cast<size_t>(n * k2), 0);
  for (int64_t o = 0; o < n; ++o)
    for (int64_t y = 0; y < kh; ++y)
      for (int64_t x = 0; x < kw; ++x)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t a = y / 2, i = y % 2, b = x / 2, j = x % 2;
          w2[o * k2 + (a * 4 + b) * kS2dPixel + (i * 2 + j) * 4 + c] = w[o * W.k() + (y * kw + x) * C + c];
        }
  return aligned_copy(pack_conv_u8s8(w2.data(), n, taps_h, 4, kS2dPixel, W.a_zero_point(), W.layout()));
}

// Stems that conv_amx_stem_s2d takes: stride 2, no dilation, at most 4
// channels and kernel rows of 7 or 8 taps (4 taps of the copy: one k-block).
// The copy is built with vpermt2b (AVX-512 VBMI: every AMX CPU has it).
bool stem_s2d_applies(const ConvGeometry& g, const PackedView& W) {
  return __builtin_cpu_supports("avx512vbmi") && g.stride_h == 2 && g.stride_w == 2 && g.dil_h == 1 &&
         g.dil_w == 1 && W.c_in() <= 4 && (W.kw() + 1) / 2 == 4;
}

}  // namespace
#endif

bool conv_direct(const uint8_t* input, const ConvGeometry& g, const PackedView& W, void* output,
                 const Epilogue& ep, const ParallelFor& pf, Isa isa) {
  const DenseKernel* k = dense_kernel(W, isa);
  if (k == nullptr) return false;
  if (k->row_quads != nullptr && row_quads_applies(g, W)) {
    conv_row_quads(input, g, W, output, ep, pf, *k);
    return true;
  }
#ifdef COMPRESS_VNNI_SIMDE
  return false;  // the SIMDe test library has no AMX kernel
#else
  if (k->run != gemm_amx_32x32) return false;
  if (stem_s2d_applies(g, W)) {
    check_epilogue(ep, "conv2d_u8s8");
    const std::shared_ptr<const AlignedBlob> w2 = rearranged_weight(W, rearrange_stem_weight);
    const PackedView W2(w2->bytes.get(), w2->size);
    Padded pad(ep, W2.n(), W2.n_pad());
    GemmJob job{0, nullptr, W2.k(), &W2, output, W2.n(), &ep, pad.scale.data(), pad.bias.data()};
    const int64_t oh = conv_output_size(g.height, W.kh(), 2, g.pad_h, 1);
    const int64_t ow = conv_output_size(g.width, W.kw(), 2, g.pad_w, 1);
    conv_amx_stem_s2d(input, g.batch, g.height, g.width, W.c_in(), g.pad_h, g.pad_w, oh, ow, job, pf);
    return true;
  }
  if (g.stride_h != 1 || g.stride_w != 1 || g.dil_h != 1 || g.dil_w != 1) return false;
  check_epilogue(ep, "conv2d_u8s8");
  Padded pad(ep, W.n(), W.n_pad());
  GemmJob job{0, nullptr, W.k(), &W, output, W.n(), &ep, pad.scale.data(), pad.bias.data()};
  return conv_amx_direct(input, g.batch, g.height, g.width, g.pad_h, g.pad_w, job, pf);
#endif
}

}  // namespace detail

const char* sparse_kernel_name(const PackedView& W, Isa isa) {
  const SparseKernel* k = sparse_kernel(W, isa);
  return k ? k->name : "spmm_u8s8s32_ref";
}

void sparse_gemm_u8s8s32(int64_t M, const uint8_t* A, int64_t lda, const PackedView& W, void* C,
                         int64_t ldc, const Epilogue& ep, const ParallelFor& pf, Isa isa) {
  if (W.kind() != PackedKind::sparse_1x4 && W.kind() != PackedKind::sparse_2_4)
    bad_input("sparse_gemm_u8s8s32: the packed weight is not a sparse (1x4 or 2:4) weight");
  if (M < 0 || lda < W.k() || ldc < W.n()) bad_input("sparse_gemm_u8s8s32: bad M, lda or ldc");
  check_epilogue(ep, "sparse_gemm_u8s8s32");
  if (M == 0) return;
  Padded pad(ep, W.n(), W.n_pad());
  detail::GemmJob job{M, A, lda, &W, C, ldc, &ep, pad.scale.data(), pad.bias.data()};
  if (const SparseKernel* k = sparse_kernel(W, isa)) return k->run(job, pf);
  const std::vector<int8_t> w = unpack_weight_rowmajor(W);
  detail::gemm_ref(job, w.data(), pf);
}

}  // namespace compress::kernels
