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
// multiplies execute; one instance per output type and residual), so results
// are bit-identical to it and to the reference.
//
// Direct convolutions (no im2col) prepare a copy of the input that the A
// tiles read in place, a group of images at a time so that the copy is still
// in L2 when the tiles load it: stride-1 layers with c_in a multiple of 64
// (a zero-point padded copy), and stride-2 stems with c_in <= 4 (a
// space-to-depth copy, with the weight rearranged to match; see
// conv_amx_stem_s2d in internal.h).
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
// The padded input a direct convolution copies and multiplies at a time.
constexpr int64_t kDirectGroupBytes = 512 * 1024;
// From this many groups on, threads take whole groups (see run_direct).
constexpr int64_t kGroupsPerLayerSplit = 8;

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

// An item whose accumulators wait in memory for the epilogue, which runs
// after the next item's tile multiplies are issued (the tile unit computes
// while the vector units requantize). Spreading it in slices between the
// k-blocks instead measured no faster.
struct Pending {
  int32_t (*acc)[kPanel] = nullptr;  // nullptr when nothing waits
  int64_t rows = 0;                  // accumulator rows
  int64_t out_row[kBlockM];          // output row of each accumulator row; -1: dropped
  Columns16 cols[2];                 // a half past n has an empty mask: stores nothing
};

// Makes rows x 32 accumulators of m-block mb, panel p the pending item.
void set_pending(const Ctx& c, Pending& pd, int32_t (*acc)[kPanel], int64_t rows, int64_t mb, int64_t p) {
  const GemmJob& j = *c.job;
  pd.acc = acc;
  pd.rows = rows;
  pd.cols[0] = Columns16(j, p * kPanel);
  pd.cols[1] = Columns16(j, p * kPanel + 16);
  const int64_t v0 = mb * kBlockM;
  if (c.virt == nullptr) {
    for (int64_t i = 0; i < rows; ++i) pd.out_row[i] = v0 + i;
    return;
  }
  // Virtual row -> output pixel, stepped from one division per block.
  const VirtualRows& vr = *c.virt;
  int64_t x = v0 % vr.wp, y = (v0 / vr.wp) % vr.hp, b = v0 / (vr.wp * vr.hp);
  for (int64_t i = 0; i < rows; ++i) {
    pd.out_row[i] = y < vr.oh && x < vr.ow ? (b * vr.oh + y) * vr.ow + x : -1;
    if (++x == vr.wp) {
      x = 0;
      if (++y == vr.hp) {
        y = 0;
        ++b;
      }
    }
  }
}

// The pending item through the epilogue, both 16-column halves of a row in
// turn; one instance per output type and residual, chosen once per call
// (DrainFn): the generic epilogue's per-row tests more than doubled its time.
template <OutType kOut, bool kResidual>
void drain(const GemmJob& j, const Pending& pd, const Ep512& e) {
  const Columns16 c0 = pd.cols[0], c1 = pd.cols[1];
  for (int64_t r = 0; r < pd.rows; ++r) {
    const int64_t m = pd.out_row[r];
    if (m < 0) continue;
    store_row16_as<kOut, kResidual>(_mm512_load_si512(&pd.acc[r][0]), c0, j, e, m);
    store_row16_as<kOut, kResidual>(_mm512_load_si512(&pd.acc[r][16]), c1, j, e, m);
  }
}

using DrainFn = void (*)(const GemmJob&, const Pending&, const Ep512&);

DrainFn drain_for(const Epilogue& ep) {
  const bool res = ep.residual != nullptr;
  switch (ep.out) {
    case OutType::u8: return res ? drain<OutType::u8, true> : drain<OutType::u8, false>;
    case OutType::s8: return res ? drain<OutType::s8, true> : drain<OutType::s8, false>;
    default: return res ? drain<OutType::f32, true> : drain<OutType::f32, false>;
  }
}

void compute(void* vctx, int64_t begin, int64_t end) {
  const Ctx& c = *static_cast<Ctx*>(vctx);
  const GemmJob& j = *c.job;
  const Ep512 e(*j.ep);
  const auto* bdata = reinterpret_cast<const int8_t*>(j.B->data());
  auto* abuf = static_cast<uint8_t*>(scratch_alloc(kBlockM * c.k64));
  // Two accumulator buffers: the previous item's epilogue (Pending) reads one
  // while this item's tiles accumulate and are stored into the other.
  alignas(64) int32_t acc[2][kBlockM][kPanel];
  int32_t(*out)[kPanel] = acc[0];  // where this item's tiles are stored
  Pending pending;
  const DrainFn drain_rows = drain_for(*j.ep);

  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kTileRows;
    cfg.colsb[t] = 64;  // C: 16 s32, A: 64 u8, B: 16 columns x 4 s8
  }
  _tile_loadconfig(&cfg);

  const int64_t blocks = c.full_blocks + (c.tail ? 1 : 0);
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
    if (pending.acc) drain_rows(j, pending, e);
    _tile_stored(0, &out[0][0], kPanel * 4);
    _tile_stored(1, &out[0][16], kPanel * 4);
    if (two_strips) {
      _tile_stored(2, &out[kTileRows][0], kPanel * 4);
      _tile_stored(3, &out[kTileRows][16], kPanel * 4);
    }
    set_pending(c, pending, out, rows, mb, p);
    out = out == acc[0] ? acc[1] : acc[0];
  }
  if (pending.acc) drain_rows(j, pending, e);
  _tile_release();  // the tile state costs every context switch while it is live
  scratch_free(abuf);
}


// The weight-side set-up shared by all entry points, and the run: split by
// pf, or on this thread when pf is null.
void run(Ctx& c, const ParallelFor* pf) {
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
  if (pf)
    run_parallel(*pf, c.mblocks * c.panels, &c, compute);
  else
    compute(&c, 0, c.mblocks * c.panels);
  if (tail) scratch_free(tail);
}

// What a direct convolution's GEMM reads: a prepared copy of a group of
// images (zero-point padded; for the stem also rearranged) in which output
// pixel (y, x) is virtual pixel (y, x) of a grid of hp x wp pixels of
// `pixel_bytes`, and k-block kb of its row starts kb_offset[kb] bytes after it.
struct DirectPlan {
  VirtualRows grid;
  int64_t pixel_bytes;
  std::vector<int64_t> kb_offset;
  int64_t slack;  // pixels past the last image the dropped rows' taps may read
  uint8_t zp;     // the activation zero point: padding, and the slack
  RangeFn fill;   // fills the copy's rows [begin, end) (image-major) from ctx
};

// Rows [begin, end) of a stride-2 stem's copy (c <= 4 channels): pixel
// (Y, X) is the 64-byte k-block that kernel row pair Y of output column X
// reads: for b in 0..3, i, j in {0, 1}, bytes b * 16 + (2i + j) * 4 .. + c
// hold padded-input pixel (2Y + i, 2X + 2b + j) (the zero point outside the
// image). Byte c .. 3 of each slot meets a zero weight.
void stem_rows(void* vctx, int64_t begin, int64_t end) {
  const FillCtx& p = *static_cast<FillCtx*>(vctx);
  // 3 channels, a whole window row inside the image: one permute of the two
  // input rows' 8 pixels (24 bytes each) per copy pixel.
  alignas(64) uint8_t index[64];
  for (int64_t q = 0; q < 64; ++q) {
    const int64_t b = q / 16, i = q / 8 % 2, j = q / 4 % 2, c = std::min<int64_t>(q % 4, 2);
    index[q] = static_cast<uint8_t>(i * 64 + (2 * b + j) * 3 + c);
  }
  const __m512i perm = _mm512_load_si512(index), zp = _mm512_set1_epi8(static_cast<char>(p.zp));
  constexpr __mmask64 k24 = (__mmask64{1} << 24) - 1;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t img = r / p.hp, Y = r % p.hp;
    uint8_t* dst = p.copy + r * p.wp * 64;
    const uint8_t* rows[2];
    for (int64_t i = 0; i < 2; ++i) {
      const int64_t y = 2 * Y + i - p.pad_h;
      rows[i] = y >= 0 && y < p.h ? p.input + (img * p.h + y) * p.w * p.c : nullptr;
    }
    for (int64_t X = 0; X < p.wp; ++X, dst += 64) {
      const int64_t x0 = 2 * X - p.pad_w;
      if (p.c == 3 && x0 >= 0 && x0 + 8 <= p.w) {
        const __m512i r0 = rows[0] ? _mm512_maskz_loadu_epi8(k24, rows[0] + x0 * 3) : zp;
        const __m512i r1 = rows[1] ? _mm512_maskz_loadu_epi8(k24, rows[1] + x0 * 3) : zp;
        _mm512_store_si512(dst, _mm512_permutex2var_epi8(r0, perm, r1));
        continue;
      }
      std::memset(dst, p.zp, 64);
      for (int64_t i = 0; i < 2; ++i) {
        if (rows[i] == nullptr) continue;
        for (int64_t t = 0; t < 8; ++t)
          if (x0 + t >= 0 && x0 + t < p.w)
            std::memcpy(dst + (t / 2) * 16 + (2 * i + t % 2) * 4, rows[i] + (x0 + t) * p.c, static_cast<size_t>(p.c));
      }
    }
  }
}

struct DirectRun {
  const uint8_t* input;
  int64_t batch, height, width, channels, pad_h, pad_w;
  const DirectPlan* plan;
  const GemmJob* job;
  int64_t group;       // images prepared and multiplied at a time
  int64_t copy_bytes;  // a group's copy, with the slack
};

// Images b0 .. b0 + group - 1 (fewer at the end): prepared into `copy`, then
// multiplied; the work split by pf, or on this thread when pf is null.
void direct_group(const DirectRun& d, int64_t b0, uint8_t* copy, const ParallelFor* pf) {
  const DirectPlan& plan = *d.plan;
  const VirtualRows& vr = plan.grid;
  const int64_t images = std::min(d.group, d.batch - b0), pixels = images * vr.hp * vr.wp;
  FillCtx fc{d.input + b0 * d.height * d.width * d.channels, copy, d.height, d.width, d.channels, vr.hp, vr.wp,
             d.pad_h, d.pad_w, plan.zp};
  if (pf)
    run_parallel(*pf, images * vr.hp, &fc, plan.fill);
  else
    plan.fill(&fc, 0, images * vr.hp);
  std::memset(copy + pixels * plan.pixel_bytes, plan.zp, static_cast<size_t>(plan.slack * plan.pixel_bytes));
  // This group's outputs and residual rows.
  const Epilogue& ep = *d.job->ep;
  const int64_t esz = ep.out == OutType::f32 ? 4 : 1, out0 = b0 * vr.oh * vr.ow;
  Epilogue group_ep = ep;
  if (ep.residual) group_ep.residual = static_cast<const uint8_t*>(ep.residual) + out0 * ep.ld_residual * esz;
  GemmJob group_job = *d.job;
  group_job.C = static_cast<uint8_t*>(d.job->C) + out0 * d.job->ldc * esz;
  group_job.ep = &group_ep;
  Ctx c;
  c.job = &group_job;
  c.M = pixels;
  c.a_base = copy;
  c.a_stride = plan.pixel_bytes;
  c.kb_offset = plan.kb_offset.data();
  c.direct_mblocks = (pixels + kBlockM - 1) / kBlockM;
  c.virt = &vr;
  run(c, pf);
}

// Groups [begin, end) on this thread, with its own copy.
void direct_groups(void* vctx, int64_t begin, int64_t end) {
  const DirectRun& d = *static_cast<DirectRun*>(vctx);
  auto* copy = static_cast<uint8_t*>(scratch_alloc(d.copy_bytes, false));
  for (int64_t g = begin; g < end; ++g) direct_group(d, g * d.group, copy, nullptr);
  scratch_free(copy);
}

// Runs a direct convolution: images in groups whose prepared copy stays in
// L2. Prepared and then multiplied at once, the copy is read from L2 by the
// tile loads instead of going to memory and back (at batch 32 a 56x56x64
// layer's copy is 7 MB, and the tile loads' stalls on it doubled the
// layer's time). With enough groups the threads take whole groups (one
// parallel region per layer, each thread's copy in its own L2); otherwise
// they share each group's preparation and multiplication.
void run_direct(const uint8_t* input, int64_t batch, int64_t height, int64_t width, int64_t channels, int64_t pad_h,
                int64_t pad_w, const DirectPlan& plan, const GemmJob& job, const ParallelFor& pf) {
  const VirtualRows& vr = plan.grid;
  const int64_t image_bytes = vr.hp * vr.wp * plan.pixel_bytes;
  const int64_t group = std::clamp<int64_t>(kDirectGroupBytes / image_bytes, 1, batch);
  // Not zeroed: the fill writes every pixel and direct_group sets the slack.
  DirectRun d{input, batch, height, width, channels, pad_h, pad_w, &plan, &job, group,
              (group * vr.hp * vr.wp + plan.slack) * plan.pixel_bytes};
  const int64_t groups = (batch + group - 1) / group;
  if (groups >= kGroupsPerLayerSplit) {
    run_parallel(pf, groups, &d, direct_groups);
    return;
  }
  auto* copy = static_cast<uint8_t*>(scratch_alloc(d.copy_bytes, false));
  for (int64_t g = 0; g < groups; ++g) direct_group(d, g * group, copy, &pf);
  scratch_free(copy);
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
  run(c, &pf);
}

bool conv_amx_direct(const uint8_t* input, int64_t batch, int64_t height, int64_t width, int64_t pad_h,
                     int64_t pad_w, const GemmJob& job, const ParallelFor& pf) {
  const PackedView& W = *job.B;
  const int64_t C = W.c_in(), kh = W.kh(), kw = W.kw();
  if (C % kTileK != 0) return false;
  const int64_t hp = height + 2 * pad_h, wp = width + 2 * pad_w;
  DirectPlan plan{{wp, hp, hp - kh + 1, wp - kw + 1}, C, {}, 0, static_cast<uint8_t>(W.a_zero_point()), pad_rows};
  if (plan.grid.oh <= 0 || plan.grid.ow <= 0) return false;
  // The taps of the last block's dropped rows read up to (kh - 1) rows,
  // kw - 1 pixels and one block beyond the last image.
  plan.slack = (kh - 1) * wp + (kw - 1) + kBlockM;
  // k-block kb covers channels c0 .. c0 + 63 of tap t: K is in (kh, kw, c) order.
  for (int64_t kb = 0; kb < W.k() / kTileK; ++kb) {
    const int64_t t = kb * kTileK / C, c0 = kb * kTileK % C;
    plan.kb_offset.push_back(((t / kw) * wp + t % kw) * C + c0);
  }
  run_direct(input, batch, height, width, C, pad_h, pad_w, plan, job, pf);
  return true;
}

void conv_amx_stem_s2d(const uint8_t* input, int64_t batch, int64_t height, int64_t width, int64_t channels,
                       int64_t pad_h, int64_t pad_w, int64_t out_h, int64_t out_w, const GemmJob& job,
                       const ParallelFor& pf) {
  const PackedView& W = *job.B;  // the rearranged weight: ceil(kh / 2) k-blocks of 64 bytes
  const int64_t taps_h = W.kh();
  // Copy row Y serves output rows Y - taps_h + 1 .. Y; rows past out_h are dropped.
  DirectPlan plan{{out_w, out_h + taps_h - 1, out_h, out_w}, kTileK, {}, 0,
                  static_cast<uint8_t>(W.a_zero_point()), stem_rows};
  for (int64_t a = 0; a < taps_h; ++a) plan.kb_offset.push_back(a * out_w * kTileK);
  plan.slack = (taps_h - 1) * out_w + kBlockM;
  run_direct(input, batch, height, width, channels, pad_h, pad_w, plan, job, pf);
}

}  // namespace compress::kernels::detail
