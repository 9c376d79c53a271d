#pragma once
// Helpers shared by the tests: fixtures, tiny models from TorchScript source.
#include <string>

#include <torch/script.h>

#include "test_paths.h"

namespace compress::testing {

inline std::string fixture(const std::string& name) { return std::string(COMPRESS_FIXTURE_DIR) + "/" + name; }

// Fixture tensors are saved as a scripted module holding one attribute `value`.
inline at::Tensor load_fixture_tensor(const std::string& file) {
  return torch::jit::load(fixture(file)).attr("value").toTensor();
}

// A module defined from TorchScript source, with parameters registered by name.
inline torch::jit::Module module_from_source(const std::string& source) {
  torch::jit::Module m("__torch__.test.Model");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.define(source);
  return m;
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace compress::testing
