// spmm_u8s8s32_1x4_avx512vnni_32: the 1x4 block-sparse kernel on AVX-512
// VNNI. Reads the same packed weight as the AVX2 kernel (sparse_1x4_csr: per
// output column, the kept blocks' k and their four s8 weights), so models
// need no repacking. Compiled twice like the dense VNNI kernel: natively by
// sparse_avx512vnni.cpp and against SIMD Everywhere by
// sparse_avx512vnni_simde.cpp (AVX2 machines run it through the same
// bit-exact tests). The includer provides the intrinsics and defines
// COMPRESS_SPARSE_VNNI_ENTRY, the name of the entry point.
//
// Vectorised over M like the AVX2 kernel: each thread transposes 32 rows of
// A into quad rows (sparse_1x4_quads.h); a kept block is then one broadcast
// of its four weights and one vpdpbusd per 16 rows. vpdpbusd multiplies u8 by
// s8 and adds into s32 without intermediate saturation, so activations over
// all of 0..255 take the same single loop (the AVX2 kernel needs s16 pairs
// for them and has a faster loop only for 7-bit ones).
#include <algorithm>
#include <cstring>

#include "compress/kernels/packing_traits.h"
#include "epilogue_avx512.h"
#include "internal.h"
#include "sparse_1x4_quads.h"

namespace compress::kernels::detail {
namespace {

constexpr int64_t kRows = SparseAvx512VnniTraits::MV;
constexpr int64_t kHalves = kRows / 16;  // zmm accumulators per column
constexpr int64_t kLockstep = SparseAvx512VnniTraits::kLockstep;
constexpr int64_t kGroup = SparseAvx512VnniTraits::kGroup;
constexpr int64_t kColumnsPerItem = 4 * kGroup;  // output columns per work item
static_assert(kRows % 16 == 0 && kGroup == 16 && kGroup % kLockstep == 0, "blocking");

struct Ctx {
  const GemmJob* job;
  int64_t mchunks, nchunks;
};

// The vpermt2d indices of one step of a 16 x 16 s32 transpose: step b swaps
// bit b of the row and the column index between rows i and i + b (i & b ==
// 0); the four steps b = 8, 4, 2, 1 swap all four bits, i.e. transpose.
struct TransposeIndex {
  __m512i low[4], high[4];
  TransposeIndex() {
    for (int s = 0, b = 8; s < 4; ++s, b /= 2) {
      alignas(64) int32_t lo[16], hi[16];
      for (int c = 0; c < 16; ++c) {
        lo[c] = (c & b) ? 16 + c - b : c;  // row i: its own column c, or row i + b's column c - b
        hi[c] = (c & b) ? 16 + c : c + b;  // row i + b: row i's column c + b, or its own column c
      }
      low[s] = _mm512_load_si512(lo);
      high[s] = _mm512_load_si512(hi);
    }
  }
};

// t[c] holds 16 rows of column c on entry, 16 columns of row c on return.
static inline void transpose16(__m512i t[16], const TransposeIndex& ix) {
  for (int s = 0, b = 8; s < 4; ++s, b /= 2)
    for (int i = 0; i < 16; ++i)
      if (!(i & b)) {
        const __m512i x = t[i], y = t[i + b];
        t[i] = _mm512_permutex2var_epi32(x, ix.low[s], y);
        t[i + b] = _mm512_permutex2var_epi32(x, ix.high[s], y);
      }
}

// One kept block: its four weights broadcast against the quad row q of all kRows rows.
static inline __attribute__((always_inline)) void add_block(__m512i acc[kHalves], const int8_t* vals,
                                                              const int32_t* block_k, int32_t blk,
                                                              const int32_t* buf) {
  int32_t w4;
  std::memcpy(&w4, vals + static_cast<int64_t>(blk) * 4, 4);
  const __m512i w = _mm512_set1_epi32(w4);
  // Unsigned shift: block starts are validated non-negative (packed.cpp), and
  // a signed / 4 would cost a rounding fix-up per block.
  const int32_t* r = buf + static_cast<int64_t>(static_cast<uint32_t>(block_k[blk]) >> 2) * kRows;
  for (int64_t h = 0; h < kHalves; ++h) acc[h] = _mm512_dpbusd_epi32(acc[h], _mm512_load_si512(r + 16 * h), w);
}

// Columns n0 .. n0 + 15 (those below N) for the kRows rows in buf; writes
// tile[h][c] = rows 16h .. 16h + 15 of column c (zero for a missing column).
void columns16(const PackedView& W, int64_t n0, const int32_t* buf, __m512i tile[kHalves][kGroup]) {
  const auto* vals = reinterpret_cast<const int8_t*>(W.data());
  const auto* block_k = reinterpret_cast<const int32_t*>(W.idx());
  const int32_t* rp = W.row_ptr();
  const int64_t N = W.n();
  for (int64_t c0 = 0; c0 < kGroup; c0 += kLockstep) {
    int32_t begin[kLockstep], count[kLockstep];
    for (int64_t q = 0; q < kLockstep; ++q) {
      const int64_t n = n0 + c0 + q;
      begin[q] = n < N ? rp[n] : 0;
      count[q] = n < N ? rp[n + 1] - rp[n] : 0;
    }
    const int32_t common = *std::min_element(count, count + kLockstep);
    __m512i acc[kLockstep][kHalves];
    for (auto& a : acc)
      for (auto& h : a) h = _mm512_setzero_si512();
    // The blocks all columns have, interleaved: kLockstep * kHalves independent chains.
    for (int32_t t = 0; t < common; ++t)
      for (int64_t q = 0; q < kLockstep; ++q) add_block(acc[q], vals, block_k, begin[q] + t, buf);
    for (int64_t q = 0; q < kLockstep; ++q) {
      for (int32_t t = common; t < count[q]; ++t) add_block(acc[q], vals, block_k, begin[q] + t, buf);
      for (int64_t h = 0; h < kHalves; ++h) tile[h][c0 + q] = acc[q][h];
    }
  }
}

// pack_1x4_quads for the kRows rows from m0, 64 bytes (16 quads) of each
// row at a time through the same 16 x 16 transpose; the scalar packer does
// what is left (rows past M, the last partial 64 bytes of K).
void pack_quads(const GemmJob& j, int64_t m0, int32_t* buf, const TransposeIndex& ix) {
  const int64_t quads = j.B->k_pad() / 4, whole = j.B->k() / 64;
  if (m0 + kRows > j.M || whole == 0) return pack_1x4_quads(j, m0, kRows, buf);
  for (int64_t h = 0; h < kHalves; ++h)
    for (int64_t c = 0; c < whole; ++c) {
      __m512i t[16];
      for (int64_t i = 0; i < 16; ++i) t[i] = _mm512_loadu_si512(j.A + (m0 + 16 * h + i) * j.lda + 64 * c);
      transpose16(t, ix);
      for (int64_t q = 0; q < 16; ++q) _mm512_store_si512(buf + (16 * c + q) * kRows + 16 * h, t[q]);
    }
  for (int64_t i = 0; i < kRows; ++i) {
    const uint8_t* a = j.A + (m0 + i) * j.lda;
    for (int64_t q = whole * 16; q < quads; ++q) {
      uint32_t v = 0;
      for (int64_t r = 0; r < 4 && 4 * q + r < j.B->k(); ++r) v |= static_cast<uint32_t>(a[4 * q + r]) << (8 * r);
      buf[q * kRows + i] = static_cast<int32_t>(v);
    }
  }
}

void compute(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const Ep512 e(*j.ep);
  const TransposeIndex ix;
  const PackedView& W = *j.B;
  const int64_t N = W.n();
  auto* buf = static_cast<int32_t*>(scratch_alloc(W.k_pad() / 4 * kRows * 4, false));
  int64_t packed = -1;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t mc = item / c.nchunks, nc = item % c.nchunks, m0 = mc * kRows;
    if (mc != packed) {
      pack_quads(j, m0, buf, ix);
      packed = mc;
    }
    for (int64_t n0 = nc * kColumnsPerItem; n0 < std::min(N, (nc + 1) * kColumnsPerItem); n0 += kGroup) {
      __m512i tile[kHalves][kGroup];
      columns16(W, n0, buf, tile);
      const Columns16 cols(j, n0);
      for (int64_t h = 0; h < kHalves; ++h) {
        transpose16(tile[h], ix);
        const int64_t rows = std::min<int64_t>(16, j.M - (m0 + 16 * h));
        for (int64_t r = 0; r < rows; ++r) store_row16(tile[h][r], cols, j, e, m0 + 16 * h + r);
      }
    }
  }
  scratch_free(buf);
}

}  // namespace

void COMPRESS_SPARSE_VNNI_ENTRY(const GemmJob& job, const ParallelFor& pf) {
  Ctx c;
  c.job = &job;
  c.mchunks = (job.M + kRows - 1) / kRows;
  c.nchunks = (job.B->n() + kColumnsPerItem - 1) / kColumnsPerItem;
  run_parallel(pf, c.mchunks * c.nchunks, &c, compute);
}

}  // namespace compress::kernels::detail
