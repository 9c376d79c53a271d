#pragma once
// Tiny models for the sparsity tests, written as TorchScript source with
// torch.nn class names (so the importer sees Conv2d / Linear leaves).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include <string>

#include "compress/data/dataset.h"
#include "ir/make_module.h"

namespace compress::testing {

inline torch::jit::Module linear_module(int64_t in, int64_t out, at::Generator& gen) {
  return make_module("__torch__.torch.nn.modules.linear.Linear",
                     {{"weight", at::normal(0.0, 1.0 / std::sqrt(double(in)), {out, in}, gen)},
                      {"bias", at::normal(0.0, 0.1, {out}, gen)}},
                     "def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
}

// 16 -> 32 -> 48 -> 24 -> 4, ReLUs between: three hidden layers, so the
// default selection (first and last left dense) prunes fc2 and fc3.
inline torch::jit::Module sparse_mlp(uint64_t seed = 3) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto root = make_module("__torch__.test.MLP", {}, "");
  root.register_module("fc1", linear_module(16, 32, gen));
  root.register_module("fc2", linear_module(32, 48, gen));
  root.register_module("fc3", linear_module(48, 24, gen));
  root.register_module("fc4", linear_module(24, 4, gen));
  root.define(R"(
def forward(self, x):
    y = torch.relu(self.fc1.forward(x))
    y = torch.relu(self.fc2.forward(y))
    y = torch.relu(self.fc3.forward(y))
    return self.fc4.forward(y)
)");
  root.eval();
  return root;
}

inline torch::jit::Module conv_module(int64_t in, int64_t out, int64_t k, int64_t groups, at::Generator& gen,
                                     int64_t stride = 1) {
  const int64_t pad = k / 2;
  const std::string st = std::to_string(stride);
  std::string src = "def forward(self, x):\n    return torch.conv2d(x, self.weight, self.bias, [" + st + ", " + st +
                    "], [" + std::to_string(pad) + ", " + std::to_string(pad) + "], [1, 1], " +
                    std::to_string(groups) + ")\n";
  return make_module("__torch__.torch.nn.modules.conv.Conv2d",
                     {{"weight", at::normal(0.0, 1.0 / std::sqrt(double(in / groups * k * k)), {out, in / groups, k, k}, gen)},
                      {"bias", at::normal(0.0, 0.1, {out}, gen)}},
                     src);
}

// Input 3x8x8: conv 3x3 (3 -> 8), conv 3x3 (8 -> 12, K = 72), depthwise 3x3,
// pointwise 1x1 (12 -> 20, residual-free), 1x1 (20 -> 12) added to the
// depthwise output, flatten, linear 768 -> 10.
inline torch::jit::Module sparse_convnet(uint64_t seed = 5) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto root = make_module("__torch__.test.ConvNet", {}, "");
  root.register_module("stem", conv_module(3, 8, 3, 1, gen));
  root.register_module("conv", conv_module(8, 12, 3, 1, gen));
  root.register_module("dw", conv_module(12, 12, 3, 12, gen));
  root.register_module("expand", conv_module(12, 20, 1, 1, gen));
  root.register_module("project", conv_module(20, 12, 1, 1, gen));
  root.register_module("fc", linear_module(12 * 8 * 8, 10, gen));
  root.define(R"(
def forward(self, x):
    y = torch.relu(self.conv.forward(torch.relu(self.stem.forward(x))))
    d = torch.relu(self.dw.forward(y))
    z = self.project.forward(torch.relu(self.expand.forward(d)))
    y = torch.relu(z + d)
    return self.fc.forward(torch.flatten(y, 1))
)");
  root.eval();
  return root;
}

// Input 3x9x9: a ResNet-like stage of k x k convs: conv 3x3 (3 -> 8), 3x3
// stride 2 (8 -> 16, 9x9 -> 5x5), 3x3 (16 -> 16) added to its input, 1x1
// stride 2 (16 -> 12, 5x5 -> 3x3), flatten, linear 108 -> 10.
inline torch::jit::Module sparse_strided_convnet(uint64_t seed = 7) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto root = make_module("__torch__.test.StridedConvNet", {}, "");
  root.register_module("stem", conv_module(3, 8, 3, 1, gen));
  root.register_module("down", conv_module(8, 16, 3, 1, gen, 2));
  root.register_module("block", conv_module(16, 16, 3, 1, gen));
  root.register_module("shrink", conv_module(16, 12, 1, 1, gen, 2));
  root.register_module("fc", linear_module(12 * 3 * 3, 10, gen));
  root.define(R"(
def forward(self, x):
    y = torch.relu(self.stem.forward(x))
    y = torch.relu(self.down.forward(y))
    y = torch.relu(self.block.forward(y) + y)
    y = torch.relu(self.shrink.forward(y))
    return self.fc.forward(torch.flatten(y, 1))
)");
  root.eval();
  return root;
}

// Four Gaussian blobs in 16 dimensions (sparse_mlp's input and classes).
inline data::TensorDataset mlp_blobs(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor centres = at::normal(0.0, 2.0, {4, 16}, gen);
  at::Tensor labels = at::randint(0, 4, {n}, gen);
  data::TensorDataset ds;
  ds.inputs = centres.index_select(0, labels) + at::normal(0.0, 1.0, {n, 16}, gen);
  ds.labels = labels;
  ds.num_classes = 4;
  ds.name = "blobs";
  return ds;
}

}  // namespace compress::testing
