#pragma once
// Helpers the files of the ops library share (not installed).
#include <ATen/Parallel.h>
#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <vector>
#include <functional>

#include "compress/error.h"
#include "compress/kernels/packed.h"
#include "compress/kernels/parallel.h"

namespace compress::ops::detail {

namespace K = compress::kernels;

// Kernels split their work through at::parallel_for, so they use LibTorch's
// intra-op threads (at::get_num_threads()) and never add threads of their own.
inline K::ParallelFor torch_parallel() {
  return [](int64_t n, const std::function<void(int64_t, int64_t)>& body) {
    at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) { body(b, e); });
  };
}

// at::empty(sizes, dtype) on the CPU, from the CPU block cache when large
// (compress/cpu_block_cache.h): a forward's outputs reuse the blocks of the
// one before instead of page-faulting fresh ones.
at::Tensor empty_activation(at::IntArrayRef sizes, at::ScalarType dtype);

// Runs f, turning compress::Error into a one-line c10::Error that names the op.
template <typename F>
auto guarded(const char* op, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const compress::Error& e) {
    TORCH_CHECK(false, op, ": ", e.what());
  }
}

// A blob from the packers, as the 1-D uint8 tensor the ops take.
inline at::Tensor blob_tensor(const std::vector<uint8_t>& blob) {
  at::Tensor t = at::empty({static_cast<int64_t>(blob.size())}, at::kByte);
  std::memcpy(t.data_ptr<uint8_t>(), blob.data(), blob.size());
  return t;
}

inline K::PackedView view_of(const char* op, const at::Tensor& packed) {
  TORCH_CHECK(packed.device().is_cpu() && packed.scalar_type() == at::kByte && packed.dim() == 1 &&
                  packed.is_contiguous(),
              op, ": packed_weight must be a contiguous 1-D uint8 CPU tensor made by a compress::pack_* op, got ",
              packed.scalar_type(), " of shape ", packed.sizes());
  return guarded(op, [&] { return K::PackedView(packed.data_ptr<uint8_t>(), packed.numel()); });
}

// The blob the kernels should read for `packed`: itself, or for a dense
// weight in the storage form (saved models: kernels::to_stored) its packing
// for this CPU's kernels, made at the first call and kept, keyed by the
// stored bytes' storage, until that storage is freed or written to. Defined
// in stored_weights.cpp.
at::Tensor runnable_blob(const char* op, const at::Tensor& packed);

// view_of(runnable_blob(op, packed)): the view points into a tensor the
// cache keeps while `packed` lives unchanged.
inline K::PackedView runnable_view_of(const char* op, const at::Tensor& packed) {
  return view_of(op, runnable_blob(op, packed));
}

// Index of the first value of v[0..n) that is NaN or infinite, or -1.
inline int64_t first_non_finite(const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return i;
  return -1;
}

}  // namespace compress::ops::detail
