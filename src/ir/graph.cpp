#include "compress/ir/graph.h"

#include <algorithm>
#include <sstream>
#include <unordered_set>

#include "compress/error.h"
#include "compress/ir/leaf.h"

namespace compress {

const char* leaf_kind_name(LeafKind kind) { return leaf_info(kind).name; }

Arg Arg::of_value(ValueId v) {
  Arg a;
  a.kind = Kind::Value;
  a.value = v;
  return a;
}
Arg Arg::of_constant(c10::IValue c) {
  Arg a;
  a.kind = Kind::Constant;
  a.constant = std::move(c);
  return a;
}
Arg Arg::of_param(std::string name) {
  Arg a;
  a.kind = Kind::Param;
  a.param = std::move(name);
  return a;
}
Arg Arg::training() {
  Arg a;
  a.kind = Kind::Training;
  return a;
}

// ---------------------------------------------------------------- Node

std::string Node::op_name() const {
  if (kind == NodeKind::Leaf) return std::string("nn.") + leaf_kind_name(leaf);
  return op.toQualString();
}

std::string Node::describe() const {
  std::string name = outputs_.empty() || !graph_ ? "#" + std::to_string(id_) : graph_->name_of(outputs_[0]);
  return name + " (" + op_name() + ")";
}

void Node::set_input(size_t i, Arg a) {
  if (i >= inputs_.size()) failure("set_input: " + describe() + " has no operand " + std::to_string(i));
  graph_->drop_use(inputs_[i], this, i);
  inputs_[i] = std::move(a);
  graph_->add_use(inputs_[i], this, i);
}

void Node::add_input(Arg a) {
  inputs_.push_back(std::move(a));
  graph_->add_use(inputs_.back(), this, inputs_.size() - 1);
}

void Node::remove_input(size_t i) {
  if (i >= inputs_.size()) failure("remove_input: " + describe() + " has no operand " + std::to_string(i));
  // Operands after i shift down by one: re-register them.
  for (size_t k = i; k < inputs_.size(); ++k) graph_->drop_use(inputs_[k], this, k);
  inputs_.erase(inputs_.begin() + static_cast<std::ptrdiff_t>(i));
  for (size_t k = i; k < inputs_.size(); ++k) graph_->add_use(inputs_[k], this, k);
}

void Node::set_inputs(std::vector<Arg> args) {
  for (size_t k = 0; k < inputs_.size(); ++k) graph_->drop_use(inputs_[k], this, k);
  inputs_ = std::move(args);
  for (size_t k = 0; k < inputs_.size(); ++k) graph_->add_use(inputs_[k], this, k);
}

std::vector<Node*> Node::users() const {
  std::vector<Node*> out;
  for (ValueId v : outputs_)
    for (Node* u : graph_->users(v))
      if (std::find(out.begin(), out.end(), u) == out.end()) out.push_back(u);
  return out;
}

// ---------------------------------------------------------------- Graph: life cycle

Graph::Graph() = default;
Graph::~Graph() = default;

Graph::Graph(const Graph& other) { copy_from(other); }
Graph& Graph::operator=(const Graph& other) {
  if (this != &other) {
    clear();
    copy_from(other);
  }
  return *this;
}
Graph::Graph(Graph&& other) noexcept { steal(other); }
Graph& Graph::operator=(Graph&& other) noexcept {
  if (this != &other) {
    clear();
    steal(other);
  }
  return *this;
}

void Graph::clear() {
  values_.clear();
  inputs_.clear();
  outputs_.clear();
  names_.clear();
  head_ = tail_ = nullptr;
  num_nodes_ = 0;
  next_node_id_ = 0;
  storage_.clear();
  insert_ = InsertPoint{};
  positions_valid_ = false;
  positions_.clear();
  param_order.clear();
  params.clear();
  module_types.clear();
  example_inputs_.clear();
  meta_.clear();
  shape_keys_.clear();
  version_ = 0;
  shapes_version_ = ~uint64_t{0};
}

void Graph::steal(Graph& o) noexcept {
  values_ = std::move(o.values_);
  inputs_ = std::move(o.inputs_);
  outputs_ = std::move(o.outputs_);
  names_ = std::move(o.names_);
  head_ = o.head_;
  tail_ = o.tail_;
  num_nodes_ = o.num_nodes_;
  next_node_id_ = o.next_node_id_;
  storage_ = std::move(o.storage_);
  insert_ = o.insert_;
  positions_valid_ = false;
  param_order = std::move(o.param_order);
  params = std::move(o.params);
  module_types = std::move(o.module_types);
  example_inputs_ = std::move(o.example_inputs_);
  meta_ = std::move(o.meta_);
  shape_keys_ = std::move(o.shape_keys_);
  version_ = o.version_;
  shapes_version_ = o.shapes_version_;
  for (auto& n : storage_) n->graph_ = this;
  o.head_ = o.tail_ = nullptr;
  o.num_nodes_ = 0;
  o.insert_ = InsertPoint{};
  o.clear();
}

void Graph::copy_from(const Graph& o) {
  // Values keep their ids; uses and producers are rebuilt as nodes are added.
  values_ = o.values_;
  for (Value& v : values_) {
    v.producer = nullptr;
    v.uses.clear();
    v.output_uses = 0;
  }
  inputs_ = o.inputs_;
  names_ = o.names_;
  param_order = o.param_order;
  // A copy owns its tensors too: training or editing one never shows in the other.
  for (const auto& kv : o.params) params[kv.first] = StoredTensor{kv.second.tensor.clone(), kv.second.is_buffer};
  module_types = o.module_types;
  example_inputs_ = o.example_inputs_;
  meta_ = o.meta_;
  for (Node& src : o.nodes()) {
    Node* n = new_node();
    n->id_ = src.id_;
    n->kind = src.kind;
    n->op = src.op;
    n->schema = src.schema;
    n->leaf = src.leaf;
    n->module = src.module;
    n->attrs = src.attrs;
    n->params = src.params;
    n->scope = src.scope;
    n->outputs_ = src.outputs_;
    for (size_t i = 0; i < n->outputs_.size(); ++i) {
      values_.at(n->outputs_[i]).producer = n;
      values_.at(n->outputs_[i]).offset = i;
    }
    link(n, nullptr);
    n->set_inputs(src.inputs_);
  }
  for (const Arg& a : o.outputs_) add_output(a);
  next_node_id_ = o.next_node_id_;
}

Node* Graph::new_node() {
  storage_.push_back(std::unique_ptr<Node>(new Node()));
  Node* n = storage_.back().get();
  n->graph_ = this;
  n->id_ = next_node_id_++;
  return n;
}

void Graph::link(Node* n, Node* before) {
  if (before && (before->graph_ != this || before->erased_)) failure("insert: the insertion point is not a live node of this graph");
  n->next_ = before;
  n->prev_ = before ? before->prev_ : tail_;
  if (n->prev_) n->prev_->next_ = n;
  else head_ = n;
  if (before) before->prev_ = n;
  else tail_ = n;
  ++num_nodes_;
  ++version_;
  positions_valid_ = false;
}

void Graph::unlink(Node* n) {
  if (n->prev_) n->prev_->next_ = n->next_;
  else head_ = n->next_;
  if (n->next_) n->next_->prev_ = n->prev_;
  else tail_ = n->prev_;
  --num_nodes_;
  ++version_;
  positions_valid_ = false;
  // prev_/next_ are left as they were so that an iterator standing on an
  // erased node still finds its way forward.
}

std::vector<Node*> Graph::node_list() const {
  std::vector<Node*> out;
  out.reserve(num_nodes_);
  for (Node* n = head_; n; n = n->next_) out.push_back(n);
  return out;
}

size_t Graph::position(const Node* n) const {
  if (!positions_valid_) {
    positions_.clear();
    size_t i = 0;
    for (Node* m = head_; m; m = m->next_) positions_[m] = i++;
    positions_valid_ = true;
  }
  auto it = positions_.find(n);
  if (it == positions_.end()) failure("position: node #" + std::to_string(n->id()) + " is not in the graph");
  return it->second;
}

// ---------------------------------------------------------------- values and names

ValueId Graph::new_value(c10::TypePtr type, const std::string& name, const std::string& hint) {
  Value v;
  v.id = static_cast<ValueId>(values_.size());
  v.type = std::move(type);
  v.hint = hint;
  v.name = unique_name(name.empty() ? "v" : name);
  names_[v.name] = v.id;
  values_.push_back(std::move(v));
  return values_.back().id;
}

std::string Graph::unique_name(const std::string& base) const {
  if (!names_.count(base)) return base;
  for (int i = 1;; ++i) {
    std::string candidate = base + "_" + std::to_string(i);
    if (!names_.count(candidate)) return candidate;
  }
}

std::optional<ValueId> Graph::find_value(const std::string& name) const {
  auto it = names_.find(name);
  if (it == names_.end()) return std::nullopt;
  return it->second;
}

ValueId Graph::value_named(const std::string& name, const std::string& what) const {
  if (auto v = find_value(name)) return *v;
  std::vector<std::string> known;
  known.reserve(names_.size());
  for (const auto& kv : names_) known.push_back(kv.first);
  std::string best = closest_name(name, known);
  std::string hint = best.empty() ? "" : " (did you mean '" + best + "'? `compress inspect --graph` lists the names)";
  bad_input(what + " '" + name + "' is not a value of the model" + hint);
}

void Graph::rename(ValueId v, const std::string& name) {
  if (name.empty()) failure("rename: empty name");
  auto it = names_.find(name);
  if (it != names_.end() && it->second != v) failure("rename: the name '" + name + "' is taken");
  names_.erase(values_.at(v).name);
  values_.at(v).name = name;
  names_[name] = v;
}

std::string Graph::describe_value(ValueId v) const {
  const Value& val = value(v);
  return val.producer ? "'" + val.name + "' (" + val.producer->op_name() + ")" : "'" + val.name + "' (input)";
}

std::vector<Node*> Graph::users(ValueId v) const {
  std::vector<Node*> out;
  for (const Use& u : value(v).uses)
    if (std::find(out.begin(), out.end(), u.user) == out.end()) out.push_back(u.user);
  std::sort(out.begin(), out.end(), [&](Node* a, Node* b) { return position(a) < position(b); });
  return out;
}

void Graph::add_use(const Arg& a, Node* user, size_t index) {
  ++version_;
  if (!a.is_value()) return;
  if (a.value < 0 || static_cast<size_t>(a.value) >= values_.size())
    failure("operand " + std::to_string(index) + " of " + user->op_name() + " refers to no value");
  values_[a.value].uses.push_back(Use{user, index});
}

void Graph::drop_use(const Arg& a, Node* user, size_t index) {
  ++version_;
  if (!a.is_value()) return;
  auto& uses = values_.at(a.value).uses;
  for (auto it = uses.begin(); it != uses.end(); ++it) {
    if (it->user == user && it->index == index) {
      uses.erase(it);
      return;
    }
  }
}

ValueId Graph::add_input(c10::TypePtr type, const std::string& name) {
  ValueId v = new_value(std::move(type), name, name);
  inputs_.push_back(v);
  return v;
}

void Graph::add_output(Arg a) {
  ++version_;
  if (a.is_value()) values_.at(a.value).output_uses++;
  outputs_.push_back(std::move(a));
}

void Graph::set_output(size_t i, Arg a) {
  ++version_;
  if (outputs_.at(i).is_value()) values_.at(outputs_[i].value).output_uses--;
  if (a.is_value()) values_.at(a.value).output_uses++;
  outputs_[i] = std::move(a);
}

// ---------------------------------------------------------------- editing

namespace {
std::string short_op(c10::Symbol op) {
  std::string s = op.toUnqualString();
  if (s.size() > 1 && s.back() == '_' && s[s.size() - 2] != '_') s.pop_back();
  while (!s.empty() && s.front() == '_') s.erase(s.begin());
  return s.empty() ? "op" : s;
}
}  // namespace

Node* Graph::create_raw_op(c10::Symbol op, std::shared_ptr<c10::FunctionSchema> schema, std::vector<Arg> inputs,
                           const std::vector<c10::TypePtr>& output_types, const std::string& scope,
                           const std::string& name) {
  Node* n = new_node();
  n->kind = NodeKind::Op;
  n->op = op;
  n->schema = std::move(schema);
  n->scope = scope;
  std::string base = !name.empty() ? name : (scope.empty() ? "" : scope + ":") + short_op(op);
  for (size_t i = 0; i < output_types.size(); ++i) {
    ValueId v = new_value(output_types[i], output_types.size() == 1 ? base : base + "#" + std::to_string(i));
    values_[v].producer = n;
    values_[v].offset = i;
    n->outputs_.push_back(v);
  }
  link(n, insert_.before);
  n->set_inputs(std::move(inputs));
  return n;
}

Node* Graph::create_leaf(LeafKind kind, const std::string& module, LeafAttrs attrs,
                         std::map<std::string, std::string> params, Arg input, const std::string& scope,
                         const std::string& name) {
  Node* n = new_node();
  n->kind = NodeKind::Leaf;
  n->leaf = kind;
  n->module = module;
  n->attrs = std::move(attrs);
  n->params = std::move(params);
  n->scope = scope;
  ValueId v = new_value(c10::TensorType::get(), !name.empty() ? name : (module.empty() ? "self" : module));
  values_[v].producer = n;
  n->outputs_.push_back(v);
  link(n, insert_.before);
  n->set_inputs({std::move(input)});
  return n;
}

void Graph::replace_all_uses(ValueId from, const Arg& to) {
  replace_uses_if(from, to, [](const Node&) { return true; });
}

void Graph::replace_uses_if(ValueId from, const Arg& to, const std::function<bool(const Node&)>& keep) {
  if (to.is_value(from)) return;
  std::vector<Use> uses = values_.at(from).uses;  // set_input edits the list
  for (const Use& u : uses)
    if (keep(*u.user)) u.user->set_input(u.index, to);
  for (size_t i = 0; i < outputs_.size(); ++i)
    if (outputs_[i].is_value(from)) set_output(i, to);
}

void Graph::erase(Node* n) {
  if (n->graph_ != this || n->erased_) failure("erase: the node is not a live node of this graph");
  for (ValueId v : n->outputs_) {
    if (!unused(v)) {
      std::string user = values_[v].uses.empty() ? "the graph output" : values_[v].uses[0].user->describe();
      failure("erase: " + n->describe() + " still has a use of its output " + describe_value(v) + " (by " + user + ")");
    }
  }
  for (size_t k = 0; k < n->inputs_.size(); ++k) drop_use(n->inputs_[k], n, k);
  for (ValueId v : n->outputs_) {
    names_.erase(values_[v].name);
    values_[v].producer = nullptr;
  }
  if (insert_.before == n) insert_.before = n->next_;
  unlink(n);
  n->erased_ = true;
  shape_keys_.erase(n);
}

void Graph::move_before(Node* n, Node* before) {
  if (n == before) return;
  unlink(n);
  link(n, before);
}

Node* Graph::replace_node(Node* n, const std::function<std::vector<Arg>(Graph&)>& build) {
  Node* prev = n->prev_;
  std::vector<Arg> results;
  {
    auto at = inserting_before(n);
    results = build(*this);
  }
  if (results.size() != n->outputs_.size())
    failure("replace_node: the replacement of " + n->describe() + " gives " + std::to_string(results.size()) +
            " value(s) for its " + std::to_string(n->outputs_.size()) + " output(s)");
  for (size_t i = 0; i < results.size(); ++i) replace_all_uses(n->outputs_[i], results[i]);
  Node* first = prev ? prev->next_ : head_;
  erase(n);
  return first == n ? nullptr : first;
}

int Graph::eliminate_dead_code() {
  int removed = 0;
  for (Node* n = tail_; n;) {
    Node* prev = n->prev_;
    bool live = n->is_leaf() || n->outputs_.empty();
    for (ValueId v : n->outputs_) live |= !unused(v);
    if (!live && n->schema) {
      std::string name = n->op.toQualString();
      live = n->schema->is_mutable() || name.find("rand") != std::string::npos ||
             name.find("dropout") != std::string::npos || name == "aten::warn";
    }
    if (!live) {
      erase(n);
      ++removed;
    }
    n = prev;
  }
  return removed;
}

// ---------------------------------------------------------------- parameters

void Graph::add_param(const std::string& name, at::Tensor t, bool is_buffer) {
  ++version_;
  if (!params.count(name)) param_order.push_back(name);
  params[name] = StoredTensor{std::move(t), is_buffer};
}

void Graph::remove_param(const std::string& name) {
  ++version_;
  params.erase(name);
  param_order.erase(std::remove(param_order.begin(), param_order.end(), name), param_order.end());
}

const at::Tensor& Graph::param(const std::string& name) const {
  auto it = params.find(name);
  if (it == params.end()) failure("graph has no parameter or buffer named '" + name + "'");
  return it->second.tensor;
}

void Graph::set_param(const std::string& name, at::Tensor t) {
  auto it = params.find(name);
  if (it == params.end()) failure("set_param: graph has no parameter or buffer named '" + name + "'");
  ++version_;
  it->second.tensor = std::move(t);
}

void Graph::set_example_inputs(std::vector<InputSpec> inputs) {
  if (inputs.size() != inputs_.size()) {
    bad_input("the model takes " + std::to_string(inputs_.size()) + " input(s) but " +
              std::to_string(inputs.size()) + " input shape(s) were given");
  }
  example_inputs_ = std::move(inputs);
  meta_.clear();
  shape_keys_.clear();
  ++version_;
}

// ---------------------------------------------------------------- lint

void Graph::lint() const {
  std::unordered_set<ValueId> defined(inputs_.begin(), inputs_.end());
  std::unordered_map<const Node*, int> seen;
  auto fail = [](const std::string& where, const std::string& what) { failure("graph lint: " + where + " " + what); };
  size_t count = 0;
  for (Node* n = head_; n; n = n->next_) {
    ++count;
    std::string where = "node #" + std::to_string(n->id_) + " " + n->op_name();
    if (n->erased_) fail(where, "is erased but still linked");
    if (n->graph_ != this) fail(where, "belongs to another graph");
    if (n->next_ && n->next_->prev_ != n) fail(where, "has a broken link to its successor");
    for (size_t k = 0; k < n->inputs_.size(); ++k) {
      const Arg& a = n->inputs_[k];
      if (a.kind == Arg::Kind::Value) {
        if (!defined.count(a.value)) fail(where, "uses %" + std::to_string(a.value) + " before it is defined");
        const auto& uses = values_[a.value].uses;
        bool listed = std::any_of(uses.begin(), uses.end(), [&](const Use& u) { return u.user == n && u.index == k; });
        if (!listed) fail(where, "reads " + describe_value(a.value) + " but is missing from its use-list");
      }
      if (a.kind == Arg::Kind::Param && !params.count(a.param)) fail(where, "uses unknown parameter '" + a.param + "'");
    }
    for (const auto& kv : n->params)
      if (!params.count(kv.second)) fail(where, "refers to missing parameter '" + kv.second + "'");
    for (size_t i = 0; i < n->outputs_.size(); ++i) {
      ValueId v = n->outputs_[i];
      if (v < 0 || static_cast<size_t>(v) >= values_.size()) fail(where, "defines an unknown value");
      if (!defined.insert(v).second) fail(where, "redefines %" + std::to_string(v));
      if (values_[v].producer != n || values_[v].offset != i) fail(where, "is not the recorded producer of its output");
    }
    if (n->kind == NodeKind::Op && n->schema && !n->schema->is_vararg()) {
      const auto& formals = n->schema->arguments();
      size_t required = 0;
      for (const auto& f : formals) required += !f.default_value().has_value();
      if (n->inputs_.size() > formals.size() || n->inputs_.size() < required)
        fail(where, "has " + std::to_string(n->inputs_.size()) + " operands but its schema " +
                        n->schema->name() + " takes " + std::to_string(required) + " to " +
                        std::to_string(formals.size()));
    }
    if (n->is_leaf()) {
      try {
        leaf_info(n->leaf).validate(*this, *n);
      } catch (const Error& e) {
        fail("leaf " + n->module + " (" + n->op_name() + ")", e.what());
      }
    }
  }
  if (count != num_nodes_) failure("graph lint: node count " + std::to_string(num_nodes_) + " but " + std::to_string(count) + " linked");
  for (const Arg& a : outputs_) {
    if (a.kind == Arg::Kind::Value && !defined.count(a.value)) fail("graph output", "uses an undefined value");
    if (a.kind == Arg::Kind::Param && !params.count(a.param)) fail("graph output", "uses unknown parameter '" + a.param + "'");
  }
  // Use-lists hold nothing stale, and names are unique and indexed.
  for (const Value& v : values_) {
    for (const Use& u : v.uses) {
      if (u.user->erased_ || u.index >= u.user->inputs_.size() || !u.user->inputs_[u.index].is_value(v.id))
        failure("graph lint: the use-list of " + describe_value(v.id) + " names a node that does not read it");
    }
    int outs = 0;
    for (const Arg& a : outputs_) outs += a.is_value(v.id);
    if (outs != v.output_uses) failure("graph lint: output count of " + describe_value(v.id) + " is stale");
    if (v.producer || std::find(inputs_.begin(), inputs_.end(), v.id) != inputs_.end()) {
      auto it = names_.find(v.name);
      if (it == names_.end() || it->second != v.id) failure("graph lint: the name '" + v.name + "' is not unique");
    }
  }
}

// ---------------------------------------------------------------- printing

std::string arg_to_string(const Arg& a) {
  switch (a.kind) {
    case Arg::Kind::Value: return "%" + std::to_string(a.value);
    case Arg::Kind::Param: return a.param;
    case Arg::Kind::Training: return "<training>";
    case Arg::Kind::Constant: {
      std::ostringstream os;
      if (a.constant.isTensor()) {
        os << "tensor" << a.constant.toTensor().sizes();
      } else {
        os << a.constant;
      }
      return os.str();
    }
  }
  return "?";
}

std::string arg_to_string(const Graph& g, const Arg& a) {
  if (a.is_value()) return "%" + g.name_of(a.value);
  return arg_to_string(a);
}

std::string Graph::to_string() const {
  std::ostringstream os;
  os << "graph(";
  for (size_t i = 0; i < inputs_.size(); ++i) os << (i ? ", " : "") << "%" << name_of(inputs_[i]);
  os << "):\n";
  for (Node* n = head_; n; n = n->next_) {
    os << "  ";
    for (size_t i = 0; i < n->outputs_.size(); ++i) os << (i ? ", " : "") << "%" << name_of(n->outputs_[i]);
    os << " = " << n->op_name();
    if (n->is_leaf()) {
      os << "[" << n->module;
      bool first = true;
      for (const auto& kv : n->params) {
        os << (first ? ": " : ", ") << kv.first;
        first = false;
      }
      os << "]";
    }
    os << "(";
    for (size_t i = 0; i < n->inputs_.size(); ++i) os << (i ? ", " : "") << arg_to_string(*this, n->inputs_[i]);
    os << ")\n";
  }
  os << "  return (";
  for (size_t i = 0; i < outputs_.size(); ++i) os << (i ? ", " : "") << arg_to_string(*this, outputs_[i]);
  os << ")\n";
  return os.str();
}

}  // namespace compress
