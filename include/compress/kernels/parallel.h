#pragma once
// How kernels run in parallel without owning threads. The caller passes a
// ParallelFor: the ops layer hands in at::parallel_for, so a kernel shares
// LibTorch's intra-op pool instead of oversubscribing the cores; tests and
// benchmarks use serial() or std_threads(n).
#include <cstdint>
#include <functional>

namespace compress::kernels {

// Calls body(begin, end) over disjoint chunks covering [0, n), possibly in parallel.
using ParallelFor = std::function<void(int64_t n, const std::function<void(int64_t, int64_t)>& body)>;

ParallelFor serial();
// Splits [0, n) into `threads` contiguous chunks run on std::threads.
ParallelFor std_threads(int threads);

}  // namespace compress::kernels
