#pragma once
// Dynamic INT8 quantization: weights INT8 (per output channel, symmetric),
// activations quantized at run time, one scale per call computed from the
// input itself (compress::linear_int8_dynamic); no calibration. The layers
// of sequence models, whose activation ranges vary from batch to batch:
//
//   Graph g = import_module(load_module("lstm.pt"));   // a traced model records its inputs
//   quant::DynamicReport r = quant::quantize_dynamic(g);
//   save_module(export_module(g), "lstm.int8.pt");     // runs with libcompress_ops
//
// Converted: Linear leaves and aten::linear ops with a stored weight
// (compress::linear_int8_dynamic); aten::lstm and aten::gru
// (compress::lstm_int8_dynamic / gru_int8_dynamic: the input and hidden
// projections are dynamic INT8 GEMMs, the gates computed in float); the
// feed-forward and attention projections of fused transformer encoder layers
// (aten::_transformer_encoder_layer_fwd) and the projections of
// MultiheadAttention leaves, both first decomposed into ops.
// Everything else stays float. With `measure`, each layer is timed at its
// shape (example inputs) in float and in INT8 (with at::get_num_threads()
// threads: on one thread its CPU time, robust to a loaded machine; on more,
// wall time) and stays float where INT8 is not faster; the report says so
// with both times.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/ir/graph.h"

namespace compress::quant {

struct DynamicOptions {
  // Module paths (everything under them) or value names to keep in float;
  // a name that matches nothing is Error(BadInput) with the closest one.
  std::vector<std::string> exclude;
  // If not empty, only layers under these module paths convert (and only
  // the encoder layers and attention leaves under them are decomposed): how
  // static quantization hands over the attention leaves it has no kernel for.
  std::vector<std::string> only;
  // Time each layer in float and INT8 at its shape and keep the faster.
  bool measure = true;
  // Timed calls per layer and precision (the median is kept).
  int measure_iterations = 30;
  // Seed of the synthetic inputs the output error is measured on.
  uint64_t seed = 0;
};

struct DynamicLayerReport {
  std::string name;        // module path or value name
  std::string kind;        // "Linear", "LSTM", "GRU", "TransformerEncoderLayer"
  std::string shape;       // the input shape it was measured at ("2x12x16")
  std::string precision;   // "int8" | "float"
  std::string reason;      // why it stays float
  double float_us = 0, int8_us = 0;  // measured median per call (0: not measured; CPU time on one thread)
  nlohmann::json to_json() const;
};

struct DynamicReport {
  std::vector<DynamicLayerReport> layers;
  int64_t bytes_before = 0, bytes_after = 0;  // serialized TorchScript models
  // The converted model's output against the float model's on synthetic
  // inputs (synthesize_inputs with the seed): SQNR and max |difference|.
  double output_sqnr_db = 0, output_max_abs_diff = 0;
  nlohmann::json to_json() const;
};

// Converts `g` in place (it needs example inputs: a traced model brings its
// own). Dropout is removed first (eval mode).
DynamicReport quantize_dynamic(Graph& g, const DynamicOptions& options = {});

}  // namespace compress::quant
