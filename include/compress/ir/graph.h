#pragma once
// compress::Graph: the toolkit's model IR, and the API passes edit it with.
//
// A model is a list of nodes in topological order over values. Nodes are
//  - leaf-module calls the toolkit understands (Conv1d/2d, Linear,
//    BatchNorm1d/2d, LayerNorm, MultiheadAttention, Embedding, Dropout), kept as
//    typed nodes with their hyper-parameters and the state_dict names of their
//    parameters (what each kind means lives in its registry entry, leaf.h), or
//  - generic ops: any aten/prim/custom operator by symbol and schema.
// Parameters and buffers live in one store keyed by their state_dict names;
// the graph owns them (import copies), so editing or training never reaches
// back into the module a graph came from.
//
// Editing, in the spirit of torch.fx: a `Node*` is a stable handle (other
// nodes' insertion and removal never move it; an erased node is detached, not
// freed, until the graph dies); every value knows its producer and its uses
// (kept up to date by set_input / replace_all_uses / erase); new nodes go
// where the insertion point says (`auto at = g.inserting_after(n);`) and are
// created from an operator name whose schema comes from the operator registry
// (builder.h). Every value has a unique readable name (`layer1.0.conv1`,
// `layer3.1:add`, `features.4.relu:relu_1`) that the CLI, recipes and reports
// use to address a tensor. See docs/ir.md.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include <ATen/core/function_schema.h>
#include <ATen/core/ivalue.h>
#include <ATen/core/jit_type.h>

namespace compress {

using ValueId = int;
using Shape = std::vector<int64_t>;

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
  // Size of one head; 0 means embed_dim / num_heads (torch.nn's rule). After
  // heads are pruned the q/k/v width num_heads * head_dim is below embed_dim.
  int64_t head_dim = 0;

  int64_t head_size() const { return head_dim > 0 ? head_dim : embed_dim / num_heads; }
  int64_t inner_dim() const { return num_heads * head_size(); }
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
  bool is_value(ValueId v) const { return kind == Kind::Value && value == v; }
};

class Node;
class Graph;

// One use of a value: operand `index` of `user`.
struct Use {
  Node* user = nullptr;
  size_t index = 0;
};

struct Value {
  ValueId id = -1;
  c10::TypePtr type;
  std::string hint;     // the original TorchScript debug name, if any
  std::string name;     // unique readable name (see the header comment)
  Node* producer = nullptr;  // nullptr for graph inputs (and dead values)
  size_t offset = 0;         // which output of its producer
  std::vector<Use> uses;     // node operands reading it, in no particular order
  int output_uses = 0;       // how often the graph returns it

  bool is_tensor() const { return type && type->kind() == c10::TypeKind::TensorType; }
};

enum class NodeKind { Op, Leaf };

// A node of the graph. Identity and place (inputs, outputs, position) change
// only through the methods, so use-lists stay exact; the descriptive fields
// (op, schema, leaf attributes, parameter roles, scope) are plain data.
class Node {
 public:
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
  // Module path of the code that produced this node ("layer1.0"), for names and reports.
  std::string scope;

  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Unique within its graph, never reused: stable across edits, for messages.
  int id() const { return id_; }
  bool erased() const { return erased_; }
  Node* next() const { return next_; }
  Node* prev() const { return prev_; }

  const std::vector<Arg>& inputs() const { return inputs_; }
  const Arg& input(size_t i = 0) const { return inputs_.at(i); }
  const std::vector<ValueId>& outputs() const { return outputs_; }
  ValueId output(size_t i = 0) const { return outputs_.at(i); }

  // Operand edits keep the use-lists of the values involved exact.
  void set_input(size_t i, Arg a);
  void add_input(Arg a);
  void remove_input(size_t i);
  void set_inputs(std::vector<Arg> args);

  // Distinct nodes that read any output of this one.
  std::vector<Node*> users() const;

  bool is_leaf() const { return kind == NodeKind::Leaf; }
  bool is_leaf(LeafKind k) const { return kind == NodeKind::Leaf && leaf == k; }
  bool is_op(c10::Symbol s) const { return kind == NodeKind::Op && op == s; }
  // "nn.Conv2d" for leaves, "aten::add" for ops.
  std::string op_name() const;
  // "layer1.0.conv1 (nn.Conv2d)" / "layer1.0:add (aten::add)": for messages.
  std::string describe() const;

 private:
  friend class Graph;
  Node() = default;
  Graph* graph_ = nullptr;
  int id_ = -1;
  bool erased_ = false;
  Node* prev_ = nullptr;
  Node* next_ = nullptr;
  std::vector<Arg> inputs_;
  std::vector<ValueId> outputs_;
};

struct StoredTensor {
  at::Tensor tensor;
  bool is_buffer = false;
};

// Example inputs a graph's shape metadata refers to: one shape and dtype per
// graph input. Traced models bring theirs; a user or a pass may set others.
struct InputSpec {
  Shape shape;
  at::ScalarType dtype = at::kFloat;
};

class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph& other);
  Graph& operator=(const Graph& other);
  Graph(Graph&& other) noexcept;
  Graph& operator=(Graph&& other) noexcept;

  // ---- nodes, in topological order ----
  class NodeIterator {
   public:
    explicit NodeIterator(Node* n) : n_(n) {}
    Node& operator*() const { return *n_; }
    Node* operator->() const { return n_; }
    // Reads the successor of the node it stands on, even when that node was
    // erased meanwhile: erasing the current node inside a loop is safe.
    NodeIterator& operator++() {
      n_ = n_->next();
      while (n_ && n_->erased()) n_ = n_->next();
      return *this;
    }
    bool operator!=(const NodeIterator& o) const { return n_ != o.n_; }
    bool operator==(const NodeIterator& o) const { return n_ == o.n_; }

   private:
    Node* n_;
  };
  struct NodeRange {
    Node* first;
    NodeIterator begin() const { return NodeIterator(first); }
    NodeIterator end() const { return NodeIterator(nullptr); }
  };
  NodeRange nodes() const { return NodeRange{head_}; }
  // A snapshot of the node handles, for loops that insert or erase freely.
  std::vector<Node*> node_list() const;
  size_t num_nodes() const { return num_nodes_; }
  Node* first_node() const { return head_; }
  Node* last_node() const { return tail_; }
  // Position of a node in the current order (0-based; recomputed after edits).
  size_t position(const Node* n) const;
  // True when `a` comes before `b`.
  bool is_before(const Node* a, const Node* b) const { return position(a) < position(b); }

  // ---- graph inputs and outputs ----
  const std::vector<ValueId>& inputs() const { return inputs_; }
  ValueId add_input(c10::TypePtr type, const std::string& name);
  const std::vector<Arg>& outputs() const { return outputs_; }
  void add_output(Arg a);
  void set_output(size_t i, Arg a);

  // ---- values ----
  const Value& value(ValueId id) const { return values_.at(static_cast<size_t>(id)); }
  size_t num_values() const { return values_.size(); }
  // The node computing `v` (nullptr for a graph input). O(1).
  Node* producer(ValueId v) const { return value(v).producer; }
  // Distinct nodes reading `v`, in graph order. O(uses).
  std::vector<Node*> users(ValueId v) const;
  const std::vector<Use>& uses(ValueId v) const { return value(v).uses; }
  bool is_output(ValueId v) const { return value(v).output_uses > 0; }
  // No node reads it and the graph does not return it.
  bool unused(ValueId v) const { return value(v).uses.empty() && value(v).output_uses == 0; }

  const std::string& name_of(ValueId v) const { return value(v).name; }
  // The value with that readable name, if any.
  std::optional<ValueId> find_value(const std::string& name) const;
  // Like find_value, but Error(BadInput) naming `what` and a close name when missing.
  ValueId value_named(const std::string& name, const std::string& what = "value") const;
  // Renames a value (the name must be free). Passes rarely need this.
  void rename(ValueId v, const std::string& name);

  // ---- editing ----
  // Where create_* put new nodes: before a node, or at the end (default).
  struct InsertPoint {
    Node* before = nullptr;  // nullptr: append at the end
  };
  InsertPoint insert_point() const { return insert_; }
  void set_insert_point(InsertPoint p) { insert_ = p; }
  // Scoped insertion point: restores the previous one when it goes out of scope.
  class InsertGuard {
   public:
    InsertGuard(Graph& g, InsertPoint p) : g_(&g), saved_(g.insert_point()) { g.set_insert_point(p); }
    InsertGuard(InsertGuard&& o) noexcept : g_(o.g_), saved_(o.saved_) { o.g_ = nullptr; }
    InsertGuard(const InsertGuard&) = delete;
    InsertGuard& operator=(const InsertGuard&) = delete;
    ~InsertGuard() {
      if (g_) g_->set_insert_point(saved_);
    }

   private:
    Graph* g_;
    InsertPoint saved_;
  };
  InsertGuard inserting_before(Node* n) { return InsertGuard(*this, InsertPoint{n}); }
  InsertGuard inserting_after(Node* n) { return InsertGuard(*this, InsertPoint{n->next()}); }
  InsertGuard inserting_at_end() { return InsertGuard(*this, InsertPoint{nullptr}); }

  // Creates an op node at the insertion point with the given operands and
  // one fresh output value per `output_types` entry. No schema check (see
  // create_op in builder.h for the checked form). The outputs are named
  // "<scope>:<op>" (made unique) unless `name` is given.
  Node* create_raw_op(c10::Symbol op, std::shared_ptr<c10::FunctionSchema> schema, std::vector<Arg> inputs,
                      const std::vector<c10::TypePtr>& output_types, const std::string& scope,
                      const std::string& name = "");
  // Creates a leaf node (one input, one tensor output) at the insertion
  // point. Its output is named after the module path unless `name` is given.
  Node* create_leaf(LeafKind kind, const std::string& module, LeafAttrs attrs,
                    std::map<std::string, std::string> params, Arg input, const std::string& scope = "",
                    const std::string& name = "");

  // Routes every use of `from` (node operands and graph outputs) to `to`.
  void replace_all_uses(ValueId from, const Arg& to);
  // Same, but only in nodes for which `keep` returns true.
  void replace_uses_if(ValueId from, const Arg& to, const std::function<bool(const Node&)>& keep);
  // Removes a node whose outputs are unused; Error(Failure) naming it otherwise.
  void erase(Node* n);
  // Moves `n` right before `before` (nullptr: to the end). The caller keeps
  // the order topological; lint() checks it.
  void move_before(Node* n, Node* before);
  // Replaces `n` by what `build` creates (inserted before n), routing the
  // uses of n's outputs to the values `build` returns (one per output), then
  // erases n. Returns the first node created (or nullptr if none).
  Node* replace_node(Node* n, const std::function<std::vector<Arg>(Graph&)>& build);

  // Removes op nodes whose results are unused and that have no side effects
  // (no mutable operands, no randomness). Leaves stay: a batch norm updates
  // its statistics in training mode even when its output is unused.
  // Returns the number of nodes removed.
  int eliminate_dead_code();

  // Checks every invariant a pass can break: each value defined once, before
  // its uses; producers and use-lists agree with the operands; names unique;
  // every parameter reference exists; an op's operand count fits its schema;
  // each leaf's attributes agree with its tensors' shapes (leaf.h).
  // Throws Error(Failure) naming the broken node.
  void lint() const;
  // Human-readable listing, one node a line, values by name.
  std::string to_string() const;

  // ---- parameters and buffers, by state_dict name, in the original order ----
  std::vector<std::string> param_order;
  std::map<std::string, StoredTensor> params;
  void add_param(const std::string& name, at::Tensor t, bool is_buffer);
  void remove_param(const std::string& name);
  const at::Tensor& param(const std::string& name) const;
  bool has_param(const std::string& name) const { return params.count(name) != 0; }
  // Replaces a stored tensor (e.g. a folded or pruned weight), keeping its kind.
  void set_param(const std::string& name, at::Tensor t);

  // Qualified TorchScript class name (unmangled) of each module path ("" is the
  // root), so the export keeps the original names users see.
  std::map<std::string, std::string> module_types;

  // ---- shape metadata ----
  // The example inputs shapes refer to (empty when unknown).
  const std::vector<InputSpec>& example_inputs() const { return example_inputs_; }
  void set_example_inputs(std::vector<InputSpec> inputs);
  // Computes the shape and dtype of every tensor value (and the value of
  // every size / list of sizes) for the example inputs, by running each op
  // on zero-filled stand-ins and each leaf by its shape rule (leaf.h); see
  // docs/ir.md. Cheap when little changed: nodes whose operands, leaf
  // attributes and parameter shapes are as before keep their results.
  // Error(BadInput) naming the node when the example inputs do not fit, or
  // when no example inputs are known (a traced model brings its own).
  void infer_shapes() const;
  // Shape and dtype of a tensor value. Infers shapes first when the graph's
  // structure (nodes, operands, parameters) changed since the last time;
  // after editing leaf attributes in place, call infer_shapes() yourself.
  // Error(Failure) for a value that is no tensor.
  const Shape& shape(ValueId v) const;
  at::ScalarType dtype(ValueId v) const;
  // The value a non-tensor value (a size, a list of sizes) had for the
  // example inputs; None when it is a tensor or unknown.
  c10::IValue example_constant(ValueId v) const;

  // The node producing a value with this scope, for messages ("layer1.0:add").
  std::string describe_value(ValueId v) const;

 private:
  friend class Node;
  friend struct ShapeEngine;
  ValueId new_value(c10::TypePtr type, const std::string& name, const std::string& hint = "");
  std::string unique_name(const std::string& base) const;
  void add_use(const Arg& a, Node* user, size_t index);
  void drop_use(const Arg& a, Node* user, size_t index);
  void link(Node* n, Node* before);
  void unlink(Node* n);
  Node* new_node();
  void copy_from(const Graph& other);
  void steal(Graph& other) noexcept;
  void clear();

  std::vector<Value> values_;
  std::vector<ValueId> inputs_;
  std::vector<Arg> outputs_;
  std::unordered_map<std::string, ValueId> names_;
  Node* head_ = nullptr;
  Node* tail_ = nullptr;
  size_t num_nodes_ = 0;
  int next_node_id_ = 0;
  std::vector<std::unique_ptr<Node>> storage_;  // live and erased nodes
  InsertPoint insert_;
  mutable bool positions_valid_ = false;
  mutable std::unordered_map<const Node*, size_t> positions_;

  std::vector<InputSpec> example_inputs_;
  // Shape metadata, filled by infer_shapes (shapes.cpp), indexed by ValueId.
  struct ValueMeta {
    bool known = false;
    Shape shape;                           // tensors
    at::ScalarType dtype = at::kFloat;     // tensors
    c10::IValue constant;                  // everything else (sizes, lists of sizes)
  };
  mutable std::vector<ValueMeta> meta_;
  // Structural edits since creation; shape metadata remembers the version it was computed at.
  uint64_t version_ = 0;
  mutable uint64_t shapes_version_ = ~uint64_t{0};
  // Per node, a key of what its results were computed from (operands,
  // attributes, parameter shapes): unchanged key, results reused.
  mutable std::unordered_map<const Node*, std::string> shape_keys_;
};

// Short readable form of an argument ("%layer1.0:add", "3", "[1, 1]", "layer1.0.conv1.weight").
std::string arg_to_string(const Arg& a);
std::string arg_to_string(const Graph& g, const Arg& a);

}  // namespace compress
