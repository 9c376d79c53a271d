#pragma once
// Model analysis: parameters, MACs and bytes per node for the graph's
// example inputs (shapes come from Graph::infer_shapes).
//
// MACs count multiply-accumulates of convolutions (groups included), linear
// layers, matmul/bmm/baddbmm and attention (projections + QK^T + AV, also
// inside the fused transformer kernels), the convention of the published
// numbers (resnet18 at 1x3x224x224: 1.814 G). Recurrent layers (aten::lstm,
// gru, rnn_*) count W_ih x + W_hh h per step, times batch and sequence
// length; embedding lookups count none.
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "compress/ir/graph.h"

namespace compress {

struct NodeProfile {
  const Node* node = nullptr;
  std::string name;       // the name of its (first) output: module path for leaves, "<scope>:<op>" for ops
  std::string op;         // "nn.Conv2d", "aten::add_"
  std::vector<Shape> output_shapes;
  int64_t params = 0;     // trainable parameters first used by this node
  int64_t param_bytes = 0;
  int64_t macs = 0;
  bool understood = true;  // false: carried through, compression leaves it alone
};

struct ModelProfile {
  std::vector<Shape> input_shapes;
  std::vector<NodeProfile> nodes;  // every node except graph plumbing (lists, tuples, size/int)
  int64_t total_params = 0;        // all trainable parameters in the model
  int64_t total_macs = 0;
  int64_t param_bytes = 0;
  int64_t buffer_bytes = 0;
  std::map<std::string, int> carried_ops;  // op not understood -> count
};

// Profiles the graph for its example inputs (Graph::example_inputs; a
// traced model brings its own). Error(BadInput) when they are unknown or do
// not fit.
ModelProfile profile_model(const Graph& graph);
// Sets the graph's example inputs to these shapes (one per input, all of
// `input_dtype`) and profiles it.
ModelProfile profile_model(Graph& graph, const std::vector<Shape>& input_shapes,
                           at::ScalarType input_dtype = at::kFloat);

// Whether the toolkit's passes understand an op (how channels flow through
// it); other ops are carried through unchanged.
bool is_understood_op(const std::string& qualified_name);
// Ops that only move values around (lists, tuples, shape arithmetic).
bool is_plumbing_op(const std::string& qualified_name);

// "1x3x224x224"
std::string shape_to_string(const Shape& s);
// Parses "1,3,224,224"; Error(BadInput) naming `what` otherwise.
Shape parse_shape(const std::string& text, const std::string& what);

}  // namespace compress
