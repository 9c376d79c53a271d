#pragma once
// compress::Graph: the toolkit's model IR.
//
// A model is a list of nodes in topological order over numbered values.
// Nodes are either
//  - leaf-module calls the toolkit understands (Conv1d/2d, Linear,
//    BatchNorm1d/2d, LayerNorm, MultiheadAttention, Embedding, Dropout), kept as
//    typed nodes with their hyper-parameters and the state_dict names of their
//    parameters, or
//  - generic ops: any aten/prim/custom operator by name and schema, carried
//    through unchanged.
// Parameters and buffers live in one store keyed by their state_dict names.
// See docs/ir.md for the contract (what is a leaf, what is carried, what is refused).
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <ATen/core/function_schema.h>
#include <ATen/core/ivalue.h>
#include <ATen/core/jit_type.h>

namespace compress {

using ValueId = int;

enum class LeafKind {
  Conv1d,
  Conv2d,
  Linear,
  BatchNorm1d,
  BatchNorm2d,
  LayerNorm,
  MultiheadAttention,
  Embedding,
  Dropout,
};
// "Conv2d", "Linear", ...
const char* leaf_kind_name(LeafKind kind);

struct ConvAttrs {
  int64_t in_channels = 0, out_channels = 0, groups = 1;
  std::vector<int64_t> kernel, stride, padding, dilation;  // one entry per spatial dim
  bool bias = false;
};
struct LinearAttrs {
  int64_t in_features = 0, out_features = 0;
  bool bias = false;
};
struct BatchNormAttrs {
  int64_t num_features = 0;
  double eps = 1e-5, momentum = 0.1;
  bool affine = true, track_running_stats = true, cudnn_enabled = true;
};
struct LayerNormAttrs {
  std::vector<int64_t> normalized_shape;
  double eps = 1e-5;
  bool affine = true, cudnn_enabled = true;
};
struct EmbeddingAttrs {
  int64_t num_embeddings = 0, embedding_dim = 0;
  std::optional<int64_t> padding_idx;
  bool scale_grad_by_freq = false, sparse = false;
};
// Self-attention (query = key = value), without masks, returning the output only.
struct AttentionAttrs {
  int64_t embed_dim = 0, num_heads = 1;
  bool bias = true, batch_first = false;
  double dropout = 0.0;
  // The original ran the fused kernel (aten::_native_multi_head_attention) in
  // eval mode; the export does the same so that outputs stay bit-identical.
  bool fused = false;
};
struct DropoutAttrs {
  double p = 0.5;
};
using LeafAttrs = std::variant<ConvAttrs, LinearAttrs, BatchNormAttrs, LayerNormAttrs,
                               EmbeddingAttrs, AttentionAttrs, DropoutAttrs>;

// An operand of a node: a value computed by the graph, a constant, a
// parameter or buffer (by state_dict name), or the module's training flag.
struct Arg {
  enum class Kind { Value, Constant, Param, Training };
  Kind kind = Kind::Constant;
  ValueId value = -1;
  c10::IValue constant;
  std::string param;

  static Arg of_value(ValueId v);
  static Arg of_constant(c10::IValue c);
  static Arg of_param(std::string name);
  static Arg training();
  bool is_value() const { return kind == Kind::Value; }
};

struct Value {
  ValueId id = -1;
  c10::TypePtr type;
  std::string hint;  // readable name from the original graph, if any
};

enum class NodeKind { Op, Leaf };

struct Node {
  NodeKind kind = NodeKind::Op;
  // Op: the operator and, where it has one, its schema (for argument names).
  c10::Symbol op;
  std::shared_ptr<c10::FunctionSchema> schema;
  // Leaf: what it is, the module path it lives at, its hyper-parameters and
  // its parameters by role ("weight", "out_proj.bias") -> state_dict name.
  LeafKind leaf = LeafKind::Linear;
  std::string module;
  LeafAttrs attrs;
  std::map<std::string, std::string> params;

  std::vector<Arg> inputs;
  std::vector<ValueId> outputs;
  // Module path of the code that produced this node ("layer1.0"), for reports.
  std::string scope;

  bool is_leaf() const { return kind == NodeKind::Leaf; }
  bool is_leaf(LeafKind k) const { return kind == NodeKind::Leaf && leaf == k; }
  // "nn.Conv2d" for leaves, "aten::add" for ops.
  std::string op_name() const;
};

struct StoredTensor {
  at::Tensor tensor;
  bool is_buffer = false;
};

class Graph {
 public:
  std::vector<ValueId> inputs;
  std::vector<Arg> outputs;
  std::vector<Node> nodes;  // topological order

  // Parameters and buffers by state_dict name, in the original order.
  std::vector<std::string> param_order;
  std::map<std::string, StoredTensor> params;

  // Qualified TorchScript class name (unmangled) of each module path ("" is the
  // root), so the export keeps the original names users see.
  std::map<std::string, std::string> module_types;

  ValueId add_value(c10::TypePtr type, std::string hint = "");
  const Value& value(ValueId id) const { return values_.at(id); }
  size_t num_values() const { return values_.size(); }

  void add_param(const std::string& name, at::Tensor t, bool is_buffer);
  void remove_param(const std::string& name);
  const at::Tensor& param(const std::string& name) const;
  bool has_param(const std::string& name) const { return params.count(name) != 0; }

  // Index of the node producing each value (-1 for graph inputs).
  std::vector<int> producers() const;
  // Indices of the nodes using `v`, in order; `graph_output` tells whether it is returned.
  std::vector<int> users(ValueId v, bool* graph_output = nullptr) const;
  // Replaces every use of `from` (node inputs and graph outputs) by `to`.
  void replace_uses(ValueId from, const Arg& to);

  // Removes op nodes whose results are unused and that have no side effects
  // (no mutable operands, no randomness). Leaves stay: a batch norm updates
  // its statistics in training mode even when its output is unused.
  // Returns the number of nodes removed.
  int eliminate_dead_code();
  // Removes the nodes at the given indices (their outputs must be unused).
  void erase_nodes(const std::vector<int>& indices);

  // Checks the invariants: each value defined once, before its uses; every
  // parameter reference exists. Throws Error(Failure) naming the broken node.
  void lint() const;
  // Human-readable listing, one node a line.
  std::string to_string() const;

 private:
  std::vector<Value> values_;
};

// Short readable form of an argument ("%12", "3", "[1, 1]", "layer1.0.conv1.weight").
std::string arg_to_string(const Arg& a);

}  // namespace compress
