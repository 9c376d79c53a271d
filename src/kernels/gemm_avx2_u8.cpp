// gemm_u8s8s32_avx2_6x16c4: AVX2 u8 path, compiled with -mavx2 -mfma (this file only).
// vpmaddubsw multiplies u8 activations by s8 weights and adds adjacent pairs
// into s16 with saturation, then vpmaddwd against ones widens to s32. The
// packer clipped every weight pair to |w0| + |w1| <= 128, so no s16 sum can
// saturate (255 * 128 = 32640), and kept what it clipped as a sparse
// correction, added here to the int32 tile before the epilogue: exact for any
// input. On this machine (AMD family 19h, model 11h) the u8 path measured
// ~1.7x the multiply throughput of the s16 vpmaddwd path (bench "peak").
#include <immintrin.h>

#include <algorithm>

#include "compress/kernels/packing_traits.h"
#include "epilogue_avx2.h"
#include "internal.h"

namespace compress::kernels::detail {
namespace {

constexpr int64_t MR = Avx2U8Traits::MR;
constexpr int64_t NR = Avx2U8Traits::NR;

struct Ctx {
  const GemmJob* job;
  int64_t kq, strips, panels, strips_per_block, panels_per_block, mblocks, nblocks;
};

// Packs strips [s0, s1) of A into dst as [strip][kq][MR] int32 (four u8 each);
// rows past M are zero. `row` is K bytes of scratch for row functions.
void pack_a(const Ctx& c, int64_t s0, int64_t s1, int32_t* dst, uint8_t* row) {
  const GemmJob& j = *c.job;
  const int64_t K = j.B->k();
  for (int64_t s = s0; s < s1; ++s, dst += c.kq * MR) {
    for (int64_t i = 0; i < MR; ++i) {
      const int64_t m = s * MR + i;
      if (m >= j.M) {
        for (int64_t q = 0; q < c.kq; ++q) dst[q * MR + i] = 0;
        continue;
      }
      const uint8_t* a = j.row ? j.row(j.row_ctx, m, row) : j.A + m * j.lda;
      int64_t q = 0;
      for (; q < K / 4; ++q) {
        int32_t v;
        __builtin_memcpy(&v, a + 4 * q, 4);
        dst[q * MR + i] = v;
      }
      if (K % 4) {
        uint8_t t[4] = {0, 0, 0, 0};
        for (int64_t r = 0; r < K % 4; ++r) t[r] = a[4 * q + r];
        int32_t v;
        __builtin_memcpy(&v, t, 4);
        dst[q * MR + i] = v;
      }
    }
  }
}

// Where the microkernel reads A: a packed strip [kq][MR] of int32 (four u8),
// or, when A's rows can be read in place (K a multiple of 4, no row function),
// MR row pointers; both broadcast a 32-bit word from memory per row and k-quad,
// so reading in place costs the same and saves the packing pass.
struct PackedA {
  const int32_t* a;
  int32_t get(int64_t q, int i) const { return a[q * MR + i]; }
  uint8_t byte(int i, int64_t k) const {
    return reinterpret_cast<const uint8_t*>(a)[((k / 4) * MR + i) * 4 + k % 4];
  }
};
struct DirectA {
  const uint8_t* rows[MR];
  int32_t get(int64_t q, int i) const {
    int32_t v;
    __builtin_memcpy(&v, rows[i] + 4 * q, 4);
    return v;
  }
  uint8_t byte(int i, int64_t k) const { return rows[i][k]; }
};

#define COMPRESS_STEP(c0, c1, idx)                                                     \
  x = _mm256_set1_epi32(src.get(q, idx));                                              \
  c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones));     \
  c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones));

template <typename Src>
inline void microkernel(const Src& src, const int8_t* b, int64_t kq, int32_t tile[MR][NR]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t q = 0; q < kq; ++q) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
    __m256i x;
    COMPRESS_STEP(c00, c01, 0)
    COMPRESS_STEP(c10, c11, 1)
    COMPRESS_STEP(c20, c21, 2)
    COMPRESS_STEP(c30, c31, 3)
    COMPRESS_STEP(c40, c41, 4)
    COMPRESS_STEP(c50, c51, 5)
    b += NR * 4;
  }
  auto put = [&](int i, __m256i lo, __m256i hi) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile[i]), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile[i] + 8), hi);
  };
  put(0, c00, c01); put(1, c10, c11); put(2, c20, c21);
  put(3, c30, c31); put(4, c40, c41); put(5, c50, c51);
}
#undef COMPRESS_STEP

// The last strip of A may have fewer than MR rows (M = 1 for a batch-1
// linear layer): a variant that computes only those rows does 1/6 of the
// multiplies of the full tile; the weight stream is the same.
template <int R, typename Src>
inline void microkernel_rows(const Src& src, const int8_t* b, int64_t kq, int32_t tile[MR][NR]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i c[R][2];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) c[i][0] = c[i][1] = _mm256_setzero_si256();
  for (int64_t q = 0; q < kq; ++q) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256i x = _mm256_set1_epi32(src.get(q, i));
      c[i][0] = _mm256_add_epi32(c[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones));
      c[i][1] = _mm256_add_epi32(c[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones));
    }
    b += NR * 4;
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile[i]), c[i][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile[i] + 8), c[i][1]);
  }
}

template <typename Src>
inline void run_microkernel(int64_t rows, const Src& src, const int8_t* b, int64_t kq, int32_t tile[MR][NR]) {
  switch (rows) {
    case 1: return microkernel_rows<1>(src, b, kq, tile);
    case 2: return microkernel_rows<2>(src, b, kq, tile);
    case 3: return microkernel_rows<3>(src, b, kq, tile);
    case 4: return microkernel_rows<4>(src, b, kq, tile);
    case 5: return microkernel_rows<5>(src, b, kq, tile);
    default: return microkernel(src, b, kq, tile);
  }
}

// Work items are (m-block, n-block), m-block major: a thread packs the A
// strips of an m-block once, into its own buffer, and sweeps the weight panels
// past them. One parallel region per GEMM (no separate packing pass and its
// barrier, which on a loaded 2-core machine costs a scheduler time slice).
// One (strip, panel) tile: microkernel, exact correction, epilogue.
template <typename Src>
inline void tile_u8(const Ctx& c, const EpAvx2& e, const Src& src, int64_t s, int64_t p, int32_t tile[MR][NR]) {
  const GemmJob& j = *c.job;
  const int32_t* row_ptr = j.B->row_ptr();
  const auto* corr = reinterpret_cast<const int32_t*>(j.B->idx());
  const auto* bdata = reinterpret_cast<const int8_t*>(j.B->data());
  const int64_t m0 = s * MR, n0 = p * NR;
  const int64_t rows = std::min<int64_t>(MR, j.M - m0), count = std::min<int64_t>(NR, j.B->n() - n0);
  run_microkernel(rows, src, bdata + p * c.kq * NR * 4, c.kq, tile);
  // The clipped-away part of the weights, exactly (few entries for trained weights).
  if (row_ptr[n0] != row_ptr[n0 + count])  // this panel has corrections at all
    for (int64_t col = 0; col < count; ++col)
      for (int32_t t = row_ptr[n0 + col]; t < row_ptr[n0 + col + 1]; ++t) {
        const int64_t k = corr[t] >> 8;
        const int32_t delta = static_cast<int8_t>(corr[t] & 0xFF);
        for (int64_t i = 0; i < rows; ++i) tile[i][col] += delta * src.byte(static_cast<int>(i), k);
      }
  const Cols16 cols(j.B->comp(), j.scale, j.bias, n0);
  for (int64_t i = 0; i < rows; ++i)
    store_row16(_mm256_load_si256(reinterpret_cast<const __m256i*>(tile[i])),
                _mm256_load_si256(reinterpret_cast<const __m256i*>(tile[i] + 8)), cols, *j.ep, e, m0 + i, n0, count,
                j.C, j.ldc);
}

// Work items are (m-block, n-block), m-block major: a thread packs the A
// strips of an m-block once, into its own buffer (or reads them in place), and
// sweeps the weight panels past them. One parallel region per GEMM (no
// separate packing pass and its barrier, which on a loaded 2-core machine
// costs a scheduler time slice).
void compute(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const EpAvx2 e(*j.ep);
  const int64_t K = j.B->k();
  const bool direct = j.row == nullptr && K % 4 == 0;
  auto* abuf = direct ? nullptr : static_cast<int32_t*>(scratch_alloc(c.strips_per_block * c.kq * MR * 4));
  auto* rowbuf = static_cast<uint8_t*>(scratch_alloc(c.kq * 4));  // im2col row, or the zero row
  int64_t packed_mb = -1;
  alignas(32) int32_t tile[MR][NR];
  for (int64_t item = begin; item < end; ++item) {
    const int64_t mb = item / c.nblocks, nb = item % c.nblocks;
    const int64_t s_begin = mb * c.strips_per_block, s_end = std::min(c.strips, s_begin + c.strips_per_block);
    if (!direct && mb != packed_mb) {
      pack_a(c, s_begin, s_end, abuf, rowbuf);
      packed_mb = mb;
    }
    const int64_t p_end = std::min(c.panels, (nb + 1) * c.panels_per_block);
    for (int64_t s = s_begin; s < s_end; ++s) {
      if (direct) {
        DirectA src;
        for (int64_t i = 0; i < MR; ++i) {
          const int64_t m = s * MR + i;
          src.rows[i] = m < j.M ? j.A + m * j.lda : rowbuf;  // rowbuf stays zero here
        }
        for (int64_t p = nb * c.panels_per_block; p < p_end; ++p) tile_u8(c, e, src, s, p, tile);
      } else {
        const PackedA src{abuf + (s - s_begin) * c.kq * MR};
        for (int64_t p = nb * c.panels_per_block; p < p_end; ++p) tile_u8(c, e, src, s, p, tile);
      }
    }
  }
  scratch_free(rowbuf);
  if (abuf) scratch_free(abuf);
}

}  // namespace

void gemm_avx2_6x16c4(const GemmJob& job, const ParallelFor& pf) {
  Ctx c;
  c.job = &job;
  c.kq = job.B->k_pad() / 4;
  c.strips = (job.M + MR - 1) / MR;
  c.panels = job.B->n_pad() / NR;
  c.strips_per_block = 8;   // 48 rows of A: 48 * K bytes, in L1/L2 while the panels pass
  c.panels_per_block = 4;   // 64 columns per item
  c.mblocks = (c.strips + c.strips_per_block - 1) / c.strips_per_block;
  c.nblocks = (c.panels + c.panels_per_block - 1) / c.panels_per_block;
  if (c.mblocks * c.nblocks < 16) {  // small problems: finer n-blocks so every core gets work
    c.panels_per_block = 1;
    c.nblocks = c.panels;
  }
  run_parallel(pf, c.mblocks * c.nblocks, &c, compute);
}

}  // namespace compress::kernels::detail
