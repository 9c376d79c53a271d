#pragma once
// Post-training static quantization (PTQ) of a graph to real INT8 ops.
//
//   Graph g = import_module(load_module("resnet18.pt"));
//   g.set_example_inputs({InputSpec{{1, 3, 224, 224}}});
//   quant::CalibrationData data{8, [&](int64_t i) { return batches[i]; }};
//   quant::QuantizeReport report = quant::quantize_static(g, data, {});
//   save_module(export_module(g), "resnet18.int8.pt");   // runs with libcompress_ops only
//
// Steps (each public, for tests and other passes):
//  1. strip_dropout and fold_batch_norm (passes/);
//  2. plan_layers: each Conv2d (groups 1 or depthwise) and Linear leaf, with
//     what its kernel epilogue absorbs: a residual aten::add (the other
//     operand read as uint8, requantized by the epilogue) and a following
//     relu / relu6 / hardtanh / clamp (lo <= 0 <= hi: the clamp becomes the
//     output's code range), found with the IR pattern matcher (ir/match.h);
//  3. calibrate: the graph is exported with the values to observe as taps
//     (ExportOptions::taps) and run batch by batch; one Observer per value
//     keeps streaming statistics (observer.h);
//  4. convert: each planned layer becomes compress::conv2d_int8 /
//     compress::linear_int8 with its packed weight, requantization scale and
//     bias stored as graph buffers (`<module>.packed_weight`,
//     `<module>.requant_scale`, `<module>.requant_bias`); activations stay
//     uint8 (NHWC for 4-D) between consecutive INT8 ops; max_pool2d and
//     flatten run on the uint8 codes (exact); compress::quantize_u8 is
//     inserted where float enters an INT8 layer, compress::dequantize_u8
//     where float ops read an INT8 result; a layer whose only readers are
//     float ops (a classifier) writes float32 directly.
// Everything left in float is listed in the report with the reason.
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>
#include <nlohmann/json.hpp>

#include "compress/ir/graph.h"
#include "compress/quantization/dynamic.h"
#include "compress/quantization/observer.h"

namespace compress::quant {

// A conv / linear leaf and what its kernel epilogue absorbs.
struct FusedLayer {
  Node* layer = nullptr;
  Node* add = nullptr;      // residual add fused into the epilogue, or nullptr
  ValueId residual = -1;    // the add's other operand
  Node* act = nullptr;      // the fused activation, or nullptr
  bool relu = false;        // the activation floors at 0
  double clamp_lo = -std::numeric_limits<double>::infinity();  // the activation's bounds (relu6: 0, 6)
  double clamp_hi = std::numeric_limits<double>::infinity();
  std::string float_reason; // empty: converted to INT8; else why it stays float

  bool int8() const { return float_reason.empty(); }
  Node* root() const { return act ? act : add ? add : layer; }
  ValueId input() const;
  ValueId output() const { return root()->output(); }
  const std::string& name() const { return layer->module; }
  // "nn.Conv2d + aten::add + aten::relu"
  std::string fused_ops() const;
};

// Plans every Conv1d / Conv2d / Linear leaf of `g` (example inputs must be
// set: ranks and shapes decide what fits the kernels). `exclude` holds module
// paths (a path excludes everything under it) or value names; a name that is
// neither is Error(BadInput) with the closest one.
std::vector<FusedLayer> plan_layers(const Graph& g, const std::vector<std::string>& exclude = {});

// Calibration batches, produced on demand (deterministic: batch(i) is the
// same tensor every time it is asked for), so no set is held in memory twice.
// A model of several inputs gives `inputs`
// instead: every input of batch i, in forward's order.
struct CalibrationData {
  using OneInput = std::function<at::Tensor(int64_t)>;
  using Inputs = std::function<std::vector<at::Tensor>(int64_t)>;
  CalibrationData() = default;
  CalibrationData(int64_t n, OneInput one) : num_batches(n), batch(std::move(one)) {}
  CalibrationData(int64_t n, Inputs all) : num_batches(n), inputs(std::move(all)) {}

  int64_t num_batches = 0;
  OneInput batch;
  Inputs inputs;

  bool empty() const { return num_batches <= 0 || (!batch && !inputs); }
  // The first `max_batches` batches of `batch` samples of `samples` (the last
  // one may be short): calibration on the start of a training set.
  static CalibrationData first_batches(const at::Tensor& samples, int64_t batch, int64_t max_batches);
  // Batch i as forward's arguments (`inputs` when set, else `batch`).
  std::vector<c10::IValue> arguments(int64_t i) const;
};

struct QuantizeOptions {
  Method method = Method::Percentile;
  double percentile = 99.99;
  std::vector<std::string> exclude;
  // Batches (from the start of the calibration data) used to measure SQNR.
  int64_t sqnr_batches = 2;
  // Sparse INT8 weights (sparse_format.h): "auto" times dense against the
  // sparse kernels for each layer whose weight has zeros and keeps the
  // fastest; "off", "1x4", "2:4".
  std::string sparse = "auto";
  // Activation codes: "u8" (0..255), "u7" (0..127, PyTorch's reduce_range),
  // or "auto" (resolve_activations: u7 where the active kernels are AVX2).
  std::string activations = "auto";
};

// What QuantizeOptions::activations means on this machine. The AVX2 kernels
// have a layout for 7-bit activations (avx2_n16k8_u7s8: the vpmaddubsw sums
// of two k-quads add in 16 bits, 3 multiplies per 64 MACs instead of 4);
// AVX-512 VNNI and AMX multiply u8 x s8 natively, so there 7 bits would
// only cost precision. Error(BadInput) for another string.
struct ActivationCodes {
  int64_t quant_max = 255;   // 255 or 127
  std::string name, reason;  // "u8" | "u7", and why
};
ActivationCodes resolve_activations(const std::string& activations);

// One observer per value planned layers read or write, fed batch by batch.
// Error(BadInput) when there are no batches.
std::map<ValueId, Observer> calibrate(const Graph& g, const std::vector<FusedLayer>& plan,
                                      const CalibrationData& data);

struct LayerReport {
  std::string name, ops, precision, reason;  // precision: "int8" | "float"
  QuantParams input, output;
  bool float_output = false;                 // the INT8 op writes float32 (no output quantization)
  double weight_scale_min = 0, weight_scale_max = 0;
  double sqnr_db = 0;                        // this layer's output against the float model
  // How the INT8 weight is packed: "dense", "sparse_1x4", "sparse_2_4"
  // (sparse_format.h), why, and the INT8 weight's fraction of zeros.
  std::string weight_format = "dense", format_reason;
  double weight_sparsity = 0;
  // Internal, for measuring: where this layer's result is in each graph.
  std::string float_value, int8_value;
  bool int8_value_u8 = false, int8_value_nhwc = false;
};

struct QuantizeReport {
  std::string method;
  ActivationCodes activations;
  int64_t calibration_batches = 0;
  std::vector<LayerReport> layers;
  std::vector<std::pair<std::string, std::string>> float_nodes;  // node, why it runs in float
  // nn.MultiheadAttention has no static INT8 kernel: the projections of each
  // attention leaf not excluded convert to dynamic INT8 (dynamic.h: weights
  // INT8, the activation scale computed per call), listed here; the
  // attention core (q k^T, softmax, weights x v) is a float node.
  std::vector<DynamicLayerReport> dynamic_layers;
  std::vector<std::string> fold_batch_norm;                      // what the fold did / left alone
  double output_sqnr_db = 0;
  int64_t bytes_before = 0, bytes_after = 0;  // serialized TorchScript models
  nlohmann::json to_json() const;
};

// Quantization parameters decided elsewhere (the trained ones of QAT,
// qat.h), used by convert instead of calibrated ranges.
struct FixedParams {
  std::map<ValueId, QuantParams> activations;       // by value, as the observers are keyed
  std::map<std::string, at::Tensor> weight_scales;  // by layer module: float [out_channels]
};

// Rewrites `g` (planned and calibrated as above) into INT8 ops. Fills the
// layers' scales and the list of float nodes in `report`. With `fixed`, its
// parameters take precedence over the observers: weights are then rounded
// as PyTorch's fake quantization does, round(w * (1 / scale)), and a fused
// clamp whose bound lies inside the code range becomes the kernel's
// output_quant_max.
void convert(Graph& g, const std::vector<FusedLayer>& plan, const std::map<ValueId, Observer>& observers,
             const QuantizeOptions& options, QuantizeReport& report, const FixedParams* fixed = nullptr);

// Strips dropout and folds batch norm (the first step of quantize_static and
// of QAT), noting in report.fold_batch_norm what the fold did and left alone.
void prepare_float_graph(Graph& g, QuantizeReport& report);

// Error(BadInput) naming the first parameter or buffer holding NaN or Inf.
void check_finite_parameters(const Graph& g);

// The whole pipeline: strip dropout, fold, plan, calibrate, convert `g` in place, then
// measure each layer's and the output's SQNR against the float model on the
// first `sqnr_batches` batches, and both models' serialized sizes.
// `g` needs example inputs (a traced model brings its own).
QuantizeReport quantize_static(Graph& g, const CalibrationData& data, const QuantizeOptions& options = {});

}  // namespace compress::quant
