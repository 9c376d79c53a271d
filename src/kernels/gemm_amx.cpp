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
// feeds two tdpbusd. A tiles are read in place where the layout allows
// (Ctx::a_base: 1x1 layers, the direct convolution); otherwise 32 rows are
// gathered into a thread-local 32 x k64 buffer (K rounded up to 64, zeros
// beyond K), straight from A or from GemmJob::rows (implicit im2col). Work
// items visit up to Ctx::mchunk m-blocks per weight panel. Accumulators go
// through two alternating 4 KB buffers to the AVX-512 epilogue shared with
// the VNNI kernel (one item's epilogue runs while the next item's tile
// multiplies execute), so results are bit-identical to it and to the
// reference.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

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

// Rows of a direct convolution's implicit GEMM: "virtual" pixels v of the
// zero-point-padded input (b, y, x) with x < Wp, y < Hp, so that the pixel a
// tap (ky, kx) reads is v + ky * Wp + kx for every v: one stride for a whole
// A tile. Rows with y >= OH or x >= OW are computed and dropped (a few per
// cent of the work).
struct VirtualRows {
  int64_t wp, hp, oh, ow;
};

struct Ctx {
  const GemmJob* job;
  int64_t M;             // rows of the GEMM (virtual rows for a direct convolution)
  int64_t k64;           // K rounded up to 64: bytes of a packed A row
  int64_t kq;            // k_pad / 4: quads of a panel in the packed weight
  int64_t full_blocks;   // 64-k blocks read straight from the packed weight
  const int8_t* tail;    // [panels][16 quads][128 bytes]: the partial last block, or nullptr
  int64_t mblocks, panels;
  // Work items visit `mchunk` m-blocks for each panel before the next panel,
  // so a panel of a large-K weight is read from memory once per chunk and
  // then from L2 (B, not A, is what bounds layers like 3x3 512 -> 512).
  int64_t mchunk = 1;
  // A tiles read in place (no gather) for m-blocks below `direct_mblocks`:
  // row m of k-block kb starts at a_base + m * a_stride + kb_offset[kb].
  const uint8_t* a_base = nullptr;
  int64_t a_stride = 0;
  const int64_t* kb_offset = nullptr;
  int64_t direct_mblocks = 0;
  const VirtualRows* virt = nullptr;  // set for a direct convolution
};

// Rows m0 .. m0 + 31 of A into buf (k64 bytes each); rows past M and bytes
// past K stay zero (the buffer starts zeroed; past-M rows are cleared here
// because a thread reuses the buffer).
void gather_a(const Ctx& c, int64_t mb, uint8_t* buf) {
  const GemmJob& j = *c.job;
  const int64_t m0 = mb * kBlockM, count = std::min(kBlockM, c.M - m0), K = j.B->k();
  if (j.rows != nullptr) {
    j.rows(j.row_ctx, m0, count, buf, c.k64);
  } else {
    for (int64_t r = 0; r < count; ++r) std::memcpy(buf + r * c.k64, j.A + (m0 + r) * j.lda, static_cast<size_t>(K));
  }
  if (count < kBlockM) std::memset(buf + count * c.k64, 0, static_cast<size_t>((kBlockM - count) * c.k64));
}

// The epilogue of one item: rows x 32 accumulators of m-block mb, panel p.
void epilogue_block(const Ctx& c, int32_t (*acc)[kPanel], int64_t rows, int64_t mb, int64_t p, const Ep512& e) {
  const GemmJob& j = *c.job;
  for (int64_t half = 0; half < 2; ++half) {
    const Columns16 cols(j, p * kPanel + half * 16);
    if (!cols.any) continue;
    if (c.virt == nullptr) {
      for (int64_t i = 0; i < rows; ++i)
        store_row16(_mm512_load_si512(&acc[i][half * 16]), cols, j, e, mb * kBlockM + i);
      continue;
    }
    // Virtual row -> output pixel, stepped from one division per block.
    const VirtualRows& vr = *c.virt;
    const int64_t v0 = mb * kBlockM;
    int64_t x = v0 % vr.wp, y = (v0 / vr.wp) % vr.hp, b = v0 / (vr.wp * vr.hp);
    for (int64_t i = 0; i < rows; ++i) {
      if (y < vr.oh && x < vr.ow)
        store_row16(_mm512_load_si512(&acc[i][half * 16]), cols, j, e, (b * vr.oh + y) * vr.ow + x);
      if (++x == vr.wp) {
        x = 0;
        if (++y == vr.hp) {
          y = 0;
          ++b;
        }
      }
    }
  }
}

void compute(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const Ep512 e(*j.ep);
  const auto* bdata = reinterpret_cast<const int8_t*>(j.B->data());
  auto* abuf = static_cast<uint8_t*>(scratch_alloc(kBlockM * c.k64));
  // Two accumulator buffers: the epilogue of the previous item runs after
  // this item's tile multiplies are issued, so the vector units requantize
  // while the tile unit computes.
  alignas(64) int32_t acc[2][kBlockM][kPanel];
  int32_t(*out)[kPanel] = acc[0];  // where this item's tiles are stored
  struct Pending {
    int32_t (*acc)[kPanel] = nullptr;  // the other buffer, or nullptr when nothing waits
    int64_t rows = 0, mb = 0, p = 0;
  } pending;

  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kTileRows;
    cfg.colsb[t] = 64;  // C: 16 s32, A: 64 u8, B: 16 columns x 4 s8
  }
  _tile_loadconfig(&cfg);

  int64_t gathered = -1;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t chunk = item / (c.panels * c.mchunk), rem = item - chunk * c.panels * c.mchunk;
    const int64_t chunk_blocks = std::min(c.mchunk, c.mblocks - chunk * c.mchunk);
    const int64_t p = rem / chunk_blocks, mb = chunk * c.mchunk + rem % chunk_blocks;
    const int64_t rows = std::min(kBlockM, c.M - mb * kBlockM);
    const bool two_strips = rows > kTileRows;  // the second A tile has real rows
    const bool direct = mb < c.direct_mblocks;
    if (!direct && mb != gathered) {
      gather_a(c, mb, abuf);
      gathered = mb;
    }
    const uint8_t* a_rows = direct ? c.a_base + mb * kBlockM * c.a_stride : abuf;
    const int64_t a_stride = direct ? c.a_stride : c.k64;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const int8_t* panel = bdata + p * c.kq * kQuadRow;
    const int64_t blocks = c.full_blocks + (c.tail ? 1 : 0);
    for (int64_t kb = 0; kb < blocks; ++kb) {
      const int8_t* b = kb < c.full_blocks ? panel + kb * kTileRows * kQuadRow : c.tail + p * kTailBytes;
      const uint8_t* a = a_rows + (direct ? c.kb_offset[kb] : kb * kTileK);
      _tile_loadd(4, a, a_stride);
      _tile_loadd(6, b, kQuadRow);
      _tile_loadd(7, b + 64, kQuadRow);
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 7);
      if (two_strips) {
        _tile_loadd(5, a + kTileRows * a_stride, a_stride);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
      }
    }
    if (pending.acc) epilogue_block(c, pending.acc, pending.rows, pending.mb, pending.p, e);
    _tile_stored(0, &out[0][0], kPanel * 4);
    _tile_stored(1, &out[0][16], kPanel * 4);
    if (two_strips) {
      _tile_stored(2, &out[kTileRows][0], kPanel * 4);
      _tile_stored(3, &out[kTileRows][16], kPanel * 4);
    }
    pending = {out, rows, mb, p};
    out = out == acc[0] ? acc[1] : acc[0];
  }
  if (pending.acc) epilogue_block(c, pending.acc, pending.rows, pending.mb, pending.p, e);
  _tile_release();  // the tile state costs every context switch while it is live
  scratch_free(abuf);
}


// The weight-side set-up shared by both entry points, and the run.
void run(Ctx& c, const ParallelFor& pf) {
  const PackedView& B = *c.job->B;
  c.k64 = (B.k() + kTileK - 1) / kTileK * kTileK;
  c.kq = B.k_pad() / 4;
  c.full_blocks = B.k_pad() / kTileK;
  c.panels = B.n_pad() / kPanel;
  c.mblocks = (c.M + kBlockM - 1) / kBlockM;
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
  // A chunk's A rows stay well inside L2 next to one B panel (32 x K bytes):
  // in place, a block's A is 32 x lda; a direct convolution re-reads the same
  // few input rows for every tap, so its blocks are cheap to keep.
  if (c.direct_mblocks > 0) {
    const int64_t a_block_bytes = c.virt ? kBlockM * B.c_in() : kBlockM * c.k64;
    c.mchunk = std::clamp<int64_t>((int64_t{1} << 20) / std::max<int64_t>(1, a_block_bytes), 1, 16);
  }
  run_parallel(pf, c.mblocks * c.panels, &c, compute);
  if (tail) scratch_free(tail);
}

struct PadJob {
  const uint8_t* input;
  uint8_t* padded;
  int64_t h, w, c, hp, wp, pad_h, pad_w;
  uint8_t zp;
};

// Padded rows [begin, end) of all images: the zero point outside the image.
void pad_rows(void* vctx, int64_t begin, int64_t end) {
  const PadJob& p = *static_cast<PadJob*>(vctx);
  for (int64_t r = begin; r < end; ++r) {
    const int64_t b = r / p.hp, y = r % p.hp - p.pad_h;
    uint8_t* dst = p.padded + r * p.wp * p.c;
    if (y < 0 || y >= p.h) {
      std::memset(dst, p.zp, static_cast<size_t>(p.wp * p.c));
      continue;
    }
    std::memset(dst, p.zp, static_cast<size_t>(p.pad_w * p.c));
    std::memcpy(dst + p.pad_w * p.c, p.input + (b * p.h + y) * p.w * p.c, static_cast<size_t>(p.w * p.c));
    std::memset(dst + (p.pad_w + p.w) * p.c, p.zp, static_cast<size_t>((p.wp - p.pad_w - p.w) * p.c));
  }
}

}  // namespace

void gemm_amx_32x32(const GemmJob& job, const ParallelFor& pf) {
  Ctx c;
  c.job = &job;
  c.M = job.M;
  // K a multiple of 64 and A a plain matrix (1x1 convolutions, linear
  // layers): full 32-row blocks are tiles of A itself, read in place.
  std::vector<int64_t> offsets;
  if (job.rows == nullptr && job.B->k() % kTileK == 0) {
    for (int64_t kb = 0; kb < job.B->k() / kTileK; ++kb) offsets.push_back(kb * kTileK);
    c.a_base = job.A;
    c.a_stride = job.lda;
    c.kb_offset = offsets.data();
    c.direct_mblocks = job.M / kBlockM;
  }
  run(c, pf);
}

bool conv_amx_direct(const uint8_t* input, int64_t batch, int64_t height, int64_t width, int64_t pad_h,
                     int64_t pad_w, const GemmJob& job, const ParallelFor& pf) {
  const PackedView& W = *job.B;
  const int64_t C = W.c_in(), kh = W.kh(), kw = W.kw();
  if (C % kTileK != 0) return false;
  const int64_t hp = height + 2 * pad_h, wp = width + 2 * pad_w;
  VirtualRows vr{wp, hp, hp - kh + 1, wp - kw + 1};
  if (vr.oh <= 0 || vr.ow <= 0) return false;
  // Slack past the last image: the taps of the last block's dropped rows
  // read up to (kh - 1) rows, kw - 1 pixels and one block beyond it.
  const int64_t pixels = batch * hp * wp, slack = (kh - 1) * wp + (kw - 1) + kBlockM;
  // Not zeroed: pad_rows writes every pixel and the slack is filled below.
  auto* padded = static_cast<uint8_t*>(scratch_alloc((pixels + slack) * C, false));
  PadJob pj{input, padded, height, width, C, hp, wp, pad_h, pad_w, static_cast<uint8_t>(W.a_zero_point())};
  run_parallel(pf, batch * hp, &pj, pad_rows);
  std::memset(padded + pixels * C, pj.zp, static_cast<size_t>(slack * C));
  // k-block kb covers channels c0 .. c0 + 63 of tap t: K is in (kh, kw, c) order.
  std::vector<int64_t> offsets;
  for (int64_t kb = 0; kb < W.k() / kTileK; ++kb) {
    const int64_t t = kb * kTileK / C, c0 = kb * kTileK % C;
    offsets.push_back(((t / kw) * wp + t % kw) * C + c0);
  }
  Ctx c;
  c.job = &job;
  c.M = pixels;
  c.a_base = padded;
  c.a_stride = C;
  c.kb_offset = offsets.data();
  c.direct_mblocks = (pixels + kBlockM - 1) / kBlockM;
  c.virt = &vr;
  run(c, pf);
  scratch_free(padded);
  return true;
}

}  // namespace compress::kernels::detail
