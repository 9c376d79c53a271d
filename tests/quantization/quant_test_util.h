#pragma once
#include "temp_dir.h"
// Shared by the quantization tests: a small CNN written in TorchScript
// source, calibration batches, and a scratch folder removed at exit.
#include <filesystem>
#include <map>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include <torch/script.h>

#include "compress/ir/import.h"
#include "compress/quantization/quantize.h"
#include "ir/make_module.h"
#include "test_util.h"

namespace compress::testing {

// conv-bn-relu -> max_pool -> conv-bn + residual -> relu -> depthwise conv ->
// relu6 (hardtanh 0..6) -> flatten -> linear. Input 3x16x16, 10 outputs.
inline torch::jit::Module small_cnn(bool nan_weight = false) {
  torch::manual_seed(21);
  const std::string conv_cls = "__torch__.torch.nn.modules.conv.Conv2d";
  const std::string bn_cls = "__torch__.torch.nn.modules.batchnorm.BatchNorm2d";
  auto conv = [&](int64_t out, int64_t in, int64_t groups) {
    std::string src = "def forward(self, x):\n    return torch.conv2d(x, self.weight, self.bias, [1, 1], [1, 1], [1, 1], " +
                      std::to_string(groups) + ")\n";
    return make_module(conv_cls, {{"weight", at::randn({out, in / groups, 3, 3}) * 0.3}, {"bias", at::randn({out}) * 0.1}},
                       src);
  };
  auto bn = [&](int64_t c) {
    return make_module(bn_cls, {{"weight", at::rand({c}) + 0.5}, {"bias", at::randn({c}) * 0.2}},
                       "def forward(self, x):\n    return torch.batch_norm(x, self.weight, self.bias, self.running_mean, "
                       "self.running_var, False, 0.1, 1e-5, True)\n",
                       {{"running_mean", at::randn({c}) * 0.1}, {"running_var", at::rand({c}) + 0.5}});
  };
  auto root = make_module("__torch__.test.SmallCNN", {}, "");
  root.register_module("conv1", conv(8, 3, 1));
  root.register_module("bn1", bn(8));
  root.register_module("conv2", conv(8, 8, 1));
  root.register_module("bn2", bn(8));
  root.register_module("dw", conv(8, 8, 8));
  at::Tensor fc_w = at::randn({10, 512}) * 0.05;
  if (nan_weight) fc_w[3][7] = NAN;
  root.register_module("fc", make_module("__torch__.torch.nn.modules.linear.Linear",
                                         {{"weight", fc_w}, {"bias", at::randn({10}) * 0.1}},
                                         "def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n"));
  root.define(R"(
def forward(self, x):
    y = torch.relu(self.bn1.forward(self.conv1.forward(x)))
    y = torch.max_pool2d(y, [2, 2], [2, 2], [0, 0], [1, 1], False)
    z = self.bn2.forward(self.conv2.forward(y))
    y = torch.relu(z + y)
    y = torch.hardtanh(self.dw.forward(y), 0.0, 6.0)
    y = torch.flatten(y, 1)
    return self.fc.forward(y)
)");
  root.eval();
  return root;
}

// small_cnn() as a graph with example input 4x3x16x16.
inline Graph small_cnn_graph() {
  Graph g = import_module(small_cnn());
  g.set_example_inputs({InputSpec{{4, 3, 16, 16}}});
  return g;
}

// How many nodes of each op (or leaf kind) a graph has.
inline std::map<std::string, int> op_counts(const Graph& g) {
  std::map<std::string, int> counts;
  for (const Node& n : g.nodes()) ++counts[n.op_name()];
  return counts;
}

// Deterministic normal batches of `shape`.
inline quant::CalibrationData random_batches(Shape shape, int64_t n) {
  return {n, [shape](int64_t i) {
            torch::manual_seed(100 + static_cast<uint64_t>(i));
            return at::randn(shape);
          }};
}

inline const std::string& quant_scratch() {
  // One folder per process (ctest runs each case in its own process), in the
  // system temporary directory, removed when the process ends.
  static const compress::testing::TempDir dir("quant");
  static const std::string path = dir.path().string();
  return path;
}

// A file's whole content ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs a shell command; returns its exit code (-1 if it did not exit).
inline int run_command(const std::string& cmd) {
  int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace compress::testing
