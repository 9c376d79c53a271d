#pragma once
// Latency of several models measured side by side: round-robin over the
// models for `rounds` rounds (measure_latency each time), keeping each
// model's lowest median per (threads, batch), so that all of them see the
// same machine (what the pipeline's bench stage and `compress pqk
// --latency` report).
#include <cstdint>
#include <map>
#include <vector>

#include <torch/script.h>

#include "compress/train/evaluate.h"

namespace compress::train {

// best[model][threads][batch] = the lowest median over the rounds, in ms per forward call.
using SideBySideLatency = std::vector<std::map<int, std::map<int64_t, double>>>;

SideBySideLatency compare_latency(std::vector<torch::jit::Module>& models, const std::vector<int64_t>& sample_shape,
                                  const LatencyOptions& options, int64_t rounds);
// The same with inputs from `make_inputs` (integer token ids, several inputs);
// every model runs on the same ones.
SideBySideLatency compare_latency(std::vector<torch::jit::Module>& models, const LatencyInputs& make_inputs,
                                  const LatencyOptions& options, int64_t rounds);

}  // namespace compress::train
