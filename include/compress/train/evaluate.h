#pragma once
// Accuracy and speed of a TorchScript classifier: the measurements every
// later report (pruning, quantization, distillation) quotes.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/script.h>

#include "compress/data/dataset.h"

namespace compress::train {

struct EvalResult {
  int64_t count = 0;
  double loss = 0;  // mean cross-entropy
  double top1 = 0;  // fractions in [0, 1]
  double top5 = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true label][predicted label]
  double seconds = 0;

  // {"count":..,"loss":..,"top1":..,"top5":..,"confusion":{"classes":[..],"matrix":[[..]]}}
  std::string to_json(const char* const* class_names = nullptr) const;
};

// Runs `module` in eval mode without gradients over `ds` and restores its
// previous train/eval mode. Inputs are fed as stored (mean/std, when defined,
// are applied per channel first).
EvalResult evaluate(torch::jit::Module& module, const data::TensorDataset& ds, int64_t batch_size = 500,
                    const at::Tensor& mean = {}, const at::Tensor& std = {});

struct LatencyPoint {
  int64_t batch = 0;
  int threads = 0;
  double median_ms = 0, min_ms = 0, p90_ms = 0;  // per forward call
  double samples_per_s = 0;                      // batch / median
};

struct LatencyOptions {
  std::vector<int64_t> batch_sizes{1, 32};
  std::vector<int> thread_counts{1};
  int warmup = 5;    // untimed calls first: allocator, caches, lazy init
  int repeats = 20;  // timed calls; the median resists the noise of a shared machine
};

// Latency of module.forward on random inputs of shape [batch, sample_shape...],
// eval mode, no autograd. Restores the thread count it found.
std::vector<LatencyPoint> measure_latency(torch::jit::Module& module, const std::vector<int64_t>& sample_shape,
                                          const LatencyOptions& opt = {});
// The same with forward's arguments at each batch size made by `make_inputs`
// (several inputs, integer ones: e.g. an InputSynthesizer, analysis/inputs.h).
using LatencyInputs = std::function<std::vector<c10::IValue>(int64_t batch)>;
std::vector<LatencyPoint> measure_latency(torch::jit::Module& module, const LatencyInputs& make_inputs,
                                          const LatencyOptions& opt = {});
std::string latency_to_json(const std::vector<LatencyPoint>& points);

// A model's output as logits: the tensor itself, or the first element of a
// tuple (logits, features...) whose other tensors go to `features`.
// Error(BadInput) for anything else.
at::Tensor logits_of(const c10::IValue& output, std::vector<at::Tensor>* features = nullptr);

}  // namespace compress::train
