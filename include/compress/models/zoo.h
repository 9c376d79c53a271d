#pragma once
// Baseline models for examples, tests and benchmarks, sized for 28x28
// single-channel inputs (Fashion-MNIST) and training on a couple of CPU cores.
// Each is a TorchScript module built in C++ whose leaf submodules look like
// torch.nn's (class names, parameter names, one aten call each), so the
// graphs later passes see match what users' scripted models give.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/script.h>

namespace compress::models {

struct ZooModel {
  std::string name;
  torch::jit::Module module;
  int64_t macs = 0;  // multiply-accumulates of one forward pass on one 1x28x28 input
};

// The names build() accepts: cnn, resnet, mobilenetv2, senet, vit, and the
// sequence models lstm, gru, transformer (each image read as 28 rows of 28
// features; inputs are still [N, 1, 28, 28]).
std::vector<std::string> zoo_names();
// A one-line description of each (for --help).
std::string zoo_summary(const std::string& name);

// Builds `name` with weights drawn deterministically from `seed`: the same
// seed gives bit-identical weights. Inputs are pixels in [0, 1], [N, 1, 28, 28].
// Unknown names raise Error(BadInput). The module returned has gone through
// the IR (import_module then export_module), in training mode.
// `width` multiplies every layer width (rounded, at least 1; the ViT scales
// its head size and MLP, keeping 4 heads): 0.5 gives a half-width student for
// distillation. Width 1 is the model as documented, bit for bit; a width
// outside (0, 16] is Error(BadInput).
ZooModel build(const std::string& name, uint64_t seed = 0, int64_t num_classes = 10, double width = 1.0);
// The module as built in C++, before the IR round trip (for tests).
ZooModel build_direct(const std::string& name, uint64_t seed = 0, int64_t num_classes = 10, double width = 1.0);

// The training recipe that reaches the accuracy recorded in docs/training.md.
struct Recipe {
  int64_t epochs = 10;
  int64_t batch_size = 128;
  std::string optimizer = "sgd";  // sgd | adam | adamw
  double lr = 0.1, momentum = 0.9, weight_decay = 5e-4;
  bool nesterov = true;
  std::string schedule = "cosine";
  double warmup_epochs = 0;
  double label_smoothing = 0;
  int64_t crop_padding = 0;
  bool horizontal_flip = false;
  double grad_clip = 0;
};
Recipe default_recipe(const std::string& name);

int64_t count_parameters(const torch::jit::Module& m);

}  // namespace compress::models
