#pragma once
// Latency lookup tables for latency budgets (compress prune --target-latency,
// compress amc --target-latency): each convolution or linear layer timed
// alone on this machine at a grid of kept input and output widths, so a
// search can predict a pruned model's latency without building it.
// Prediction = overhead + sum of the layers' interpolated times, where the
// overhead (everything that is not a convolution or linear layer, and the
// framework) is the end-to-end time of the unpruned model minus the sum of
// its layers at full width, optionally interpolated towards the smallest
// model's (set_overhead_ms). docs/amc.md, "Latency budgets".
//
//   latency::LatencyOptions lo;  lo.batch = 32;
//   auto table = latency::LatencyTable::measure(latency::latency_layers(graph), lo);
//   table.set_overhead_ms(measure_model_ms(module, graph, lo, 15) - table.layers_ms_at_full_width());
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/script.h>

#include "compress/ir/graph.h"

namespace compress::latency {

// One layer as the table times it.
struct LayerShape {
  std::string name;
  bool linear = false;     // else a 2-d convolution
  bool depthwise = false;  // input width follows the output width (groups = channels)
  int64_t groups = 1;      // a grouped (not depthwise) convolution's groups, kept when it is pruned
  int64_t in = 0, out = 0;
  std::vector<int64_t> input_hw;  // convolution input height and width
  std::vector<int64_t> kernel, stride, padding, dilation;
};

struct LatencyOptions {
  int64_t batch = 1;
  int threads = 1;
  bool int8 = false;  // time the INT8 kernels (compress::conv2d_int8 / linear_int8) instead of FP32 ATen
  int grid = 8;       // kept fractions 1/grid, 2/grid, ..., 1 for input and output
  int repeats = 7;    // timed calls per entry, median kept
  int rounds = 3;     // sweeps over the whole table, the smallest median kept: a burst of
                      // load from other processes spoils one sweep's entries, not all
};

struct LayerTable {
  LayerShape layer;
  // ms[i][o]: kept input fraction (i + 1) / grid, kept output fraction (o + 1) / grid
  // (a depthwise or input-less layer: ms[o][o] only, read along the diagonal).
  std::vector<std::vector<double>> ms;
};

// Median time of `call` over `repeats` calls (after two untimed ones), the
// smallest median of `rounds` rounds. With one thread it is the calling
// thread's CPU time, not wall time: on a shared machine a call that is
// descheduled part-way would otherwise count the other processes' turns
// (timings then read 10-100x slow); with more threads, wall time.
double time_call_ms(const std::function<void()>& call, int repeats, int rounds, int threads);

class LatencyTable {
 public:
  LatencyTable() = default;
  // A table from given times (tests, or one saved elsewhere): every layer's
  // `ms` is grid x grid for options.grid; no timing happens.
  LatencyTable(std::vector<LayerTable> layers, LatencyOptions options);
  // Times every layer at every grid point (median of `repeats` calls, the
  // smallest over `rounds` sweeps). Each row and column is made
  // non-decreasing (each entry the smallest at its widths or more) so that
  // keeping more channels never predicts a faster layer, which the budget
  // clipping's search relies on.
  static LatencyTable measure(const std::vector<LayerShape>& layers, const LatencyOptions& options);

  // Overhead of the unpruned model and, when known, of the smallest one
  // (negative: unknown, the overhead is taken as constant). Ends given the
  // wrong way round (the smallest model's above the unpruned one's, which
  // measurement noise can do) are both taken as their mean, so that a wider
  // model never predicts faster. Error(BadInput) for a value not finite.
  void set_overhead_ms(double unpruned, double smallest = -1);
  // At `t` in [0, 1]: 0 the smallest model, 1 the unpruned one.
  double overhead_ms(double t = 1) const {
    return overhead_smallest_ms_ < 0 ? overhead_ms_ : overhead_smallest_ms_ + t * (overhead_ms_ - overhead_smallest_ms_);
  }
  const std::vector<LayerTable>& layers() const { return layers_; }
  const LatencyOptions& options() const { return options_; }
  // Bilinear interpolation of layer `i` at kept fractions in (0, 1].
  double layer_ms(size_t i, double keep_in, double keep_out) const;
  // Sum of every layer at full width (the unpruned model less its overhead).
  double layers_ms_at_full_width() const;
  // Options, overhead and every layer's shape and times; from_json reads it
  // back (Error(BadInput) naming `source` when it is no table).
  nlohmann::json to_json() const;
  static LatencyTable from_json(const nlohmann::json& j, const std::string& source);

 private:
  std::vector<LayerTable> layers_;
  LatencyOptions options_;
  double overhead_ms_ = 0, overhead_smallest_ms_ = -1;
};

// The layers (2-d convolutions and linear layers that carry MACs, in graph
// order, named as profile_model names them) a latency table needs for `graph`.
std::vector<LayerShape> latency_layers(const Graph& graph);

// End-to-end time of `module` on inputs synthesised for `graph`'s example
// inputs (analysis/inputs.h: every input at its dtype, token ids within the
// embedding they index; batch dimension replaced by options.batch),
// options.threads threads, timed as the table is (time_call_ms: thread CPU
// time with one thread): a few untimed calls first (the profiling executor
// optimises over them), then the smallest median of `repeats` calls over
// options.rounds rounds.
double measure_model_ms(torch::jit::Module& module, const Graph& graph, const LatencyOptions& options, int repeats);

}  // namespace compress::latency
