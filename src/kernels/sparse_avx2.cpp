// spmm_u8s8s32_1x4_avx2_32 and spmm_u8s8s32_2of4_avx2_32 (compiled with -mavx2 -mfma).
// The 1x4 kernel has a second inner loop for activations that fit 7 bits.
// Sparse weights are vectorised over M (rows of A): each thread transposes the
// rows of A of its current m-chunk into a small buffer, then walks the kept
// weights of many output channels over it; pruned blocks cost nothing. One
// parallel region per call (no separate transpose pass and its barrier).
#include <immintrin.h>

#include <algorithm>

#include "compress/kernels/packing_traits.h"
#include "epilogue_avx2.h"
#include "internal.h"
#include "sparse_1x4_quads.h"

namespace compress::kernels::detail {
namespace {

constexpr int64_t kRowsPerItem = 64;  // output channels per work item
constexpr int64_t kChunk = SparseAvx2Traits::MV;  // rows of A per pass

struct Ctx {
  const GemmJob* job;
  int64_t mchunks, nchunks;
};

inline int32_t pair(int8_t lo, int8_t hi) {
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(lo))) |
                              (static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(hi))) << 16));
}

// Column n of C for rows m0..m0+15: acc0 rows 0-7, acc1 rows 8-15.
void store_column(const GemmJob& j, const EpAvx2& e, __m256i acc0, __m256i acc1, int64_t m0, int64_t n) {
  if (m0 >= j.M) return;
  const Epilogue& ep = *j.ep;
  const __m256i comp = _mm256_set1_epi32(j.B->comp()[n]);
  const __m256 s = _mm256_set1_ps(j.scale[n]), b = _mm256_set1_ps(j.bias[n]);
  __m256 y0 = scale8(acc0, comp, s, b), y1 = scale8(acc1, comp, s, b);
  const int64_t rows = std::min<int64_t>(16, j.M - m0);
  const int64_t esz = out_size(ep.out);
  if (ep.residual) {
    alignas(32) float r[16] = {0};
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

// 1x4 blocks start at a multiple of 4, so their two k-pairs are aligned:
// rows m0.. of A become pair rows buf[p][32] = (a[m][2p], a[m][2p+1]) as two
// s16, and a block costs two loads + two vpmaddwd per 8 rows, no shuffles.
void pack_pairs(const GemmJob& j, int64_t m0, int32_t* buf) {
  const int64_t K = j.B->k(), pairs = j.B->k_pad() / 2;
  for (int64_t i = 0; i < kChunk; ++i) {
    const int64_t m = m0 + i;
    const uint8_t* a = j.A + m * j.lda;
    for (int64_t p = 0; p < pairs; ++p) {
      uint32_t v = 0;
      if (m < j.M) {
        const uint32_t lo = 2 * p < K ? a[2 * p] : 0, hi = 2 * p + 1 < K ? a[2 * p + 1] : 0;
        v = lo | (hi << 16);
      }
      buf[p * kChunk + i] = static_cast<int32_t>(v);
    }
  }
}

// 2:4: single k rows buf[k][32] as s16; the two kept rows of a group are
// interleaved with vpunpck before vpmaddwd.
void pack_rows(const GemmJob& j, int64_t m0, int16_t* buf) {
  const int64_t K = j.B->k(), kp = j.B->k_pad();
  for (int64_t i = 0; i < kChunk; ++i) {
    const int64_t m = m0 + i;
    const uint8_t* a = j.A + m * j.lda;
    for (int64_t k = 0; k < kp; ++k) buf[k * kChunk + i] = (m < j.M && k < K) ? a[k] : 0;
  }
}

// The two ways a 1x4 block meets 32 transposed rows of A. kK: k per buffer
// row; pack: transpose A's rows; add: accumulate one block (4 weights at v,
// buffer rows from r) into four 8-row accumulators.
struct PairRows {  // any u8: k-pairs as s16, two vpmaddwd per 8 rows
  static constexpr int64_t kK = 2;
  static void pack(const GemmJob& j, int64_t m0, int32_t* buf) { pack_pairs(j, m0, buf); }
  static void add(__m256i acc[4], const int8_t* v, const int32_t* r) {
    const __m256i w01 = _mm256_set1_epi32(pair(v[0], v[1])), w23 = _mm256_set1_epi32(pair(v[2], v[3]));
    for (int h = 0; h < 4; ++h) {
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 8 * h));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + kChunk + 8 * h));
      acc[h] = _mm256_add_epi32(acc[h], _mm256_add_epi32(_mm256_madd_epi16(x0, w01), _mm256_madd_epi16(x1, w23)));
    }
  }
};
// For 7-bit activations (checked per call): quad rows (sparse_1x4_quads.h),
// so a block is one load, one vpmaddubsw (no saturation: 127 * (|w0| + |w1|)
// <= 127 * 256 = 32512), one vpmaddwd with ones per 8 rows: 3 instructions
// where the pair layout needs 5.
struct QuadRows {
  static constexpr int64_t kK = 4;
  static void pack(const GemmJob& j, int64_t m0, int32_t* buf) { pack_1x4_quads(j, m0, kChunk, buf); }
  static void add(__m256i acc[4], const int8_t* v, const int32_t* r) {
    int32_t w4;
    __builtin_memcpy(&w4, v, 4);
    const __m256i w = _mm256_set1_epi32(w4), ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 4; ++h) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 8 * h));
      acc[h] = _mm256_add_epi32(acc[h], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones));
    }
  }
};

template <typename Rows>
void compute_1x4(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const EpAvx2 e(*j.ep);
  const PackedView& W = *j.B;
  const auto* vals = reinterpret_cast<const int8_t*>(W.data());
  const int32_t* rp = W.row_ptr();
  const auto* bk = reinterpret_cast<const int32_t*>(W.idx());
  const int64_t N = W.n();
  auto* buf = static_cast<int32_t*>(scratch_alloc(W.k_pad() / Rows::kK * kChunk * 4));
  int64_t packed = -1;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t mc = item / c.nchunks, nc = item % c.nchunks, m0 = mc * kChunk;
    if (mc != packed) {
      Rows::pack(j, m0, buf);
      packed = mc;
    }
    for (int64_t n = nc * kRowsPerItem; n < std::min(N, (nc + 1) * kRowsPerItem); ++n) {
      __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                        _mm256_setzero_si256()};
      for (int32_t blk = rp[n]; blk < rp[n + 1]; ++blk)
        Rows::add(acc, vals + blk * 4, buf + (bk[blk] / Rows::kK) * kChunk);
      store_column(j, e, acc[0], acc[1], m0, n);
      store_column(j, e, acc[2], acc[3], m0 + 16, n);
    }
  }
  scratch_free(buf);
}

void compute_2of4(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const EpAvx2 e(*j.ep);
  const PackedView& W = *j.B;
  const auto* vals = reinterpret_cast<const int8_t*>(W.data());
  const int64_t N = W.n(), groups = W.k_pad() / 4;
  auto* buf = static_cast<int16_t*>(scratch_alloc(W.k_pad() * kChunk * 2));
  int64_t packed = -1;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t mc = item / c.nchunks, nc = item % c.nchunks, m0 = mc * kChunk;
    if (mc != packed) {
      pack_rows(j, m0, buf);
      packed = mc;
    }
    for (int64_t n = nc * kRowsPerItem; n < std::min(N, (nc + 1) * kRowsPerItem); ++n) {
      // lo/hi halves of vpunpck: lo_h holds rows [0-3, 8-11] (+16h), hi_h rows [4-7, 12-15] (+16h).
      __m256i lo0 = _mm256_setzero_si256(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
      const uint8_t* idx = W.idx() + n * groups;
      const int8_t* v = vals + n * groups * 2;
      for (int64_t g = 0; g < groups; ++g) {
        const int16_t* ra = buf + (g * 4 + (idx[g] & 3)) * kChunk;
        const int16_t* rb = buf + (g * 4 + ((idx[g] >> 2) & 3)) * kChunk;
        const __m256i wv = _mm256_set1_epi32(pair(v[2 * g], v[2 * g + 1]));
        const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ra));
        const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rb));
        const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ra + 16));
        const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rb + 16));
        lo0 = _mm256_add_epi32(lo0, _mm256_madd_epi16(_mm256_unpacklo_epi16(a0, b0), wv));
        hi0 = _mm256_add_epi32(hi0, _mm256_madd_epi16(_mm256_unpackhi_epi16(a0, b0), wv));
        lo1 = _mm256_add_epi32(lo1, _mm256_madd_epi16(_mm256_unpacklo_epi16(a1, b1), wv));
        hi1 = _mm256_add_epi32(hi1, _mm256_madd_epi16(_mm256_unpackhi_epi16(a1, b1), wv));
      }
      store_column(j, e, _mm256_permute2x128_si256(lo0, hi0, 0x20), _mm256_permute2x128_si256(lo0, hi0, 0x31), m0, n);
      store_column(j, e, _mm256_permute2x128_si256(lo1, hi1, 0x20), _mm256_permute2x128_si256(lo1, hi1, 0x31),
                   m0 + 16, n);
    }
  }
  scratch_free(buf);
}

void run(const GemmJob& job, const ParallelFor& pf, RangeFn fn) {
  Ctx c;
  c.job = &job;
  c.mchunks = (job.M + kChunk - 1) / kChunk;
  c.nchunks = (job.B->n() + kRowsPerItem - 1) / kRowsPerItem;
  run_parallel(pf, c.mchunks * c.nchunks, &c, fn);
}

}  // namespace

void sparse_1x4_avx2(const GemmJob& job, const ParallelFor& pf) {
  // One read of A decides; any byte above 127 takes the s16 pair path.
  const bool u7 = bytes_fit_7bit_avx2(job.A, job.M, job.B->k(), job.lda);
  run(job, pf, u7 ? compute_1x4<QuadRows> : compute_1x4<PairRows>);
}
void sparse_2_4_avx2(const GemmJob& job, const ParallelFor& pf) { run(job, pf, compute_2of4); }

}  // namespace compress::kernels::detail
