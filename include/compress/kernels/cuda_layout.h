#pragma once
// Index maths of the CUDA INT8 tensor-core kernels (src/kernels/cuda/
// gemm_int8_tensor_core.cu), kept out of the .cu so that an ordinary C++ test
// checks it on the CPU (tests/kernels/test_cuda_layout.cpp): which element of
// A, B and C each lane holds for mma.m16n8k32 and the sparse mma.sp.m16n8k64,
// the 2:4 metadata word of each lane, the wgmma shared-memory layout and
// descriptor, the m64 accumulator layout, and the host-side steps of the
// sparse wrapper (padding the packed 2:4 arrays, zero-point compensation).
// The layouts are the PTX ISA's "Matrix fragments" sections; where the ISA
// gives a layout only as a figure (the mma.sp metadata), the function says so.
// Every function is __host__ __device__ under nvcc and plain inline otherwise.
#include <cstdint>

#if defined(__CUDACC__)
#define COMPRESS_HOST_DEVICE __host__ __device__ inline
#else
#define COMPRESS_HOST_DEVICE inline
#endif

namespace compress::kernels::cuda::layout {

// An element of a fragment's matrix: row and column within the MMA tile.
struct Element {
  int row;
  int col;
};

// Lane decomposition used by every warp-level fragment of the PTX ISA.
COMPRESS_HOST_DEVICE int group_of(int lane) { return lane >> 2; }           // groupID
COMPRESS_HOST_DEVICE int thread_in_group(int lane) { return lane & 3; }     // threadID_in_group

// ---- mma.sync.m16n8k32, .u8/.s8 A and B, .s32 C/D -------------------------
// A (16 x 32, row-major): register r (0..3) of `lane` holds a_{4r}..a_{4r+3};
// byte b of it is A[row][col] below. Rows g (r = 0, 2) and g + 8 (r = 1, 3);
// columns 4t.. (r = 0, 1) and 16 + 4t.. (r = 2, 3).
COMPRESS_HOST_DEVICE Element mma_m16n8k32_a(int lane, int reg, int byte) {
  return {group_of(lane) + 8 * (reg & 1), 16 * (reg >> 1) + 4 * thread_in_group(lane) + byte};
}
// B (32 x 8, "col": each column's k contiguous): register r (0..1), byte b:
// B[row = k][col = n], k = 16r + 4t + b, n = g.
COMPRESS_HOST_DEVICE Element mma_m16n8k32_b(int lane, int reg, int byte) {
  return {16 * reg + 4 * thread_in_group(lane) + byte, group_of(lane)};
}
// C and D (16 x 8 s32) of every m16n8 integer shape: register r (0..3):
// row g (r = 0, 1) or g + 8 (r = 2, 3), column 2t + (r & 1).
COMPRESS_HOST_DEVICE Element mma_m16n8_c(int lane, int reg) {
  return {group_of(lane) + 8 * (reg >> 1), 2 * thread_in_group(lane) + (reg & 1)};
}

// ---- mma.sp.sync.m16n8k64, .s8/.u8, 2:4 sparse A ---------------------------
// A is 16 x 64 with 2 of every 4 consecutive k kept; the operand holds only
// the kept values, a 16 x 32 "compressed" matrix. Register r of `lane` holds
// the 4 kept values of dense columns 8t..8t+7 (r = 0, 1) or 32 + 8t.. (r = 2,
// 3) of row g (r = 0, 2) or g + 8 (r = 1, 3): in compressed columns that is
// the same position as a dense m16n8k32 A register.
COMPRESS_HOST_DEVICE Element mma_sp_m16n8k64_a_compressed(int lane, int reg, int byte) {
  return mma_m16n8k32_a(lane, reg, byte);
}
// B (64 x 8): register r (0..3), byte b: k = 16r + 4t + b, n = g.
COMPRESS_HOST_DEVICE Element mma_sp_m16n8k64_b(int lane, int reg, int byte) {
  return {16 * reg + 4 * thread_in_group(lane) + byte, group_of(lane)};
}
// Metadata: with sparsity selector 0 every lane contributes one 32-bit word of
// 8 nibbles; nibble j describes the group of 4 dense columns
// 4 * (first_group + j) .. + 3 of row `row`, as (i0 | i1 << 2) with i0 < i1
// the positions of the two kept values. Which lane holds which row and half
// is given in the PTX ISA only as figures ("Sparse MMA .m16n8k64 metadata
// layout for columns 0-31 / 32-63"); as read here: lanes with t = 0, 1 hold
// row g, t = 2, 3 row g + 8; odd t the columns 32-63. Unverified on hardware
// until the first GPU run (scripts/gpu-check.sh); this is the one place to
// change if that run disagrees.
struct MetadataSlot {
  int row;          // row of the 16-row tile
  int first_group;  // first of the 8 groups of 4 columns (0 or 8)
};
COMPRESS_HOST_DEVICE MetadataSlot mma_sp_m16n8k64_metadata(int lane) {
  const int t = thread_in_group(lane);
  return {group_of(lane) + 8 * (t >> 1), 8 * (t & 1)};
}
// The metadata nibble of a group whose positions are unused (padding): keeps
// positions 0 and 1, whose stored values are zero.
constexpr uint32_t kPaddingNibble = 0x4u;
// The metadata word of `lane` for one k-step of 64 columns starting at group
// `k_group0` (= k0 / 4), from the packed 2-bit indices of layout sparse_2_4_s8
// (one byte per group, i0 | i1 << 2; `groups` bytes per row). Rows at or past
// `rows` and groups at or past `groups` read as padding.
COMPRESS_HOST_DEVICE uint32_t mma_sp_m16n8k64_metadata_word(const uint8_t* idx, int64_t rows, int64_t groups,
                                                           int64_t row0, int64_t k_group0, int lane) {
  const MetadataSlot s = mma_sp_m16n8k64_metadata(lane);
  const int64_t row = row0 + s.row;
  uint32_t word = 0;
  for (int j = 0; j < 8; ++j) {
    const int64_t grp = k_group0 + s.first_group + j;
    const uint32_t nibble = (row < rows && grp < groups) ? (idx[row * groups + grp] & 0xFu) : kPaddingNibble;
    word |= nibble << (4 * j);
  }
  return word;
}

// ---- Shared 4-byte gathers (global memory, zero past the edges) -----------
// Four consecutive bytes of one row starting at column `col`, little-endian,
// zero at or past `limit` (the K tail).
template <typename T>
COMPRESS_HOST_DEVICE uint32_t load4(const T* row, int64_t col, int64_t limit) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    if (col + i < limit) v |= static_cast<uint32_t>(static_cast<uint8_t>(row[col + i])) << (8 * i);
  return v;
}

// ---- wgmma (sm_90a): shared-memory layout, descriptor, accumulators --------
// K-major operand without swizzle: "core matrices" of 8 rows x 16 bytes, each
// 128 contiguous bytes (row r at 16r). Core matrix (row / 8, k / 16) starts at
// (row / 8) * stride_bytes + (k / 16) * lead_bytes: the descriptor's stride
// dimension byte offset steps along M (or N), its leading dimension byte
// offset along K.
COMPRESS_HOST_DEVICE uint32_t wgmma_kmajor_offset(int row, int k, uint32_t lead_bytes, uint32_t stride_bytes) {
  return static_cast<uint32_t>(row / 8) * stride_bytes + static_cast<uint32_t>(k / 16) * lead_bytes +
         static_cast<uint32_t>(row % 8) * 16 + static_cast<uint32_t>(k % 16);
}
// Tile geometry of gemm_wgmma_m64n8k32: A 64 x 32 (cores (mi, ki) at
// (2 mi + ki) * 128), B 8 x 32 (cores (0, ki) at ki * 128).
constexpr uint32_t kWgmmaLeadBytes = 128;    // next core matrix along K
constexpr uint32_t kWgmmaStrideBytes = 256;  // next core matrix along M / N
// Matrix descriptor (PTX ISA "Matrix Descriptor Format"): bits 0-13 start
// address >> 4 (shared-window address, 18 bits), 16-29 leading dimension byte
// offset >> 4, 32-45 stride dimension byte offset >> 4, 49-51 base offset
// (0: no swizzle), 62-63 swizzle mode (0: none).
COMPRESS_HOST_DEVICE uint64_t wgmma_descriptor(uint32_t smem_addr, uint32_t lead_bytes, uint32_t stride_bytes) {
  return static_cast<uint64_t>((smem_addr & 0x3FFFFu) >> 4) |
         (static_cast<uint64_t>((lead_bytes & 0x3FFFFu) >> 4) << 16) |
         (static_cast<uint64_t>((stride_bytes & 0x3FFFFu) >> 4) << 32);
}
// Accumulator of wgmma .m64nN with .s32: thread `tid` (0..127) of the
// warpgroup, register r: warp w = tid / 32 owns rows 16w..16w+15 laid out
// like an m16n8 D fragment, repeated every 8 columns (r / 4).
COMPRESS_HOST_DEVICE Element wgmma_m64_d(int tid, int reg) {
  const int lane = tid & 31, warp = tid >> 5;
  return {16 * warp + group_of(lane) + 8 * ((reg >> 1) & 1), 8 * (reg >> 2) + 2 * thread_in_group(lane) + (reg & 1)};
}

// ---- Host-side steps of the 2:4 sparse wrapper -----------------------------
// The device loop steps k by 64 (16 groups); the packed arrays of a weight
// with k_pad (multiple of 4) columns are copied into rows of k64 columns,
// padded with zero values and padding nibbles.
COMPRESS_HOST_DEVICE int64_t mma_sp_k64(int64_t k_pad) { return (k_pad + 63) / 64 * 64; }
inline void pad_2of4_for_mma_sp(const int8_t* values, const uint8_t* idx, int64_t n, int64_t k_pad,
                                int8_t* values64, uint8_t* idx64) {
  const int64_t k64 = mma_sp_k64(k_pad);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k64 / 2; ++j) values64[r * (k64 / 2) + j] = j < k_pad / 2 ? values[r * (k_pad / 2) + j] : 0;
    for (int64_t j = 0; j < k64 / 4; ++j)
      idx64[r * (k64 / 4) + j] = j < k_pad / 4 ? idx[r * (k_pad / 4) + j] : static_cast<uint8_t>(kPaddingNibble);
  }
}
// Zero-point compensation: the kernels multiply raw u8 activations, so
// acc = sum_k a * w; the packed weight carries comp[n] = -a_zero_point *
// sum_k w[n][k] (kept weights only), and acc + comp[n] = sum_k (a - zp) * w,
// what the CPU kernels return. Applied in the device epilogue.
COMPRESS_HOST_DEVICE int32_t compensate(int32_t acc, const int32_t* comp, int64_t n) {
  return comp ? acc + comp[n] : acc;
}

}  // namespace compress::kernels::cuda::layout
