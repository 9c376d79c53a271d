#pragma once
// Helpers shared by the tests: fixtures and output comparison.
#include <string>

#include <torch/script.h>

#include "test_paths.h"

namespace compress::testing {

inline std::string fixture(const std::string& name) { return std::string(COMPRESS_FIXTURE_DIR) + "/" + name; }

// Fixture tensors are saved as a scripted module holding one attribute `value`.
inline at::Tensor load_fixture_tensor(const std::string& file) {
  return torch::jit::load(fixture(file)).attr("value").toTensor();
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace compress::testing
