// The transposed activation layout of the 1x4 sparse kernels (AVX2 7-bit loop
// and AVX-512 VNNI): rows m0 .. m0 + rows - 1 of A become quad rows
// buf[q][rows] = a[m][4q..4q+3] as four u8 in one int32, zero beyond M and K.
// A kept 1x4 block starts at k = 4q, so its four weights meet quad row q
// whole: one broadcast of the block against `rows` consecutive int32.
// `static` for the reason internal.h gives (included by ISA units).
#pragma once
#include <cstdint>

#include "internal.h"

namespace compress::kernels::detail {

static inline void pack_1x4_quads(const GemmJob& j, int64_t m0, int64_t rows, int32_t* buf) {
  const int64_t K = j.B->k(), quads = j.B->k_pad() / 4;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t m = m0 + i;
    const uint8_t* a = j.A + m * j.lda;
    for (int64_t q = 0; q < quads; ++q) {
      uint32_t v = 0;
      if (m < j.M) {
        if (4 * q + 4 <= K) {
          __builtin_memcpy(&v, a + 4 * q, 4);
        } else {
          for (int64_t r = 0; 4 * q + r < K; ++r) v |= static_cast<uint32_t>(a[4 * q + r]) << (8 * r);
        }
      }
      buf[q * rows + i] = static_cast<int32_t>(v);
    }
  }
}

}  // namespace compress::kernels::detail
