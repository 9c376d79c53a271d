#pragma once
// What `compress amc` and `compress prune` share for a --target-latency
// budget: the model as the budget runs it, and its end-to-end time.
#include <torch/script.h>

#include "compress/analysis/latency.h"
#include "compress/ir/export.h"
#include "compress/ir/graph.h"
#include "compress/quantization/quantize.h"

namespace compress::cli {

// Timed calls per end-to-end measurement (each round; LatencyOptions::rounds rounds).
constexpr int kEndToEndRepeats = 15;

// The model as a latency budget runs it: FP32 as exported, or quantized to
// the INT8 kernels (calibrated on `calibration`) with `int8`.
inline torch::jit::Module deployable(const Graph& graph, bool int8, const quant::CalibrationData& calibration) {
  Graph g = graph;
  if (int8) quant::quantize_static(g, calibration);
  torch::jit::Module m = export_module(g);
  m.eval();
  return m;
}

// End-to-end latency of `graph` deployed as above, at the table's batch size
// and threads.
inline double end_to_end_ms(const Graph& graph, bool int8, const quant::CalibrationData& calibration,
                            const latency::LatencyOptions& options, int repeats = kEndToEndRepeats) {
  torch::jit::Module m = deployable(graph, int8, calibration);
  return latency::measure_model_ms(m, graph, options, repeats);
}

}  // namespace compress::cli
