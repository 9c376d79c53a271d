// gemm_u8s8s32_avx2_6x16c4 and gemm_u8s8s32_avx2_4x16c8_u7: the AVX2 u8
// path, compiled with -mavx2 -mfma (this file only).
// vpmaddubsw multiplies u8 activations by s8 weights and adds adjacent pairs
// into s16 with saturation, then vpmaddwd against ones widens to s32. The
// packer clipped every weight pair to |w0| + |w1| <= 128, so no s16 sum can
// saturate (255 * 128 = 32640), and kept what it clipped as a sparse
// correction, added here to the int32 tile before the epilogue: exact for any
// input. On this machine (AMD family 19h, model 11h) the u8 path measured
// ~1.7x the multiply throughput of the s16 vpmaddwd path (bench "peak").
// For 7-bit activations a second tile saves one multiply in four (U7Tile).
#include <immintrin.h>

#include <algorithm>

#include "compress/kernels/packing_traits.h"
#include "epilogue_avx2.h"
#include "internal.h"

namespace compress::kernels::detail {
namespace {

constexpr int64_t NR = Avx2U8Traits::NR;
static_assert(Avx2U7Traits::NR == NR, "both tiles are 16 columns wide");
constexpr int64_t kMaxMR = 8;  // tile buffers are sized for any tile's MR

struct Ctx {
  const GemmJob* job;
  int64_t kq, strips, panels, strips_per_block, panels_per_block, mblocks, nblocks;
};

// Packs strips [s0, s1) of MR rows of A into dst as [strip][kq][MR] int32
// (four u8 each); rows past M are zero. `strip` is MR rows of kq * 4 bytes of
// scratch for a row function, zero past K (the function writes K bytes).
template <int64_t MR>
void pack_a(const Ctx& c, int64_t s0, int64_t s1, int32_t* dst, uint8_t* strip) {
  const GemmJob& j = *c.job;
  const int64_t K = j.B->k(), ld = c.kq * 4;
  for (int64_t s = s0; s < s1; ++s, dst += c.kq * MR) {
    const int64_t rows = std::min<int64_t>(MR, j.M - s * MR);
    if (j.rows) j.rows(j.row_ctx, s * MR, rows, strip, ld);
    for (int64_t i = 0; i < MR; ++i) {
      if (i >= rows) {
        for (int64_t q = 0; q < c.kq; ++q) dst[q * MR + i] = 0;
        continue;
      }
      const uint8_t* a = j.rows ? strip + i * ld : j.A + (s * MR + i) * j.lda;
      // Scratch rows are read in whole words, tail included.
      const int64_t words = j.rows ? c.kq : K / 4;
      int64_t q = 0;
      for (; q < words; ++q) {
        int32_t v;
        __builtin_memcpy(&v, a + 4 * q, 4);
        dst[q * MR + i] = v;
      }
      if (!j.rows && K % 4) {
        uint8_t t[4] = {0, 0, 0, 0};
        for (int64_t r = 0; r < K % 4; ++r) t[r] = a[4 * q + r];
        int32_t v;
        __builtin_memcpy(&v, t, 4);
        dst[q * MR + i] = v;
      }
    }
  }
}

// A 32-bit word of A that may sit in u8 data (read through asm operands).
typedef int32_t __attribute__((may_alias)) word_t;

// Where the microkernel reads A: a packed strip [kq][MR] of int32 (four u8),
// or, when A's rows can be read in place (K a multiple of the k-step, no row
// function), MR row pointers; both broadcast a 32-bit word from memory per row
// and k-quad, so reading in place costs the same and saves the packing pass.
template <int64_t MR>
struct PackedA {
  const int32_t* a;
  int32_t get(int64_t q, int i) const { return a[q * MR + i]; }
  const word_t* at(int64_t q, int i) const { return a + q * MR + i; }
  uint8_t byte(int i, int64_t k) const {
    return reinterpret_cast<const uint8_t*>(a)[((k / 4) * MR + i) * 4 + k % 4];
  }
};
template <int64_t MR>
struct DirectA {
  const uint8_t* rows[MR];
  int32_t get(int64_t q, int i) const {
    int32_t v;
    __builtin_memcpy(&v, rows[i] + 4 * q, 4);
    return v;
  }
  const word_t* at(int64_t q, int i) const { return reinterpret_cast<const word_t*>(rows[i] + 4 * q); }
  uint8_t byte(int i, int64_t k) const { return rows[i][k]; }
};

alignas(32) const int16_t kOnes[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

// vpmaddwd against a vector of ones read from memory: the 6x16 tile needs 12
// accumulators, two weight vectors, the broadcast and a product register, all
// 16 ymm registers; a register holding the ones made GCC spill an accumulator
// to the stack (a load and a store every k-step). The asm keeps the ones a
// memory operand (a load port has room for it), which the compiler cannot
// hoist back into a register.
inline __m256i madd_ones(__m256i t) {
  asm("vpmaddwd %1, %0, %0" : "+x"(t) : "m"(*reinterpret_cast<const __m256i*>(kOnes)));
  return t;
}

// ---- u8 tile: 6 x 16, one k-quad per step, any u8 activation.
struct U8Tile {
  static constexpr int64_t MR = Avx2U8Traits::MR;
  static constexpr int64_t kQuadsPerStep = 1;
  static constexpr int64_t kStripsPerBlock = 8;  // 48 rows of A stay in L1/L2 while the panels pass

#define COMPRESS_STEP(c0, c1, idx)                                        \
  x = _mm256_set1_epi32(src.get(q, idx));                                 \
  c0 = _mm256_add_epi32(c0, madd_ones(_mm256_maddubs_epi16(x, b0)));      \
  c1 = _mm256_add_epi32(c1, madd_ones(_mm256_maddubs_epi16(x, b1)));

  template <typename Src, typename Sink>
  static void full(const Src& src, const int8_t* b, int64_t kq, Sink&& sink) {
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
    sink(0, c00, c01); sink(1, c10, c11); sink(2, c20, c21);
    sink(3, c30, c31); sink(4, c40, c41); sink(5, c50, c51);
  }
#undef COMPRESS_STEP

  // The last strip of A may have fewer than MR rows (M = 1 for a batch-1
  // linear layer): a variant that computes only those rows does 1/6 of the
  // multiplies of the full tile; the weight stream is the same.
  template <int R, typename Src, typename Sink>
  static void rows(const Src& src, const int8_t* b, int64_t kq, Sink&& sink) {
    __m256i c[R][2];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) c[i][0] = c[i][1] = _mm256_setzero_si256();
    for (int64_t q = 0; q < kq; ++q) {
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m256i x = _mm256_set1_epi32(src.get(q, i));
        c[i][0] = _mm256_add_epi32(c[i][0], madd_ones(_mm256_maddubs_epi16(x, b0)));
        c[i][1] = _mm256_add_epi32(c[i][1], madd_ones(_mm256_maddubs_epi16(x, b1)));
      }
      b += NR * 4;
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) sink(i, c[i][0], c[i][1]);
  }

};

// ---- u7 tile: 4 x 16, two k-quads per step whose vpmaddubsw products are
// added in s16 before one vpmaddwd widens them (activations <= 127; the
// packer bounded every s16 lane, see Layout::avx2_n16k8_u7s8).
struct U7Tile {
  static constexpr int64_t MR = Avx2U7Traits::MR;
  static constexpr int64_t kQuadsPerStep = 2;
  static constexpr int64_t kStripsPerBlock = 12;  // 48 rows, as for the u8 tile

  // One row of one k-step: c0/c1 (columns 0-7 / 8-15) += the 8 k of words
  // a0 (quad q) and a1 (quad q + 1) times the four weight vectors. Written
  // as asm so that the weights stay in registers: with 8 accumulators, 4
  // weight vectors and 4 temporaries every ymm register is taken, and GCC
  // otherwise re-reads the weights as memory operands of each vpmaddubsw,
  // which made the tile wait on the load ports (32 loads per 24 multiplies).
  static inline void row_step(__m256i& c0, __m256i& c1, const word_t* a0, const word_t* a1, __m256i b00,
                              __m256i b01, __m256i b10, __m256i b11) {
    __m256i x0, x1, t0, t1;
    asm("vpbroadcastd %[a0], %[x0]\n\t"
        "vpbroadcastd %[a1], %[x1]\n\t"
        "vpmaddubsw %[b00], %[x0], %[t0]\n\t"
        "vpmaddubsw %[b10], %[x1], %[t1]\n\t"
        "vpaddw %[t1], %[t0], %[t0]\n\t"
        "vpmaddwd %[ones], %[t0], %[t0]\n\t"
        "vpaddd %[t0], %[c0], %[c0]\n\t"
        "vpmaddubsw %[b01], %[x0], %[t0]\n\t"
        "vpmaddubsw %[b11], %[x1], %[t1]\n\t"
        "vpaddw %[t1], %[t0], %[t0]\n\t"
        "vpmaddwd %[ones], %[t0], %[t0]\n\t"
        "vpaddd %[t0], %[c1], %[c1]"
        : [c0] "+x"(c0), [c1] "+x"(c1), [x0] "=&x"(x0), [x1] "=&x"(x1), [t0] "=&x"(t0), [t1] "=&x"(t1)
        : [a0] "m"(*a0), [a1] "m"(*a1), [b00] "x"(b00), [b01] "x"(b01), [b10] "x"(b10), [b11] "x"(b11),
          [ones] "m"(*reinterpret_cast<const __m256i*>(kOnes)));
  }

  template <int R, typename Src, typename Sink>
  static void rows(const Src& src, const int8_t* b, int64_t kq, Sink&& sink) {
    __m256i c[R][2];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) c[i][0] = c[i][1] = _mm256_setzero_si256();
    for (int64_t q = 0; q < kq; q += 2) {
      // quad q: columns 0-7, 8-15; quad q + 1: columns 0-7, 8-15
      const __m256i b00 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
      const __m256i b01 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
      const __m256i b10 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 64));
      const __m256i b11 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 96));
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) row_step(c[i][0], c[i][1], src.at(q, i), src.at(q + 1, i), b00, b01, b10, b11);
      b += 2 * NR * 4;
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) sink(i, c[i][0], c[i][1]);
  }

  template <typename Src, typename Sink>
  static void full(const Src& src, const int8_t* b, int64_t kq, Sink&& sink) {
    rows<MR>(src, b, kq, sink);
  }
};

// Runs the tile's microkernel for `rows` (1..MR) rows: Tile::rows<R> for a
// short last strip, Tile::full for a whole one. sink(i, columns 0-7,
// columns 8-15) receives row i's accumulators.
template <typename Tile, int R = 1, typename Src, typename Sink>
inline void run_tile(int64_t rows, const Src& src, const int8_t* b, int64_t kq, Sink&& sink) {
  if constexpr (R >= Tile::MR) {
    Tile::full(src, b, kq, sink);
  } else {
    if (rows == R) return Tile::template rows<R>(src, b, kq, sink);
    run_tile<Tile, R + 1>(rows, src, b, kq, sink);
  }
}

// One (strip, panel) tile: microkernel, exact correction, epilogue. Panels
// without corrections (most, for trained weights) hand the accumulators
// straight from registers to the epilogue.
template <typename Tile, typename Src>
inline void tile_u8(const Ctx& c, const EpAvx2& e, const Src& src, int64_t s, int64_t p, int32_t (*tile)[NR]) {
  const GemmJob& j = *c.job;
  const int32_t* row_ptr = j.B->row_ptr();
  const auto* bdata = reinterpret_cast<const int8_t*>(j.B->data());
  const int64_t m0 = s * Tile::MR, n0 = p * NR;
  const int64_t rows = std::min<int64_t>(Tile::MR, j.M - m0), count = std::min<int64_t>(NR, j.B->n() - n0);
  const Cols16 cols(j.B->comp(), j.scale, j.bias, n0);
  const int8_t* panel = bdata + p * c.kq * NR * 4;
  if (row_ptr[n0] == row_ptr[n0 + count]) {
    if (count == NR && e.plain) {
      // Without the per-row tests of the general epilogue (which cost as
      // much as the MACs when K is 16).
      uint8_t* out = static_cast<uint8_t*>(j.C) + m0 * j.ldc + n0;
      run_tile<Tile>(rows, src, panel, c.kq,
                     [&](int i, __m256i lo, __m256i hi) { store_row16_plain(lo, hi, cols, e, out + i * j.ldc); });
      return;
    }
    run_tile<Tile>(rows, src, panel, c.kq, [&](int i, __m256i lo, __m256i hi) {
      store_row16(lo, hi, cols, *j.ep, e, m0 + i, n0, count, j.C, j.ldc);
    });
    return;
  }
  run_tile<Tile>(rows, src, panel, c.kq, [&](int i, __m256i lo, __m256i hi) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(tile[i]), lo);
    _mm256_store_si256(reinterpret_cast<__m256i*>(tile[i] + 8), hi);
  });
  // The clipped-away part of the weights, exactly (few entries for trained weights).
  const auto* corr = reinterpret_cast<const int32_t*>(j.B->idx());
  for (int64_t col = 0; col < count; ++col)
    for (int32_t t = row_ptr[n0 + col]; t < row_ptr[n0 + col + 1]; ++t) {
      const int64_t k = corr[t] >> 8;
      const int32_t delta = static_cast<int8_t>(corr[t] & 0xFF);
      for (int64_t i = 0; i < rows; ++i) tile[i][col] += delta * src.byte(static_cast<int>(i), k);
    }
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
template <typename Tile>
void compute(void* vctx, int64_t begin, int64_t end) {
  constexpr int64_t MR = Tile::MR;
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const EpAvx2 e(*j.ep);
  const int64_t K = j.B->k();
  // In place only if every k-step's words lie inside the row.
  const bool direct = j.rows == nullptr && K % (4 * Tile::kQuadsPerStep) == 0;
  auto* abuf = direct ? nullptr : static_cast<int32_t*>(scratch_alloc(c.strips_per_block * c.kq * MR * 4));
  // MR im2col rows; its first row is also the zero row of DirectA.
  auto* rowbuf = static_cast<uint8_t*>(scratch_alloc(MR * c.kq * 4));
  int64_t packed_mb = -1;
  alignas(32) int32_t tile[kMaxMR][NR];
  for (int64_t item = begin; item < end; ++item) {
    const int64_t mb = item / c.nblocks, nb = item % c.nblocks;
    const int64_t s_begin = mb * c.strips_per_block, s_end = std::min(c.strips, s_begin + c.strips_per_block);
    if (!direct && mb != packed_mb) {
      pack_a<MR>(c, s_begin, s_end, abuf, rowbuf);
      packed_mb = mb;
    }
    const int64_t p_end = std::min(c.panels, (nb + 1) * c.panels_per_block);
    for (int64_t s = s_begin; s < s_end; ++s) {
      if (direct) {
        DirectA<MR> src;
        const uint8_t* first = j.A + s * MR * j.lda;
        if ((s + 1) * MR <= j.M) {
          for (int64_t i = 0; i < MR; ++i) src.rows[i] = first + i * j.lda;
        } else {
          for (int64_t i = 0; i < MR; ++i)  // rows past M read the zero row (rowbuf is never written here)
            src.rows[i] = s * MR + i < j.M ? first + i * j.lda : rowbuf;
        }
        for (int64_t p = nb * c.panels_per_block; p < p_end; ++p) tile_u8<Tile>(c, e, src, s, p, tile);
      } else {
        const PackedA<MR> src{abuf + (s - s_begin) * c.kq * MR};
        for (int64_t p = nb * c.panels_per_block; p < p_end; ++p) tile_u8<Tile>(c, e, src, s, p, tile);
      }
    }
  }
  scratch_free(rowbuf);
  if (abuf) scratch_free(abuf);
}

template <typename Tile>
void run_gemm(const GemmJob& job, const ParallelFor& pf) {
  Ctx c;
  c.job = &job;
  c.kq = job.B->k_pad() / 4;
  c.strips = (job.M + Tile::MR - 1) / Tile::MR;
  c.panels = job.B->n_pad() / NR;
  // m-blocks of at most kStripsPerBlock strips, of equal size: 13 strips as
  // 12 + 1 left one thread with 12/13 of a batch-1 7x7 layer's work.
  c.mblocks = (c.strips + Tile::kStripsPerBlock - 1) / Tile::kStripsPerBlock;
  c.strips_per_block = (c.strips + c.mblocks - 1) / c.mblocks;
  c.panels_per_block = 4;  // 64 columns per item
  c.nblocks = (c.panels + c.panels_per_block - 1) / c.panels_per_block;
  if (c.mblocks * c.nblocks < 16) {  // small problems: finer n-blocks so every core gets work
    c.panels_per_block = 1;
    c.nblocks = c.panels;
  }
  run_parallel(pf, c.mblocks * c.nblocks, &c, compute<Tile>);
}

}  // namespace

void gemm_avx2_6x16c4(const GemmJob& job, const ParallelFor& pf) { run_gemm<U8Tile>(job, pf); }

void gemm_avx2_4x16c8_u7(const GemmJob& job, const ParallelFor& pf) { run_gemm<U7Tile>(job, pf); }

bool bytes_fit_7bit_avx2(const uint8_t* p, int64_t rows, int64_t cols, int64_t stride) {
  __m256i any = _mm256_setzero_si256();
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = p + r * stride;
    int64_t i = 0;
    for (; i + 32 <= cols; i += 32)
      any = _mm256_or_si256(any, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + i)));
    uint8_t tail = 0;
    for (; i < cols; ++i) tail |= row[i];
    if (tail & 0x80) return false;
  }
  return _mm256_movemask_epi8(any) == 0;  // no byte has its top bit set
}

}  // namespace compress::kernels::detail
