#pragma once
// Helpers shared by the tests: fixtures and output comparison.
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <torch/script.h>

#include "skip.h"
#include "test_paths.h"

namespace compress::testing {

// The path of a fixture made by tests/fixtures/make_fixtures.py. When it is
// missing because the interpreter lacks torch or torchvision (make_fixtures
// then reports skipped), the calling case is skipped with that reason: CTest
// shows SKIPPED; in a by-hand run of several cases the case fails with it.
inline std::string fixture(const std::string& name) {
  const std::string path = std::string(COMPRESS_FIXTURE_DIR) + "/" + name;
  if (!std::filesystem::exists(path)) {
    const std::string probe = std::string(COMPRESS_SYSTEM_PYTHON) + " -c 'import torch, torchvision' 2>/dev/null";
    if (std::system(probe.c_str()) != 0) {
      const std::string why = "fixture " + name + " was not made: " + COMPRESS_SYSTEM_PYTHON +
                              " lacks torch or torchvision (install python3-torch python3-torchvision)";
      report_skipped(why);
      throw std::runtime_error("SKIPPED: " + why);
    }
  }
  return path;
}

// Fixture tensors are saved as a scripted module holding one attribute `value`.
inline at::Tensor load_fixture_tensor(const std::string& file) {
  return torch::jit::load(fixture(file)).attr("value").toTensor();
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace compress::testing
