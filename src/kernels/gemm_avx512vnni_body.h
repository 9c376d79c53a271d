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

// acc[i][0..1] = sum over quads q of a_i[4q..4q+3] . b[q] for the MR rows
// a + i * lda and one 32-column panel. Sixteen named accumulators: GCC kept
// an array of them in memory, moving each through the stack every quad.
inline void kernel_8x32(const uint8_t* a, int64_t lda, const int8_t* b, int64_t kq, __m512i acc[MR][2]) {
  static_assert(MR == 8, "kernel_8x32 is written out for 8 rows");
  const uint8_t *r0 = a, *r1 = a + lda, *r2 = a + 2 * lda, *r3 = a + 3 * lda;
  const uint8_t *r4 = a + 4 * lda, *r5 = a + 5 * lda, *r6 = a + 6 * lda, *r7 = a + 7 * lda;
  __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  __m512i c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
  for (int64_t q = 0; q < kq; ++q, b += NR * 4) {
    const __m512i b0 = _mm512_loadu_si512(b);
    const __m512i b1 = _mm512_loadu_si512(b + 64);
    const int64_t k = 4 * q;
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
      __m512i acc[MR][2];
      kernel_8x32(a + s * MR * lda, lda, b, c.kq, acc);
      const int64_t m0 = mb * kBlockM + s * MR, strip_rows = std::min(MR, rows - s * MR);
      for (int64_t i = 0; i < strip_rows; ++i) {
        if (lo.any) store_row16(acc[i][0], lo, j, e, m0 + i);
        if (hi.any) store_row16(acc[i][1], hi, j, e, m0 + i);
      }
    }
  }
  if (buf) scratch_free(buf);
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

}  // namespace compress::kernels::detail
