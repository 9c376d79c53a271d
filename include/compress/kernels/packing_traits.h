#pragma once
// Blocking constants of every packed layout, each with its arithmetic.
#include <cstdint>

namespace compress::kernels {

// AVX2 (no VNNI): vpmaddwd multiplies 16 s16 pairs into 8 s32 sums, exactly.
// A ymm holds 8 s32 accumulators = 8 output columns, each fed by a k-pair.
//   NR = 2 ymm x 8 columns = 16;  MR = 6 rows: 6 x 2 = 12 accumulators
//   + 2 weight registers + 1 broadcast = 15 of 16 ymm registers.
//   KPACK = 2: one 32-bit broadcast holds (a[k], a[k+1]) as two s16.
struct Avx2Traits {
  static constexpr int64_t MR = 6;
  static constexpr int64_t NR = 16;
  static constexpr int64_t KPACK = 2;
};

// AVX2 u8 path: vpmaddubsw (u8 x s8 pairs -> s16) then vpmaddwd with ones
// (-> s32). A ymm of weights holds 8 columns x 4 k; NR = 16 = 2 ymm, MR = 6:
// 12 accumulators + 2 weights + 1 broadcast + 1 product = 16 registers (the
// vector of ones is a memory operand).
//   KPACK = 4: one 32-bit broadcast holds a[k..k+3] as four u8.
struct Avx2U8Traits {
  static constexpr int64_t MR = 6;
  static constexpr int64_t NR = 16;
  static constexpr int64_t KPACK = 4;
  // Largest |w0| + |w1| of an adjacent pair that cannot saturate s16: 255 * 128 = 32640.
  static constexpr int kPairBudget = 128;
};

// AVX2 path for 7-bit activations: two vpmaddubsw (k-quads q and q + 1) are
// added in s16 (vpaddw) before one vpmaddwd with ones widens them, so a k-step
// covers 8 k. NR = 16 = 2 ymm, MR = 4: 8 accumulators + 4 weight vectors (two
// quads x two column halves) + 2 broadcasts + 2 products = 16 registers, the
// ones read from memory.
struct Avx2U7Traits {
  static constexpr int64_t MR = 4;
  static constexpr int64_t NR = 16;
  static constexpr int64_t KPACK = 8;
  // Largest sum |w| of the four weights meeting in one s16 lane: 127 * 258 = 32766.
  static constexpr int kLaneBudget = 258;
  static constexpr int kMaxActivation = 127;
};

// AVX-512 VNNI: vpdpbusd multiplies 4 u8 x 4 s8 and adds to an s32 with no
// intermediate saturation. A zmm holds 16 s32 = 16 columns, each fed by a k-quad.
//   NR = 2 zmm x 16 = 32;  MR = 8 rows: 8 x 2 = 16 accumulators of 32 zmm.
//   KPACK = 4: one 32-bit broadcast holds a[k..k+3] as four u8.
struct Avx512VnniTraits {
  static constexpr int64_t MR = 8;
  static constexpr int64_t NR = 32;
  static constexpr int64_t KPACK = 4;
};

// Sparse kernels vectorise over M (rows of the activation): one ymm of s32
// holds 8 rows; 4 accumulators per pass = 32 rows, so each decoded weight
// block (or 2:4 group) feeds 4 vpmaddwd pairs.
struct SparseAvx2Traits {
  static constexpr int64_t MV = 32;
};

// The 1x4 sparse kernel for AVX-512 VNNI, also vectorised over M: a zmm of
// s32 holds 16 rows and a kept block is one vpdpbusd per 16 rows (its four
// s8 weights broadcast against four u8 activations of each row, exact for
// any u8). MV = 32 rows = 2 accumulators per output column (batch 32 fills
// them); 4 columns walk their blocks in lockstep, so 8 independent vpdpbusd
// chains hide the instruction's latency. Accumulators of 16 columns are
// transposed (16 x 16 s32) to rows for the shared AVX-512 epilogue.
struct SparseAvx512VnniTraits {
  static constexpr int64_t MV = 32;
  static constexpr int64_t kLockstep = 4;  // columns whose blocks interleave
  static constexpr int64_t kGroup = 16;    // columns per transpose and epilogue call
};

// Depthwise: 16 channels per step (one 128-bit load of u8 widened to s16).
struct DepthwiseTraits {
  static constexpr int64_t CV = 16;
};

}  // namespace compress::kernels
