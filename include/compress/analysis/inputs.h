#pragma once
// Example inputs for models that take several inputs, integer ones included
// (token ids): which values an integer input may hold, and random inputs
// that a model accepts (commands that run a model without data: compare,
// quantize --dynamic, the benchmarks).
//
//   g.set_example_inputs({InputSpec{{2, 12}, at::kLong}});
//   auto x = synthesize_inputs(g, /*seed=*/0);   // token ids in [0, rows of the embedding)
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "compress/ir/graph.h"

namespace compress {

// Half-open range [lo, hi) of the values of an integer input.
struct IntRange {
  int64_t lo = 0, hi = 1;
};

// The number of rows of the embedding tables (nn.Embedding leaves,
// aten::embedding and aten::embedding_bag ops) graph input `index` indexes,
// followed through every op that keeps it integer (view, slice, to, ...);
// the smallest when it reaches several; nullopt when it reaches none.
// Needs the graph's example inputs (shape inference runs).
std::optional<int64_t> embedding_rows_of_input(const Graph& g, size_t index);

// The range synthesised values of integer input `index` are drawn from:
// `given` when set (Error(BadInput) when it is empty, negative, or leaves the
// rows of the embedding the input indexes), else [0, rows) of that
// embedding, else [0, 1) (zeros: the one index every table has).
IntRange integer_input_range(const Graph& g, size_t index, const std::optional<IntRange>& given = std::nullopt);

// One random tensor per example input of `g` (Graph::example_inputs): floating
// inputs standard normal, integer ones uniform in integer_input_range, bool
// ones 0/1. The same seed gives the same tensors.
std::vector<at::Tensor> synthesize_inputs(const Graph& g, uint64_t seed,
                                          const std::optional<IntRange>& given_range = std::nullopt);

// Random inputs like synthesize_inputs' at any batch size, for code that
// runs a model many times (calibration, latency): the integer ranges are
// found once, from the graph's embeddings (or `given`), so the graph need not
// outlive it.
//
//   InputSynthesizer make(g);
//   auto x = make(/*seed=*/3, /*batch=*/32);   // example shapes, dim 0 set to 32
class InputSynthesizer {
 public:
  explicit InputSynthesizer(const Graph& g, const std::optional<IntRange>& given_range = std::nullopt);
  // One tensor per input; `batch`, when given, replaces every input's first
  // dimension. The same seed and batch give the same tensors.
  std::vector<at::Tensor> operator()(uint64_t seed, std::optional<int64_t> batch = std::nullopt) const;
  const std::vector<InputSpec>& specs() const { return specs_; }

 private:
  std::vector<InputSpec> specs_;
  std::vector<IntRange> ranges_;  // per input; used by integer inputs only
};

// "float32", "int64", ... -> the dtype; Error(BadInput) naming `what` for a
// word that is no tensor dtype (float, float32, float64, double, half,
// bfloat16, int8, uint8, int16, int32, int, int64, long, bool).
at::ScalarType parse_dtype(const std::string& text, const std::string& what);
// "int64": the name parse_dtype reads back.
std::string dtype_name(at::ScalarType t);

}  // namespace compress
