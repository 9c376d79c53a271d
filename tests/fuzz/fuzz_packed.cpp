// Fuzz harness: arbitrary bytes as a packed-weight tensor, through every op
// that reads one (linear_int8, linear_int8_sparse, conv2d_int8), as a loaded
// model would pass it. A one-line c10::Error is the expected refusal; any
// other exception, crash or sanitizer report is a finding.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "compress/error.h"
#include "compress/kernels/packed.h"
#include "compress/ops/ops.h"

namespace {

namespace K = compress::kernels;

// Sizes for the op inputs: from the header when it validates, kept small.
struct Dims {
  int64_t n = 4, k = 4, c_in = 4, kh = 1, kw = 1;
};

Dims dims_of(const at::Tensor& blob) {
  Dims d;
  try {
    const K::PackedView v(blob.data_ptr<uint8_t>(), blob.numel());
    if (v.n() * v.k() > (1 << 16) || v.kh() > 16 || v.kw() > 16) return d;
    d.n = v.n();
    d.k = v.k();
    d.c_in = v.c_in();
    d.kh = v.kh();
    d.kw = v.kw();
  } catch (const compress::Error&) {
  }
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  at::Tensor blob = at::empty({static_cast<int64_t>(size)}, at::kByte);  // 64-byte aligned, as a loaded buffer is
  if (size) std::memcpy(blob.data_ptr<uint8_t>(), data, size);
  const Dims d = dims_of(blob);
  const at::Tensor scale = at::full({d.n}, 0.01f);
  const at::Tensor x = at::full({2, d.k}, 100, at::kByte);
  namespace O = compress::ops;
  try {
    O::linear_int8(x, blob, scale, c10::nullopt, 3, true, at::kByte, c10::nullopt, 1.0, 0);
  } catch (const c10::Error&) {
  }
  try {
    O::linear_int8_sparse(x, blob, scale, c10::nullopt, 0, false, at::kFloat, c10::nullopt, 1.0, 0);
  } catch (const c10::Error&) {
  }
  try {
    const int64_t h = std::max<int64_t>(d.kh, d.kw) + 2;
    const at::Tensor img = at::full({1, h, h, d.c_in}, 7, at::kByte);
    O::conv2d_int8(img, blob, scale, c10::nullopt, {1, 1}, {1, 1}, {1, 1}, 0, false, at::kFloat, c10::nullopt, 1.0, 0);
  } catch (const c10::Error&) {
  }
  return 0;
}
