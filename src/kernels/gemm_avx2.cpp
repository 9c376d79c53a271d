// gemm_u8s8s32_avx2_6x16c2_s16 and _s8: AVX2 + FMA, compiled with -mavx2 -mfma (this file only).
//
// The exact fallback of the AVX2 u8 path (gemm_avx2_u8.cpp): vpmaddubsw adds
// two u8*s8 products into a *saturating* s16 (255*127*2 = 64770 > 32767).
// Here both operands are widened to s16 (weights at pack time, activations
// while packing A) and vpmaddwd is exact for every input with no weight
// clipping. The packer picks this layout when clipping would need too many
// corrections (e.g. uniform random weights). Its price, measured on this
// machine: about half the multiply throughput of the u8 path (vpmaddwd issues
// about once per cycle, 16 MACs) and 2x the bytes of A. The weights are
// stored either as s16 (avx2_n16k2_s16, the first form) or as s8 in the same
// order (avx2_n16k2_s8, what the packer writes now), widened by vpmovsxbw as
// each panel row is loaded: one more instruction per 12 vpmaddwd, and the
// saved model is half the size.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "epilogue_avx2.h"
#include "internal.h"
#include "compress/kernels/packing_traits.h"

namespace compress::kernels::detail {
namespace {

constexpr int64_t MR = Avx2Traits::MR;
constexpr int64_t NR = Avx2Traits::NR;

struct Ctx {
  const GemmJob* job;
  int32_t* apack;  // [strips][kp][MR]: (a[m][2p], a[m][2p+1]) as two s16 in one int32
  int64_t kp, strips, panels;
  int64_t strips_per_block, panels_per_block, mblocks, nblocks;
};

void pack_a(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const int64_t K = j.B->k();
  for (int64_t s = begin; s < end; ++s) {
    int32_t* dst = c.apack + s * c.kp * MR;
    for (int64_t i = 0; i < MR; ++i) {
      const int64_t m = s * MR + i;
      if (m >= j.M) {
        for (int64_t p = 0; p < c.kp; ++p) dst[p * MR + i] = 0;
        continue;
      }
      const uint8_t* a = j.A + m * j.lda;
      int64_t p = 0;
      for (; p < K / 2; ++p) dst[p * MR + i] = static_cast<int32_t>(a[2 * p] | (a[2 * p + 1] << 16));
      if (K % 2) dst[p * MR + i] = a[2 * p];
    }
  }
}

// One k-pair row of a weight panel (16 columns x 2 k) as s16: b0 = columns
// 0-7, b1 = columns 8-15.
inline void load_panel_row(const int16_t* b, __m256i& b0, __m256i& b1) {
  b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
  b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
}
inline void load_panel_row(const int8_t* b, __m256i& b0, __m256i& b1) {
  b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
  b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
}

// acc[i][0..1] += sum_p a[p][i] * b[p][0..15] over kp k-pairs.
template <typename W>
inline void microkernel(const int32_t* a, const W* b, int64_t kp, __m256i acc[MR][2]) {
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t p = 0; p < kp; ++p) {
    __m256i b0, b1;
    load_panel_row(b, b0, b1);
    __m256i x = _mm256_set1_epi32(a[0]);
    c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x, b0));
    c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x, b1));
    x = _mm256_set1_epi32(a[1]);
    c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(x, b0));
    c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(x, b1));
    x = _mm256_set1_epi32(a[2]);
    c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(x, b0));
    c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(x, b1));
    x = _mm256_set1_epi32(a[3]);
    c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(x, b0));
    c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(x, b1));
    x = _mm256_set1_epi32(a[4]);
    c40 = _mm256_add_epi32(c40, _mm256_madd_epi16(x, b0));
    c41 = _mm256_add_epi32(c41, _mm256_madd_epi16(x, b1));
    x = _mm256_set1_epi32(a[5]);
    c50 = _mm256_add_epi32(c50, _mm256_madd_epi16(x, b0));
    c51 = _mm256_add_epi32(c51, _mm256_madd_epi16(x, b1));
    a += MR;
    b += 2 * NR;
  }
  acc[0][0] = c00; acc[0][1] = c01; acc[1][0] = c10; acc[1][1] = c11;
  acc[2][0] = c20; acc[2][1] = c21; acc[3][0] = c30; acc[3][1] = c31;
  acc[4][0] = c40; acc[4][1] = c41; acc[5][0] = c50; acc[5][1] = c51;
}

void store_tile(const GemmJob& j, const EpAvx2& e, __m256i acc[MR][2], int64_t m0, int64_t n0) {
  const int64_t count = std::min<int64_t>(NR, j.B->n() - n0);
  const int64_t rows = std::min<int64_t>(MR, j.M - m0);
  for (int64_t i = 0; i < rows; ++i)
    store_row16(acc[i][0], acc[i][1], j.B->comp(), j.scale, j.bias, *j.ep, e, m0 + i, n0, count, j.C, j.ldc);
}

template <typename W>
void compute(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const EpAvx2 e(*j.ep);
  const auto* bdata = reinterpret_cast<const W*>(j.B->data());
  __m256i acc[MR][2];
  for (int64_t item = begin; item < end; ++item) {
    // n-block major: consecutive items of one thread reuse the same weight
    // panels (kept in L2) while the A strips stream past.
    const int64_t nb = item / c.mblocks, mb = item % c.mblocks;
    const int64_t s_end = std::min(c.strips, (mb + 1) * c.strips_per_block);
    const int64_t p_end = std::min(c.panels, (nb + 1) * c.panels_per_block);
    for (int64_t s = mb * c.strips_per_block; s < s_end; ++s)
      for (int64_t p = nb * c.panels_per_block; p < p_end; ++p) {
        microkernel(c.apack + s * c.kp * MR, bdata + p * c.kp * 2 * NR, c.kp, acc);
        store_tile(j, e, acc, s * MR, p * NR);
      }
  }
}

template <typename W>
void run(const GemmJob& job, const ParallelFor& pf) {
  Ctx c;
  c.job = &job;
  c.kp = job.B->k_pad() / 2;
  c.strips = (job.M + MR - 1) / MR;
  c.panels = job.B->n_pad() / NR;
  c.apack = static_cast<int32_t*>(scratch_alloc(c.strips * c.kp * MR * 4));
  run_parallel(pf, c.strips, &c, pack_a);
  c.strips_per_block = 8;
  c.panels_per_block = 4;
  c.mblocks = (c.strips + c.strips_per_block - 1) / c.strips_per_block;
  c.nblocks = (c.panels + c.panels_per_block - 1) / c.panels_per_block;
  if (c.mblocks * c.nblocks < 16) {  // small problems: finer n-blocks so every core gets work
    c.panels_per_block = 1;
    c.nblocks = c.panels;
  }
  run_parallel(pf, c.mblocks * c.nblocks, &c, compute<W>);
  scratch_free(c.apack);
}

}  // namespace

void gemm_avx2_6x16(const GemmJob& job, const ParallelFor& pf) { run<int16_t>(job, pf); }
void gemm_avx2_6x16_s8(const GemmJob& job, const ParallelFor& pf) { run<int8_t>(job, pf); }

}  // namespace compress::kernels::detail
