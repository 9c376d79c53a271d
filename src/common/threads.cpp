// OpenBLAS is found at run time (dlsym over the process's libraries): which
// BLAS LibTorch's libblas.so.3 resolves to is the system's choice (Debian's
// alternatives), and a reference BLAS or BLIS has no such pool to set.
#include "compress/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>

namespace compress {

namespace {

using SetThreads = void (*)(int);
using GetThreads = int (*)();

struct OpenBlas {
  SetThreads set = nullptr;
  GetThreads get = nullptr;
};

const OpenBlas& openblas() {
  static const OpenBlas blas = [] {
    OpenBlas b;
    b.set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    b.get = reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    if (!b.set || !b.get) b = OpenBlas{};
    return b;
  }();
  return blas;
}

void set_blas_threads(int threads) {
  const OpenBlas& blas = openblas();
  if (blas.set && blas.get() != threads) blas.set(threads);
}

}  // namespace

void set_num_threads(int threads) {
  threads = std::max(threads, 1);
  at::set_num_threads(threads);
  set_blas_threads(threads);
}

int blas_num_threads() {
  const OpenBlas& blas = openblas();
  return blas.get ? blas.get() : 0;
}

ScopedThreads::ScopedThreads(int threads) : torch_threads_(at::get_num_threads()), blas_threads_(blas_num_threads()) {
  if (threads > 0) set_num_threads(threads);
}

ScopedThreads::~ScopedThreads() {
  at::set_num_threads(torch_threads_);
  if (blas_threads_ > 0) set_blas_threads(blas_threads_);
}

}  // namespace compress
