// spmm_u8s8s32_1x4_avx2_16 and spmm_u8s8s32_2of4_avx2_16 (compiled with -mavx2 -mfma).
// Sparse weights are vectorised over M: A is transposed once into s16 rows
// At[k][m], and each kept weight pair (w_a, w_b) at columns (k_a, k_b) is one
// vpmaddwd of interleave(At[k_a], At[k_b]) with the broadcast pair: exact s32,
// 16 rows of A per pair of instructions, no work at all for pruned blocks.
#include <immintrin.h>

#include <algorithm>

#include "compress/kernels/packing_traits.h"
#include "epilogue_avx2.h"
#include "internal.h"

namespace compress::kernels::detail {
namespace {

constexpr int64_t MV = SparseAvx2Traits::MV;
constexpr int64_t kRowsPerItem = 32;  // output channels per work item

struct Ctx {
  const GemmJob* job;
  int16_t* at;    // 2:4: [k_pad][m_pad] s16
  int32_t* at2;   // 1x4: [k_pad/2][m_pad] int32 = (a[m][2p], a[m][2p+1]) as two s16
  int64_t m_pad, mchunks, nchunks;
};

// 1x4 blocks start at a multiple of 4, so their two k-pairs are aligned pairs:
// A is transposed once into pair rows and a block costs, per 8 rows of A,
// two loads and two vpmaddwd, with no shuffles.
constexpr int64_t kPairRows = 32;  // rows of A per pass: 4 accumulators of 8

void transpose_pairs(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const int64_t K = j.B->k();
  for (int64_t m = begin; m < end; ++m) {
    const uint8_t* a = j.A + m * j.lda;
    for (int64_t p = 0; p < (K + 1) / 2; ++p) {
      const uint32_t lo = a[2 * p], hi = (2 * p + 1 < K) ? a[2 * p + 1] : 0;
      c.at2[p * c.m_pad + m] = static_cast<int32_t>(lo | (hi << 16));
    }
  }
}

void transpose_a(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const int64_t K = j.B->k();
  for (int64_t m = begin; m < end; ++m) {
    const uint8_t* a = j.A + m * j.lda;
    for (int64_t k = 0; k < K; ++k) c.at[k * c.m_pad + m] = a[k];
  }
}

inline int32_t pair(int8_t lo, int8_t hi) {
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(lo))) |
                              (static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(hi))) << 16));
}

inline void madd_pair(const int16_t* at, int64_t m_pad, int64_t ka, int64_t kb, int32_t w,
                      __m256i& lo, __m256i& hi) {
  const __m256i xa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + ka * m_pad));
  const __m256i xb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + kb * m_pad));
  const __m256i wv = _mm256_set1_epi32(w);
  lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(xa, xb), wv));
  hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(xa, xb), wv));
}

// Column n of C for rows m0..m0+15: lo holds rows [0-3, 8-11], hi rows [4-7, 12-15].
void store_column(const GemmJob& j, const EpAvx2& e, __m256i lo, __m256i hi, int64_t m0, int64_t n) {
  const Epilogue& ep = *j.ep;
  const __m256i comp = _mm256_set1_epi32(j.B->comp()[n]);
  const __m256i a0 = _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20), comp);
  const __m256i a1 = _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x31), comp);
  const __m256 s = _mm256_set1_ps(j.scale[n]), b = _mm256_set1_ps(j.bias[n]);
  __m256 y0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a0), s, b);
  __m256 y1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a1), s, b);
  const int64_t rows = std::min<int64_t>(MV, j.M - m0);
  const int64_t esz = out_size(ep.out);
  if (ep.residual) {
    alignas(32) float r[MV] = {0};
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t at = (m0 + i) * ep.ld_residual + n;
      switch (ep.out) {
        case OutType::u8: r[i] = static_cast<float>(static_cast<const uint8_t*>(ep.residual)[at] - e.rzp); break;
        case OutType::s8: r[i] = static_cast<float>(static_cast<const int8_t*>(ep.residual)[at] - e.rzp); break;
        default: r[i] = static_cast<const float*>(ep.residual)[at]; break;
      }
    }
    y0 = _mm256_fmadd_ps(e.rscale, _mm256_load_ps(r), y0);
    y1 = _mm256_fmadd_ps(e.rscale, _mm256_load_ps(r + 8), y1);
  }
  alignas(64) uint8_t tmp[64];
  finalize16(y0, y1, e, tmp);
  auto* dst = static_cast<uint8_t*>(j.C);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t q = 0; q < esz; ++q) dst[((m0 + i) * j.ldc + n) * esz + q] = tmp[i * esz + q];
}

template <bool kTwoOfFour>
void compute(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const EpAvx2 e(*j.ep);
  const PackedView& W = *j.B;
  const auto* vals = reinterpret_cast<const int8_t*>(W.data());
  const int64_t N = W.n(), groups = W.k_pad() / 4;
  for (int64_t item = begin; item < end; ++item) {
    // n-chunk major so a thread's consecutive items reuse the same weights.
    const int64_t nc = item / c.mchunks, mc = item % c.mchunks;
    const int64_t m0 = mc * MV;
    const int16_t* at = c.at + m0;
    for (int64_t n = nc * kRowsPerItem; n < std::min(N, (nc + 1) * kRowsPerItem); ++n) {
      __m256i lo = _mm256_setzero_si256(), hi = lo;
      if (kTwoOfFour) {
        const uint8_t* idx = W.idx() + n * groups;
        const int8_t* v = vals + n * groups * 2;
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t ka = g * 4 + (idx[g] & 3), kb = g * 4 + ((idx[g] >> 2) & 3);
          madd_pair(at, c.m_pad, ka, kb, pair(v[2 * g], v[2 * g + 1]), lo, hi);
        }
      } else {
        const int32_t* rp = W.row_ptr();
        const auto* bk = reinterpret_cast<const int32_t*>(W.idx());
        for (int32_t blk = rp[n]; blk < rp[n + 1]; ++blk) {
          const int64_t k0 = bk[blk];
          const int8_t* v = vals + blk * 4;
          madd_pair(at, c.m_pad, k0, k0 + 1, pair(v[0], v[1]), lo, hi);
          madd_pair(at, c.m_pad, k0 + 2, k0 + 3, pair(v[2], v[3]), lo, hi);
        }
      }
      store_column(j, e, lo, hi, m0, n);
    }
  }
}

void compute_1x4(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const EpAvx2 e(*j.ep);
  const PackedView& W = *j.B;
  const auto* vals = reinterpret_cast<const int8_t*>(W.data());
  const int32_t* rp = W.row_ptr();
  const auto* bk = reinterpret_cast<const int32_t*>(W.idx());
  const int64_t N = W.n();
  for (int64_t item = begin; item < end; ++item) {
    const int64_t nc = item / c.mchunks, mc = item % c.mchunks;
    const int64_t m0 = mc * kPairRows;
    const int32_t* at = c.at2 + m0;
    for (int64_t n = nc * kRowsPerItem; n < std::min(N, (nc + 1) * kRowsPerItem); ++n) {
      __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
      for (int32_t blk = rp[n]; blk < rp[n + 1]; ++blk) {
        const int8_t* v = vals + blk * 4;
        const __m256i w01 = _mm256_set1_epi32(pair(v[0], v[1])), w23 = _mm256_set1_epi32(pair(v[2], v[3]));
        const int32_t* r0 = at + (bk[blk] / 2) * c.m_pad;
        const int32_t* r1 = r0 + c.m_pad;
        auto step = [&](__m256i& acc, int64_t off) {
          const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0 + off));
          const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1 + off));
          acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(x0, w01), _mm256_madd_epi16(x1, w23)));
        };
        step(acc0, 0);
        step(acc1, 8);
        step(acc2, 16);
        step(acc3, 24);
      }
      // store_column takes rows [0-3, 8-11] / [4-7, 12-15] split across lo/hi; undo that here.
      store_column(j, e, _mm256_permute2x128_si256(acc0, acc1, 0x20), _mm256_permute2x128_si256(acc0, acc1, 0x31), m0, n);
      if (m0 + 16 < j.M)
        store_column(j, e, _mm256_permute2x128_si256(acc2, acc3, 0x20), _mm256_permute2x128_si256(acc2, acc3, 0x31),
                     m0 + 16, n);
    }
  }
}

void run_1x4(const GemmJob& job, const ParallelFor& pf) {
  Ctx c;
  c.job = &job;
  c.at = nullptr;
  c.m_pad = (job.M + kPairRows - 1) / kPairRows * kPairRows;
  c.at2 = static_cast<int32_t*>(scratch_alloc(job.B->k_pad() / 2 * c.m_pad * 4));
  run_parallel(pf, job.M, &c, transpose_pairs);
  c.mchunks = c.m_pad / kPairRows;
  c.nchunks = (job.B->n() + kRowsPerItem - 1) / kRowsPerItem;
  run_parallel(pf, c.mchunks * c.nchunks, &c, compute_1x4);
  scratch_free(c.at2);
}

template <bool kTwoOfFour>
void run(const GemmJob& job, const ParallelFor& pf) {
  Ctx c;
  c.job = &job;
  c.m_pad = (job.M + MV - 1) / MV * MV;
  // k_pad rows (zero beyond K): a 1x4 block or a 2:4 group may reach past K.
  c.at = static_cast<int16_t*>(scratch_alloc(job.B->k_pad() * c.m_pad * 2));
  run_parallel(pf, job.M, &c, transpose_a);
  c.mchunks = c.m_pad / MV;
  c.nchunks = (job.B->n() + kRowsPerItem - 1) / kRowsPerItem;
  run_parallel(pf, c.mchunks * c.nchunks, &c, compute<kTwoOfFour>);
  scratch_free(c.at);
}

}  // namespace

void sparse_1x4_avx2(const GemmJob& job, const ParallelFor& pf) { run_1x4(job, pf); }
void sparse_2_4_avx2(const GemmJob& job, const ParallelFor& pf) { run<true>(job, pf); }

}  // namespace compress::kernels::detail
