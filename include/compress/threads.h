#pragma once
// Thread counts for everything that computes on the CPU.
//
// LibTorch's intra-op pool is not the only one: the BLAS library LibTorch
// calls for float matmuls and for the convolutions it lowers to im2col +
// sgemm (thnn_conv2d) keeps its own. Debian's OpenBLAS (pthreads build)
// starts one thread per core and at::set_num_threads leaves it alone, so a
// "1 thread" run used every core in those layers, and their time swung with
// the state of OpenBLAS's idle threads: a 64-channel 3x3 convolution at
// 14x14 took 0.14 ms or 1.1 ms in the same process, 0.20 ms on one OpenBLAS
// thread (docs/amc.md, "Latency budgets"). Every thread setting of the
// toolkit goes through here.
namespace compress {

// Sets LibTorch's intra-op threads and, when the process has OpenBLAS, its
// thread count too (both to `threads`, at least 1).
void set_num_threads(int threads);

// OpenBLAS's thread count, or 0 when the process has no OpenBLAS.
int blas_num_threads();

// Sets both counts for a scope (threads < 1: leaves them as they are) and
// puts back what they were, also when the scope ends by an exception.
class ScopedThreads {
 public:
  explicit ScopedThreads(int threads);
  ~ScopedThreads();
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int torch_threads_;
  int blas_threads_;
};

}  // namespace compress
