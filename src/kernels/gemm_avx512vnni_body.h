// gemm_u8s8s32_avx512vnni_8x32: AVX-512 VNNI (vpdpbusd). The body of the
// kernel, compiled twice: natively by gemm_avx512vnni.cpp (AVX-512 flags on
// that file only), and against SIMD Everywhere by gemm_avx512vnni_simde.cpp,
// so that AVX2 machines run the same code through the same bit-exact tests.
// The includer provides the intrinsics and defines COMPRESS_VNNI_ENTRY, the
// name of the entry point.
// vpdpbusd adds four u8*s8 products straight into s32 with no intermediate
// saturation, so raw u8 activations and s8 weights are exact; no widening.
#include <algorithm>
#include <cstring>

#include "compress/kernels/packing_traits.h"
#include "epilogue_avx512.h"
#include "internal.h"

namespace compress::kernels::detail {
namespace {

constexpr int64_t MR = Avx512VnniTraits::MR;
constexpr int64_t NR = Avx512VnniTraits::NR;

struct Ctx {
  const GemmJob* job;
  int32_t* apack;  // [strips][kq][MR]: a[m][4q..4q+3] as four u8 in one int32
  int64_t kq, strips, panels, strips_per_block, panels_per_block, mblocks;
};

void pack_a(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const int64_t K = j.B->k();
  for (int64_t s = begin; s < end; ++s) {
    auto* dst = reinterpret_cast<uint8_t*>(c.apack + s * c.kq * MR);
    for (int64_t i = 0; i < MR; ++i) {
      const int64_t m = s * MR + i;
      for (int64_t q = 0; q < c.kq; ++q)
        for (int64_t t = 0; t < 4; ++t) {
          const int64_t k = q * 4 + t;
          dst[(q * MR + i) * 4 + t] = (m < j.M && k < K) ? j.A[m * j.lda + k] : 0;
        }
    }
  }
}

// 16 columns n0.. of row m through the epilogue.
void store16(__m512i acc, const GemmJob& j, const Ep512& e, int64_t m, int64_t n0) {
  const Columns16 c(j, n0);
  if (c.any) store_row16(acc, c, j, e, m);
}

void compute(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const Ep512 e(*j.ep);
  const auto* bdata = reinterpret_cast<const int8_t*>(j.B->data());
  for (int64_t item = begin; item < end; ++item) {
    const int64_t nb = item / c.mblocks, mb = item % c.mblocks;
    const int64_t s_end = std::min(c.strips, (mb + 1) * c.strips_per_block);
    const int64_t p_end = std::min(c.panels, (nb + 1) * c.panels_per_block);
    for (int64_t s = mb * c.strips_per_block; s < s_end; ++s)
      for (int64_t p = nb * c.panels_per_block; p < p_end; ++p) {
        __m512i acc[MR][2];
        for (int64_t i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
        const int32_t* a = c.apack + s * c.kq * MR;
        const int8_t* b = bdata + p * c.kq * NR * 4;
        for (int64_t q = 0; q < c.kq; ++q) {
          const __m512i b0 = _mm512_loadu_si512(b);
          const __m512i b1 = _mm512_loadu_si512(b + 64);
          for (int64_t i = 0; i < MR; ++i) {
            const __m512i x = _mm512_set1_epi32(a[i]);
            acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], x, b0);
            acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], x, b1);
          }
          a += MR;
          b += NR * 4;
        }
        const int64_t rows = std::min<int64_t>(MR, j.M - s * MR);
        for (int64_t i = 0; i < rows; ++i) {
          store16(acc[i][0], j, e, s * MR + i, p * NR);
          store16(acc[i][1], j, e, s * MR + i, p * NR + 16);
        }
      }
  }
}

}  // namespace

void COMPRESS_VNNI_ENTRY(const GemmJob& job, const ParallelFor& pf) {
  Ctx c;
  c.job = &job;
  c.kq = job.B->k_pad() / 4;
  c.strips = (job.M + MR - 1) / MR;
  c.panels = job.B->n_pad() / NR;
  c.apack = static_cast<int32_t*>(scratch_alloc(c.strips * c.kq * MR * 4));
  run_parallel(pf, c.strips, &c, pack_a);
  c.strips_per_block = 8;
  c.panels_per_block = 2;
  c.mblocks = (c.strips + c.strips_per_block - 1) / c.strips_per_block;
  int64_t nblocks = (c.panels + c.panels_per_block - 1) / c.panels_per_block;
  if (c.mblocks * nblocks < 16) {
    c.panels_per_block = 1;
    nblocks = c.panels;
  }
  run_parallel(pf, c.mblocks * nblocks, &c, compute);
  scratch_free(c.apack);
}

}  // namespace compress::kernels::detail
