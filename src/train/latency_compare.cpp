#include "compress/train/latency_compare.h"

#include <algorithm>

namespace compress::train {

SideBySideLatency compare_latency(std::vector<torch::jit::Module>& models, const std::vector<int64_t>& sample_shape,
                                  const LatencyOptions& options, int64_t rounds) {
  SideBySideLatency best(models.size());
  for (int64_t round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < models.size(); ++i) {
      for (const auto& p : measure_latency(models[i], sample_shape, options)) {
        auto& slot = best[i][p.threads];
        auto it = slot.find(p.batch);
        slot[p.batch] = it == slot.end() ? p.median_ms : std::min(it->second, p.median_ms);
      }
    }
  }
  return best;
}

}  // namespace compress::train
