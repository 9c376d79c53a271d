#include "compress/train/latency_compare.h"

#include <algorithm>

namespace compress::train {

SideBySideLatency compare_latency(std::vector<torch::jit::Module>& models, const LatencyInputs& make_inputs,
                                  const LatencyOptions& options, int64_t rounds) {
  SideBySideLatency best(models.size());
  for (int64_t round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < models.size(); ++i) {
      for (const auto& p : measure_latency(models[i], make_inputs, options)) {
        auto& slot = best[i][p.threads];
        auto it = slot.find(p.batch);
        slot[p.batch] = it == slot.end() ? p.median_ms : std::min(it->second, p.median_ms);
      }
    }
  }
  return best;
}

SideBySideLatency compare_latency(std::vector<torch::jit::Module>& models, const std::vector<int64_t>& sample_shape,
                                  const LatencyOptions& options, int64_t rounds) {
  const LatencyInputs random = [&sample_shape](int64_t b) {  // uniform [0, 1), as measure_latency's pixels
    std::vector<int64_t> shape{b};
    shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
    return std::vector<c10::IValue>{at::rand(shape)};
  };
  return compare_latency(models, random, options, rounds);
}

}  // namespace compress::train
