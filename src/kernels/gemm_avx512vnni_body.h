// gemm_u8s8s32_avx512vnni_8x32: AVX-512 VNNI (vpdpbusd). The body of the
// kernel, compiled twice: natively by gemm_avx512vnni.cpp (AVX-512 flags on
// that file only), and against SIMD Everywhere by gemm_avx512vnni_simde.cpp,
// so that AVX2 machines run the same code through the same bit-exact tests.
// The includer provides the intrinsics and defines COMPRESS_VNNI_ENTRY and
// COMPRESS_VNNI_ROW_QUADS_ENTRY, the names of the entry points (the GEMM and
// the direct convolution of RowQuadConvJob).
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
// Rows of A a work item covers: 8 strips, gathered (when not read in place)
// into a buffer that stays in L2 while every panel of B passes over it.
constexpr int64_t kBlockM = 8 * MR;

// A is read where it lies, four bytes at a time (vpbroadcastd from memory),
// with no packing: the broadcast is what the kernel needs of A, and a packed
// copy cost more than the multiply-adds on Zen 4/5 (it also had to be zeroed
// and page-faulted in on every call). Blocks are gathered into a small
// buffer only when the rows come from a row function (implicit im2col),
// when K is not a multiple of 4 (a quad would straddle two rows), or for the
// last, partial block (its missing rows read as zeros).
struct Ctx {
  const GemmJob* job;
  int64_t kq, kp;           // B's k quads; kp = 4 kq bytes per gathered row
  int64_t panels, mblocks;  // 32-column panels of B, kBlockM-row blocks of A
  int64_t direct_mblocks;   // blocks read in place from A
};

inline int32_t load_quad(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Rows mb * kBlockM .. of A as kp-byte rows in buf: the bytes past K and the
// rows past M are zero (zero weights pad B's K, so they add nothing either way).
void gather_block(const Ctx& c, int64_t mb, uint8_t* buf) {
  const GemmJob& j = *c.job;
  const int64_t K = j.B->k(), m0 = mb * kBlockM, rows = std::min(kBlockM, j.M - m0);
  if (j.rows) {
    j.rows(j.row_ctx, m0, rows, buf, c.kp);
  } else {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(buf + r * c.kp, j.A + (m0 + r) * j.lda, static_cast<size_t>(K));
  }
  if (c.kp > K)
    for (int64_t r = 0; r < rows; ++r) std::memset(buf + r * c.kp + K, 0, static_cast<size_t>(c.kp - K));
  if (rows < kBlockM) std::memset(buf + rows * c.kp, 0, static_cast<size_t>((kBlockM - rows) * c.kp));
}

// acc[i][0..1] = sum over quads q of r[i][off(q) .. off(q) + 3] . b[q] for
// the MR rows r[i] and one 32-column panel: off(q) = 4q for a GEMM's rows,
// a table for the direct convolution below. Sixteen named
// accumulators: GCC kept an array of them in memory, moving each through the
// stack every quad.
template <class QuadOffset>
inline void kernel_8x32(const uint8_t* const r[MR], const int8_t* b, int64_t kq, QuadOffset off,
                        __m512i acc[MR][2]) {
  static_assert(MR == 8, "kernel_8x32 is written out for 8 rows");
  const uint8_t *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3], *r4 = r[4], *r5 = r[5], *r6 = r[6], *r7 = r[7];
  __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  __m512i c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
  for (int64_t q = 0; q < kq; ++q, b += NR * 4) {
    const __m512i b0 = _mm512_loadu_si512(b);
    const __m512i b1 = _mm512_loadu_si512(b + 64);
    const int64_t k = off(q);
#define COMPRESS_VNNI_ROW(r, lo, hi)                           \
  {                                                            \
    const __m512i x = _mm512_set1_epi32(load_quad(r + k));     \
    lo = _mm512_dpbusd_epi32(lo, x, b0);                       \
    hi = _mm512_dpbusd_epi32(hi, x, b1);                       \
  }
    COMPRESS_VNNI_ROW(r0, c00, c01)
    COMPRESS_VNNI_ROW(r1, c10, c11)
    COMPRESS_VNNI_ROW(r2, c20, c21)
    COMPRESS_VNNI_ROW(r3, c30, c31)
    COMPRESS_VNNI_ROW(r4, c40, c41)
    COMPRESS_VNNI_ROW(r5, c50, c51)
    COMPRESS_VNNI_ROW(r6, c60, c61)
    COMPRESS_VNNI_ROW(r7, c70, c71)
#undef COMPRESS_VNNI_ROW
  }
  acc[0][0] = c00; acc[0][1] = c01; acc[1][0] = c10; acc[1][1] = c11;
  acc[2][0] = c20; acc[2][1] = c21; acc[3][0] = c30; acc[3][1] = c31;
  acc[4][0] = c40; acc[4][1] = c41; acc[5][0] = c50; acc[5][1] = c51;
  acc[6][0] = c60; acc[6][1] = c61; acc[7][0] = c70; acc[7][1] = c71;
}

// Items are (block, panel) with the panel fastest, so a thread gathers each
// block once and runs every panel of B over it.
void compute(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const Ep512 e(*j.ep);
  const auto* bdata = reinterpret_cast<const int8_t*>(j.B->data());
  uint8_t* buf = c.direct_mblocks < c.mblocks ? static_cast<uint8_t*>(scratch_alloc(kBlockM * c.kp, false)) : nullptr;
  int64_t gathered = -1;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t mb = item / c.panels, p = item % c.panels;
    const bool direct = mb < c.direct_mblocks;
    if (!direct && mb != gathered) {
      gather_block(c, mb, buf);
      gathered = mb;
    }
    const uint8_t* a = direct ? j.A + mb * kBlockM * j.lda : buf;
    const int64_t lda = direct ? j.lda : c.kp;
    const int8_t* b = bdata + p * c.kq * NR * 4;
    const int64_t rows = std::min(kBlockM, j.M - mb * kBlockM);
    const Columns16 lo(j, p * NR), hi(j, p * NR + 16);  // the panel's epilogue constants, loaded once
    for (int64_t s = 0; s * MR < rows; ++s) {
      const uint8_t* strip = a + s * MR * lda;
      const uint8_t* const r[MR] = {strip,           strip + lda,     strip + 2 * lda, strip + 3 * lda,
                                    strip + 4 * lda, strip + 5 * lda, strip + 6 * lda, strip + 7 * lda};
      __m512i acc[MR][2];
      kernel_8x32(r, b, c.kq, [](int64_t q) { return 4 * q; }, acc);
      store_rows(acc, lo, hi, j, e, mb * kBlockM + s * MR, std::min(MR, rows - s * MR));
    }
  }
  if (buf) scratch_free(buf);
}

// The direct convolution (RowQuadConvJob, internal.h): output pixels
// in blocks of kBlockM with the panels fastest, as above, but no gathering:
// a strip's eight row pointers are its pixels' windows in the padded copy of
// the input, and quad q of every window lies quad_offset[q] bytes on.
void compute_row_quads(void* vctx, int64_t begin, int64_t end) {
  const RowQuadConvJob& sj = *static_cast<const RowQuadConvJob*>(vctx);
  const GemmJob& j = sj.gemm;
  const Ep512 e(*j.ep);
  const auto* bdata = reinterpret_cast<const int8_t*>(j.B->data());
  const int64_t kq = sj.kh * sj.row_quads, panels = j.B->n_pad() / NR;
  const int64_t plane = sj.out_h * sj.out_w, row_bytes = sj.wp * sj.channels;
  const int64_t step_x = sj.stride_w * sj.channels, step_y = sj.stride_h * row_bytes;
  const int64_t* off = sj.quad_offset;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t mb = item / panels, p = item % panels;
    const int8_t* b = bdata + p * kq * NR * 4;
    const int64_t rows = std::min(kBlockM, j.M - mb * kBlockM);
    const Columns16 lo(j, p * NR), hi(j, p * NR + 16);
    // The block's first pixel, then stepped (a division per pixel would cost
    // about what its multiplies do).
    const int64_t m = mb * kBlockM, img = m / plane, rem = m - img * plane;
    int64_t y = rem / sj.out_w, x = rem - y * sj.out_w;
    const uint8_t* row = sj.padded + img * sj.hp * row_bytes + y * step_y;
    for (int64_t s = 0; s * MR < rows; ++s) {
      const int64_t strip_rows = std::min(MR, rows - s * MR);
      const uint8_t* r[MR];
      for (int64_t i = 0; i < MR; ++i) {
        if (i >= strip_rows) {
          r[i] = r[0];  // past the last pixel: computed, never stored
          continue;
        }
        r[i] = row + x * step_x;
        if (++x == sj.out_w) {
          x = 0;
          row += step_y;
          if (++y == sj.out_h) {  // the next image
            y = 0;
            row += (sj.hp - sj.out_h * sj.stride_h) * row_bytes;
          }
        }
      }
      __m512i acc[MR][2];
      kernel_8x32(r, b, kq, [off](int64_t q) { return off[q]; }, acc);
      store_rows(acc, lo, hi, j, e, m + s * MR, strip_rows);
    }
  }
}

}  // namespace

void COMPRESS_VNNI_ENTRY(const GemmJob& job, const ParallelFor& pf) {
  Ctx c;
  c.job = &job;
  c.kq = job.B->k_pad() / 4;
  c.kp = c.kq * 4;
  c.panels = job.B->n_pad() / NR;
  c.mblocks = (job.M + kBlockM - 1) / kBlockM;
  const bool in_place = job.rows == nullptr && job.B->k() == c.kp;
  c.direct_mblocks = in_place ? job.M / kBlockM : 0;
  run_parallel(pf, c.mblocks * c.panels, &c, compute);
}

void COMPRESS_VNNI_ROW_QUADS_ENTRY(const RowQuadConvJob& job, const ParallelFor& pf) {
  const int64_t mblocks = (job.gemm.M + kBlockM - 1) / kBlockM;
  run_parallel(pf, mblocks * (job.gemm.B->n_pad() / NR), const_cast<RowQuadConvJob*>(&job), compute_row_quads);
}

}  // namespace compress::kernels::detail
