#pragma once
// Per-layer quantization sensitivity and accuracy-driven fallback.
//
//   Graph g = import_module(load_module("cnn.pt"));
//   g.set_example_inputs({InputSpec{{64, 1, 28, 28}}});
//   data::TensorDataset held_out = ...;   // labelled, NOT the test set
//   quant::SensitivityReport s = quant::analyze_sensitivity(g, calib, {}, &held_out);
//   quant::FallbackReport fb;
//   quant::QuantizeReport r = quant::quantize_with_fallback(g, calib, {}, held_out, 0.3, fb);
//
// Sensitivity quantizes one fusion unit (a conv / linear layer with what its
// epilogue absorbs, see plan_layers) at a time, every other layer left in
// float, and measures the model output's SQNR against the float model (on
// the first `sqnr_batches` calibration batches) and, given labelled data,
// its top-1 accuracy. Each variant is a full quantize_static with the other
// layers excluded, so what is measured is exactly what a user gets.
//
// Fallback ranks the layers (largest top-1 drop first, then lowest SQNR)
// and keeps the first k of them in float, k = 0, 1, ..., until the top-1
// drop against the float model on `eval` is within `max_drop_points`
// (percentage points). Measure it on held-out data, never on the set the
// final accuracy is quoted on.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data/dataset.h"
#include "compress/quantization/quantize.h"

namespace compress::quant {

struct LayerSensitivity {
  std::string name, ops;  // the layer's module and its fused ops
  double sqnr_db = 0;     // model output against float, only this layer in INT8
  // Top-1 in percent with only this layer in INT8 and its drop against the
  // float model in points; NaN without labelled data.
  double top1 = std::numeric_limits<double>::quiet_NaN();
  double top1_drop = std::numeric_limits<double>::quiet_NaN();
};

struct SensitivityReport {
  int64_t eval_samples = 0;  // 0: no labelled data, SQNR only
  double float_top1 = std::numeric_limits<double>::quiet_NaN();
  double int8_top1 = std::numeric_limits<double>::quiet_NaN();  // every layer that can be INT8
  double int8_sqnr_db = 0;
  std::vector<LayerSensitivity> layers;  // graph order; the layers that can run in INT8

  // Layer names, most sensitive first: largest top-1 drop, then lowest SQNR.
  std::vector<std::string> most_sensitive_first() const;
  nlohmann::json to_json() const;
};

// `g` is left unchanged (it needs example inputs). `eval` may be nullptr.
SensitivityReport analyze_sensitivity(const Graph& g, const CalibrationData& data, const QuantizeOptions& options,
                                      const data::TensorDataset* eval = nullptr);

struct FallbackStep {
  std::vector<std::string> kept_float;
  double top1 = 0, top1_drop = 0;  // percent, points
};

struct FallbackReport {
  double max_drop = 0;  // points
  double float_top1 = 0;
  int64_t eval_samples = 0;
  std::vector<FallbackStep> steps;      // in the order tried
  std::vector<std::string> kept_float;  // the final choice
  double top1 = 0, top1_drop = 0;       // of the final choice
  SensitivityReport sensitivity;        // the ranking used
  nlohmann::json to_json() const;
};

// Quantizes `g` in place like quantize_static, keeping the most sensitive
// layers in float (on top of options.exclude) until the top-1 drop on `eval`
// is within `max_drop_points`; `fallback` says what was tried and kept.
// Error(BadInput) when `eval` is empty or max_drop_points is negative.
QuantizeReport quantize_with_fallback(Graph& g, const CalibrationData& data, const QuantizeOptions& options,
                                      const data::TensorDataset& eval, double max_drop_points,
                                      FallbackReport& fallback);

}  // namespace compress::quant
