#include "compress/kernels/parallel.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace compress::kernels {

ParallelFor serial() {
  return [](int64_t n, const std::function<void(int64_t, int64_t)>& body) {
    if (n > 0) body(0, n);
  };
}

ParallelFor std_threads(int threads) {
  return [threads](int64_t n, const std::function<void(int64_t, int64_t)>& body) {
    if (n <= 0) return;
    const int64_t t = std::min<int64_t>(std::max(threads, 1), n);
    if (t == 1) return body(0, n);
    std::vector<std::thread> pool;
    const int64_t chunk = (n + t - 1) / t;
    for (int64_t i = 1; i < t; ++i) {
      const int64_t b = i * chunk, e = std::min(n, b + chunk);
      if (b < e) pool.emplace_back([&body, b, e] { body(b, e); });
    }
    body(0, std::min(n, chunk));
    for (auto& th : pool) th.join();
  };
}

}  // namespace compress::kernels
