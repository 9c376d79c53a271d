// gemm_u8s8s32_amx_32x32: Intel AMX (tdpbusd), for weights packed in the
// VNNI layout vnni_n32k4_s8. Compiled with the AVX-512 and AMX flags (this
// file only); runs where cpu_supports(Isa::amx), i.e. CPUID, XCR0 and the
// Linux permission for the tile data state all agree (isa.cpp).
//
// tdpbusd multiplies a 16 x 64 u8 tile (16 rows of A, 64 k) by a 16 x 64 s8
// tile holding 16 k-quads of 16 columns (each row: 16 columns x 4 bytes) and
// adds into a 16 x 16 s32 tile, with no intermediate saturation: the same sums
// as vpdpbusd. The VNNI layout stores, per 32-column panel, one 128-byte row
// per k-quad (32 columns x 4 bytes), so the two 16-column halves of a panel
// are B tiles read straight from the packed weight with a 128-byte stride.
// Only the last, partial 64-k block (k_pad not a multiple of 64) is copied,
// zero-padded, into a small buffer per call.
//
// Blocking: 32 x 32 outputs per work item in four accumulator tiles
// (tmm0..3), two A tiles (tmm4, 5) and two B tiles (tmm6, 7): each tile load
// feeds two tdpbusd. A rows are gathered per item into a thread-local
// 32 x k64 buffer (K rounded up to 64, zeros beyond K), straight from A or from
// GemmJob::rows (implicit im2col), once per m-block a thread visits: work items
// are m-block major. Accumulators go through a 4 KB buffer to the AVX-512
// epilogue shared with the VNNI kernel, so results are bit-identical to it
// and to the reference.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "compress/kernels/packing_traits.h"
#include "epilogue_avx512.h"
#include "internal.h"

namespace compress::kernels::detail {
namespace {

constexpr int64_t kTileRows = 16;                  // rows of every tile
constexpr int64_t kTileK = 64;                     // k per tile (bytes of an A tile row)
constexpr int64_t kBlockM = 2 * kTileRows;         // rows of a work item
constexpr int64_t kPanel = Avx512VnniTraits::NR;   // 32 columns: one VNNI panel
constexpr int64_t kQuadRow = kPanel * 4;           // bytes of one k-quad row of a panel
constexpr int64_t kTailBytes = kTileRows * kQuadRow;  // one zero-padded B block per panel

// The 64-byte operand of ldtilecfg (palette 1).
struct TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

struct Ctx {
  const GemmJob* job;
  int64_t k64;           // K rounded up to 64: bytes of a packed A row
  int64_t kq;            // k_pad / 4: quads of a panel in the packed weight
  int64_t full_blocks;   // 64-k blocks read straight from the packed weight
  const int8_t* tail;    // [panels][16 quads][128 bytes]: the partial last block, or nullptr
  int64_t mblocks, panels;
};

// Rows m0 .. m0 + 31 of A into buf (k64 bytes each); rows past M and bytes
// past K stay zero (the buffer starts zeroed; past-M rows are cleared here
// because a thread reuses the buffer).
void gather_a(const Ctx& c, int64_t mb, uint8_t* buf) {
  const GemmJob& j = *c.job;
  const int64_t m0 = mb * kBlockM, count = std::min(kBlockM, j.M - m0), K = j.B->k();
  if (j.rows != nullptr) {
    j.rows(j.row_ctx, m0, count, buf, c.k64);
  } else {
    for (int64_t r = 0; r < count; ++r) std::memcpy(buf + r * c.k64, j.A + (m0 + r) * j.lda, static_cast<size_t>(K));
  }
  if (count < kBlockM) std::memset(buf + count * c.k64, 0, static_cast<size_t>((kBlockM - count) * c.k64));
}

void compute(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const Ep512 e(*j.ep);
  const auto* bdata = reinterpret_cast<const int8_t*>(j.B->data());
  auto* abuf = static_cast<uint8_t*>(scratch_alloc(kBlockM * c.k64));
  alignas(64) int32_t acc[kBlockM][kPanel];

  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kTileRows;
    cfg.colsb[t] = 64;  // C: 16 s32, A: 64 u8, B: 16 columns x 4 s8
  }
  _tile_loadconfig(&cfg);

  int64_t gathered = -1;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t mb = item / c.panels, p = item % c.panels;
    if (mb != gathered) {
      gather_a(c, mb, abuf);
      gathered = mb;
    }
    const int64_t rows = std::min(kBlockM, j.M - mb * kBlockM);
    const bool two_strips = rows > kTileRows;  // the second A tile has real rows
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const int8_t* panel = bdata + p * c.kq * kQuadRow;
    const int64_t blocks = c.full_blocks + (c.tail ? 1 : 0);
    for (int64_t kb = 0; kb < blocks; ++kb) {
      const int8_t* b = kb < c.full_blocks ? panel + kb * kTileRows * kQuadRow : c.tail + p * kTailBytes;
      const uint8_t* a = abuf + kb * kTileK;
      _tile_loadd(4, a, c.k64);
      _tile_loadd(6, b, kQuadRow);
      _tile_loadd(7, b + 64, kQuadRow);
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 7);
      if (two_strips) {
        _tile_loadd(5, a + kTileRows * c.k64, c.k64);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
      }
    }
    _tile_stored(0, &acc[0][0], kPanel * 4);
    _tile_stored(1, &acc[0][16], kPanel * 4);
    if (two_strips) {
      _tile_stored(2, &acc[kTileRows][0], kPanel * 4);
      _tile_stored(3, &acc[kTileRows][16], kPanel * 4);
    }
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t m = mb * kBlockM + i;
      store16(_mm512_load_si512(&acc[i][0]), j, e, m, p * kPanel);
      store16(_mm512_load_si512(&acc[i][16]), j, e, m, p * kPanel + 16);
    }
  }
  _tile_release();  // the tile state costs every context switch while it is live
  scratch_free(abuf);
}

}  // namespace

void gemm_amx_32x32(const GemmJob& job, const ParallelFor& pf) {
  const PackedView& B = *job.B;
  Ctx c;
  c.job = &job;
  c.k64 = (B.k() + kTileK - 1) / kTileK * kTileK;
  c.kq = B.k_pad() / 4;
  c.full_blocks = B.k_pad() / kTileK;
  c.panels = B.n_pad() / kPanel;
  c.mblocks = (job.M + kBlockM - 1) / kBlockM;
  int8_t* tail = nullptr;
  const int64_t tail_quads = c.kq - c.full_blocks * kTileRows;
  if (tail_quads > 0) {
    tail = static_cast<int8_t*>(scratch_alloc(c.panels * kTailBytes));  // zeroed: quads past k_pad add nothing
    const auto* bdata = reinterpret_cast<const int8_t*>(B.data());
    for (int64_t p = 0; p < c.panels; ++p)
      std::memcpy(tail + p * kTailBytes, bdata + (p * c.kq + c.full_blocks * kTileRows) * kQuadRow,
                  static_cast<size_t>(tail_quads * kQuadRow));
  }
  c.tail = tail;
  run_parallel(pf, c.mblocks * c.panels, &c, compute);
  if (tail) scratch_free(tail);
}

}  // namespace compress::kernels::detail
