// The CUDA kernels' index maths (include/compress/kernels/cuda_layout.h) on
// the CPU, no GPU and no nvcc needed: fragment layouts against the PTX ISA's
// formulas and for exact coverage, the 2:4 metadata against a reference
// decoder, the wgmma layout against the descriptor's addressing, and the
// whole sparse kernel emulated lane by lane, zero point included.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "compress/kernels/cuda_layout.h"
#include "compress/kernels/packed.h"
#include "kernel_test_util.h"

using namespace compress::kernels;
using namespace compress::kernels::cuda::layout;

namespace {

// Counts how often each element of a rows x cols tile is named.
struct Coverage {
  int rows, cols;
  std::vector<int> hits;
  Coverage(int r, int c) : rows(r), cols(c), hits(static_cast<size_t>(r * c), 0) {}
  void add(Element e) {
    REQUIRE(e.row >= 0);
    REQUIRE(e.row < rows);
    REQUIRE(e.col >= 0);
    REQUIRE(e.col < cols);
    ++hits[e.row * cols + e.col];
  }
  bool exactly_once() const {
    for (int h : hits)
      if (h != 1) return false;
    return true;
  }
};

// The PTX ISA's formulas, element index i of a lane's fragment ("Matrix
// Fragments for mma.m16n8k32", integer types), written out independently.
Element ptx_m16n8k32_a(int lane, int i) {
  const int g = lane >> 2, t = lane % 4;
  const int row = (i < 4 || (i >= 8 && i < 12)) ? g : g + 8;
  const int col = i < 8 ? t * 4 + (i & 3) : t * 4 + (i & 3) + 16;
  return {row, col};
}
Element ptx_m16n8k32_b(int lane, int i) {
  const int g = lane >> 2, t = lane % 4;
  return {i < 4 ? t * 4 + (i & 3) : t * 4 + (i & 3) + 16, g};
}
Element ptx_m16n8_c(int lane, int i) {
  const int g = lane >> 2, t = lane % 4;
  return {i < 2 ? g : g + 8, t * 2 + (i & 1)};
}

}  // namespace

TEST_CASE("mma.m16n8k32 fragments follow the PTX ISA and cover each tile element once", "[kernels][cuda_layout]") {
  Coverage a(16, 32), b(32, 8), c(16, 8);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 16; ++i) {
      const Element e = mma_m16n8k32_a(lane, i / 4, i % 4), want = ptx_m16n8k32_a(lane, i);
      INFO("A lane " << lane << " a" << i);
      CHECK((e.row == want.row && e.col == want.col));
      a.add(e);
    }
    for (int i = 0; i < 8; ++i) {
      const Element e = mma_m16n8k32_b(lane, i / 4, i % 4), want = ptx_m16n8k32_b(lane, i);
      INFO("B lane " << lane << " b" << i);
      CHECK((e.row == want.row && e.col == want.col));
      b.add(e);
    }
    for (int i = 0; i < 4; ++i) {
      const Element e = mma_m16n8_c(lane, i), want = ptx_m16n8_c(lane, i);
      INFO("C lane " << lane << " c" << i);
      CHECK((e.row == want.row && e.col == want.col));
      c.add(e);
    }
  }
  CHECK(a.exactly_once());
  CHECK(b.exactly_once());
  CHECK(c.exactly_once());
}

TEST_CASE("mma.sp.m16n8k64 fragments and metadata cover each element and group once", "[kernels][cuda_layout]") {
  Coverage a(16, 32), b(64, 8), meta(16, 16);
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane % 4;
    for (int i = 0; i < 16; ++i) {
      const Element e = mma_sp_m16n8k64_a_compressed(lane, i / 4, i % 4);
      // PTX ISA: a_i holds kept values of dense columns firstcol..firstcol+7,
      // firstcol = 8t (i < 8) or 8t + 32; row g for i in 0..3 and 8..11.
      const int firstcol = i < 8 ? t * 8 : t * 8 + 32;
      INFO("A lane " << lane << " a" << i);
      CHECK(e.row == ((i < 4 || (i >= 8 && i < 12)) ? g : g + 8));
      CHECK(e.col / 4 == firstcol / 8);  // 4 kept of those 8 dense columns
      a.add(e);
    }
    for (int i = 0; i < 16; ++i) {
      const Element e = mma_sp_m16n8k64_b(lane, i / 4, i % 4);
      CHECK(e.col == g);
      b.add(e);
    }
    const MetadataSlot s = mma_sp_m16n8k64_metadata(lane);
    for (int j = 0; j < 8; ++j) meta.add({s.row, s.first_group + j});
  }
  CHECK(a.exactly_once());
  CHECK(b.exactly_once());
  CHECK(meta.exactly_once());
}

namespace {

// A random weight with a random 2:4 mask (0, 1 or 2 kept per group of 4).
struct SparseWeight {
  int64_t n, k;
  std::vector<int8_t> w, masked;
  std::vector<uint8_t> mask, blob;
};
SparseWeight random_2of4(std::mt19937& gen, int64_t n, int64_t k, int32_t zero_point) {
  SparseWeight s{n, k, kt::random_s8(gen, n * k), {}, std::vector<uint8_t>(n * k, 0), {}};
  for (int64_t r = 0; r < n; ++r)
    for (int64_t k0 = 0; k0 < k; k0 += 4) {
      const int kept = static_cast<int>(gen() % 3);
      const int first = static_cast<int>(gen() % 4), second = (first + 1 + static_cast<int>(gen() % 3)) % 4;
      for (int q : {first, second})
        if ((q == first ? kept >= 1 : kept == 2) && k0 + q < k) s.mask[r * k + k0 + q] = 1;
    }
  s.masked.resize(n * k);
  for (int64_t i = 0; i < n * k; ++i) s.masked[i] = s.mask[i] ? s.w[i] : 0;
  s.blob = pack_sparse_2_4_u8s8(s.w.data(), s.mask.data(), n, k, zero_point);
  return s;
}

// The packed arrays laid out for the kernel (pad_2of4_for_mma_sp).
struct Padded {
  int64_t k64;
  std::vector<int8_t> values;
  std::vector<uint8_t> idx;
};
Padded pad(const PackedView& v) {
  Padded p{mma_sp_k64(v.k_pad()), {}, {}};
  p.values.resize(v.n() * p.k64 / 2);
  p.idx.resize(v.n() * p.k64 / 4);
  pad_2of4_for_mma_sp(reinterpret_cast<const int8_t*>(v.data()), v.idx(), v.n(), v.k_pad(), p.values.data(),
                      p.idx.data());
  return p;
}

// Reference decoder of one mma.sp.m16n8k64 A operand, from the PTX ISA's
// description: each lane's compressed values and each metadata nibble
// (i0 | i1 << 2, the dense positions of the 2 kept values of a group of 4)
// rebuild the dense 16 x 64 tile. `a[lane][r]`, `e[lane]` as the kernel loads them.
std::vector<int32_t> decode_sparse_a(const uint32_t (&a)[32][4], const uint32_t (&e)[32]) {
  uint32_t nibble[16][16];  // [row][group]
  for (int lane = 0; lane < 32; ++lane) {
    const MetadataSlot s = mma_sp_m16n8k64_metadata(lane);
    for (int j = 0; j < 8; ++j) nibble[s.row][s.first_group + j] = (e[lane] >> (4 * j)) & 0xF;
  }
  std::vector<int32_t> dense(16 * 64, 0);
  for (int lane = 0; lane < 32; ++lane)
    for (int r = 0; r < 4; ++r)
      for (int byte = 0; byte < 4; ++byte) {
        const Element c = mma_sp_m16n8k64_a_compressed(lane, r, byte);
        const int group = c.col / 2, slot = c.col % 2;
        const int pos = static_cast<int>((nibble[c.row][group] >> (2 * slot)) & 3);
        dense[c.row * 64 + group * 4 + pos] = static_cast<int8_t>((a[lane][r] >> (8 * byte)) & 0xFF);
      }
  return dense;
}

// The kernel's loads of one 16-row x 64-column step of the padded weight.
void load_sparse_a(const Padded& p, int64_t n, int64_t n0, int64_t k0, uint32_t (&a)[32][4], uint32_t (&e)[32]) {
  const int64_t half = p.k64 / 2;
  for (int lane = 0; lane < 32; ++lane) {
    for (int r = 0; r < 4; ++r) {
      const Element c = mma_sp_m16n8k64_a_compressed(lane, r, 0);
      a[lane][r] = n0 + c.row < n ? load4(p.values.data() + (n0 + c.row) * half, k0 / 2 + c.col, half) : 0;
    }
    e[lane] = mma_sp_m16n8k64_metadata_word(p.idx.data(), n, p.k64 / 4, n0, k0 / 4, lane);
  }
}

}  // namespace

TEST_CASE("mma.sp metadata words round-trip random 2:4 weights through a reference decoder",
          "[kernels][cuda_layout]") {
  std::mt19937 gen(31);
  const std::set<uint32_t> ordered = {0x4, 0x8, 0x9, 0xC, 0xD, 0xE};  // PTX ISA: the meaningful nibbles
  for (auto [n, k] : {std::pair<int64_t, int64_t>{16, 64}, {17, 130}, {40, 257}, {3, 5}}) {
    const SparseWeight s = random_2of4(gen, n, k, 0);
    const PackedView v(s.blob.data(), static_cast<int64_t>(s.blob.size()));
    const Padded p = pad(v);
    CHECK(p.k64 % 64 == 0);
    CHECK(p.k64 >= v.k_pad());
    for (int64_t n0 = 0; n0 < n; n0 += 16)
      for (int64_t k0 = 0; k0 < p.k64; k0 += 64) {
        uint32_t a[32][4], e[32];
        load_sparse_a(p, n, n0, k0, a, e);
        for (uint32_t word : e)
          for (int j = 0; j < 8; ++j) CHECK(ordered.count((word >> (4 * j)) & 0xF) == 1);
        const std::vector<int32_t> dense = decode_sparse_a(a, e);
        for (int row = 0; row < 16; ++row)
          for (int col = 0; col < 64; ++col) {
            const int64_t wr = n0 + row, wc = k0 + col;
            const int32_t want = (wr < n && wc < k) ? s.masked[wr * k + wc] : 0;
            INFO("n=" << n << " k=" << k << " row " << wr << " col " << wc);
            REQUIRE(dense[row * 64 + col] == want);
          }
      }
  }
}

TEST_CASE("the sparse kernel emulated lane by lane returns sum((a - zero point) * w)", "[kernels][cuda_layout]") {
  std::mt19937 gen(32);
  for (int32_t zp : {0, 3, 128, 255}) {
    const int64_t M = 19, N = 21, K = 150;
    const SparseWeight s = random_2of4(gen, N, K, zp);
    const PackedView v(s.blob.data(), static_cast<int64_t>(s.blob.size()));
    const Padded p = pad(v);
    const std::vector<uint8_t> A = kt::random_u8(gen, M * K);
    std::vector<int32_t> C(M * N, 0x7777), raw(M * N, 0x7777);
    // Grid of the kernel: 16 weight rows x 8 activation rows per warp.
    for (int64_t n0 = 0; n0 < N; n0 += 16)
      for (int64_t m0 = 0; m0 < M; m0 += 8) {
        int64_t d[16][8] = {};
        for (int64_t k0 = 0; k0 < p.k64; k0 += 64) {
          uint32_t a[32][4], e[32], b[32][4];
          load_sparse_a(p, N, n0, k0, a, e);
          for (int lane = 0; lane < 32; ++lane)
            for (int r = 0; r < 4; ++r) {
              const Element c = mma_sp_m16n8k64_b(lane, r, 0);
              b[lane][r] = m0 + c.col < M ? load4(A.data() + (m0 + c.col) * K, k0 + c.row, K) : 0;
            }
          // mma.sp semantics: D += dense(A) * B, B rebuilt from the lanes' registers.
          const std::vector<int32_t> dense = decode_sparse_a(a, e);
          int32_t bm[64][8];
          for (int lane = 0; lane < 32; ++lane)
            for (int r = 0; r < 4; ++r)
              for (int byte = 0; byte < 4; ++byte) {
                const Element c = mma_sp_m16n8k64_b(lane, r, byte);
                bm[c.row][c.col] = static_cast<int32_t>((b[lane][r] >> (8 * byte)) & 0xFF);
              }
          for (int row = 0; row < 16; ++row)
            for (int col = 0; col < 8; ++col)
              for (int kk = 0; kk < 64; ++kk) d[row][col] += dense[row * 64 + kk] * bm[kk][col];
        }
        for (int lane = 0; lane < 32; ++lane)
          for (int i = 0; i < 4; ++i) {
            const Element c = mma_m16n8_c(lane, i);
            const int64_t n = n0 + c.row, m = m0 + c.col;
            if (n < N && m < M) {
              C[m * N + n] = compensate(static_cast<int32_t>(d[c.row][c.col]), v.comp(), n);
              raw[m * N + n] = compensate(static_cast<int32_t>(d[c.row][c.col]), nullptr, n);
            }
          }
      }
    bool compensation_mattered = false;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int64_t want = 0;
        for (int64_t k = 0; k < K; ++k) want += (static_cast<int64_t>(A[m * K + k]) - zp) * s.masked[n * K + k];
        INFO("zero point " << zp << " m " << m << " n " << n);
        REQUIRE(C[m * N + n] == want);
        compensation_mattered |= raw[m * N + n] != want;
      }
    CHECK(compensation_mattered == (zp != 0));
  }
}

TEST_CASE("wgmma K-major layout and descriptor agree with the PTX ISA's core-matrix addressing",
          "[kernels][cuda_layout]") {
  // Descriptor fields, decoded with the bit positions of the PTX ISA table.
  for (uint32_t addr : {0u, 0x400u, 0x1230u, 0x3FFF0u}) {
    const uint64_t d = wgmma_descriptor(addr, kWgmmaLeadBytes, kWgmmaStrideBytes);
    CHECK(((d >> 0) & 0x3FFF) << 4 == addr);
    CHECK(((d >> 16) & 0x3FFF) << 4 == kWgmmaLeadBytes);
    CHECK(((d >> 32) & 0x3FFF) << 4 == kWgmmaStrideBytes);
    CHECK(((d >> 49) & 0x7) == 0);   // base offset
    CHECK(((d >> 62) & 0x3) == 0);   // swizzle: none
    CHECK((d & 0xC000C000C000C000ull) == 0);  // bits 14-15, 30-31, 46-47 (reserved), 62-63 (swizzle) clear
  }
  // Operand tiles of gemm_wgmma_m64n8k32: every element at its own byte
  // inside the buffer, where the descriptor's addressing finds it: core
  // matrix (row / 8, k / 16) at start + (row / 8) * SBO + (k / 16) * LBO,
  // 16 bytes per core-matrix row.
  for (auto [rows, bytes] : {std::pair<int, uint32_t>{64, 64 * 32}, {8, 8 * 32}}) {
    const uint32_t start = 0x800;
    const uint64_t d = wgmma_descriptor(start, kWgmmaLeadBytes, kWgmmaStrideBytes);
    const uint32_t lbo = ((d >> 16) & 0x3FFF) << 4, sbo = ((d >> 32) & 0x3FFF) << 4;
    std::set<uint32_t> used;
    for (int row = 0; row < rows; ++row)
      for (int k = 0; k < 32; ++k) {
        const uint32_t off = wgmma_kmajor_offset(row, k, kWgmmaLeadBytes, kWgmmaStrideBytes);
        CHECK(off < bytes);
        used.insert(off);
        CHECK(start + off == start + (row / 8) * sbo + (k / 16) * lbo + (row % 8) * 16 + k % 16);
      }
    CHECK(used.size() == static_cast<size_t>(rows * 32));
  }
  // Accumulators: 128 threads x 4 registers cover the 64 x 8 tile once, each
  // warp's 16 rows laid out as an m16n8 D fragment.
  Coverage c(64, 8);
  for (int tid = 0; tid < 128; ++tid)
    for (int r = 0; r < 4; ++r) {
      const Element e = wgmma_m64_d(tid, r), frag = ptx_m16n8_c(tid % 32, r);
      CHECK(e.row == 16 * (tid / 32) + frag.row);
      CHECK(e.col == frag.col);
      c.add(e);
    }
  CHECK(c.exactly_once());
}

TEST_CASE("pad_2of4_for_mma_sp keeps the packed arrays and pads with zeros and padding nibbles",
          "[kernels][cuda_layout]") {
  std::mt19937 gen(33);
  const SparseWeight s = random_2of4(gen, 5, 70, 0);
  const PackedView v(s.blob.data(), static_cast<int64_t>(s.blob.size()));
  const Padded p = pad(v);
  REQUIRE(v.k_pad() == 72);
  REQUIRE(p.k64 == 128);
  const auto* values = reinterpret_cast<const int8_t*>(v.data());
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t j = 0; j < 64; ++j) CHECK(p.values[r * 64 + j] == (j < 36 ? values[r * 36 + j] : 0));
    for (int64_t j = 0; j < 32; ++j) CHECK(p.idx[r * 32 + j] == (j < 18 ? v.idx()[r * 18 + j] : kPaddingNibble));
  }
}
