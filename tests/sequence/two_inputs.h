#pragma once
// A scripted model of two inputs, float features [N, 8] and token ids [N, T]
// into an embedding of 50 rows, then an nn.Linear 8 -> 4: the multi-input
// case of the CLI tests (inspect, compare, static INT8 calibration).
#include <string>

#include <ATen/ATen.h>
#include <torch/script.h>

#include "temp_dir.h"

namespace compress::testing {

inline std::string two_input_model(const TempDir& dir) {
  // The layer as nn.Linear scripts (its class name makes it the IR's Linear leaf).
  torch::jit::Module fc("__torch__.torch.nn.modules.linear.Linear");
  fc.register_attribute("training", c10::BoolType::get(), false);
  fc.register_parameter("weight", at::randn({4, 8}), false);
  fc.register_parameter("bias", at::randn({4}), false);
  fc.define("def forward(self, x: Tensor) -> Tensor:\n    return torch.linear(x, self.weight, self.bias)\n");
  torch::jit::Module m("__torch__.TwoInputs");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.register_parameter("table", at::randn({50, 8}), false);
  m.register_module("fc", fc);
  m.define("def forward(self, x: Tensor, ids: Tensor) -> Tensor:\n"
           "    return self.fc.forward(x + torch.embedding(self.table, ids).mean(1))\n");
  const std::string path = dir.file("two_inputs.pt");
  m.save(path);
  return path;
}

}  // namespace compress::testing
