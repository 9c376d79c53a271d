#include "compress/ir/graph.h"

#include <sstream>
#include <unordered_set>

#include "compress/error.h"

namespace compress {

const char* leaf_kind_name(LeafKind kind) {
  switch (kind) {
    case LeafKind::Conv1d: return "Conv1d";
    case LeafKind::Conv2d: return "Conv2d";
    case LeafKind::Linear: return "Linear";
    case LeafKind::BatchNorm1d: return "BatchNorm1d";
    case LeafKind::BatchNorm2d: return "BatchNorm2d";
    case LeafKind::LayerNorm: return "LayerNorm";
    case LeafKind::MultiheadAttention: return "MultiheadAttention";
    case LeafKind::Embedding: return "Embedding";
    case LeafKind::Dropout: return "Dropout";
  }
  return "?";
}

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

std::string Node::op_name() const {
  if (kind == NodeKind::Leaf) return std::string("nn.") + leaf_kind_name(leaf);
  return op.toQualString();
}

ValueId Graph::add_value(c10::TypePtr type, std::string hint) {
  Value v;
  v.id = static_cast<ValueId>(values_.size());
  v.type = std::move(type);
  v.hint = std::move(hint);
  values_.push_back(std::move(v));
  return values_.back().id;
}

void Graph::add_param(const std::string& name, at::Tensor t, bool is_buffer) {
  if (!params.count(name)) param_order.push_back(name);
  params[name] = StoredTensor{std::move(t), is_buffer};
}

void Graph::remove_param(const std::string& name) {
  params.erase(name);
  param_order.erase(std::remove(param_order.begin(), param_order.end(), name), param_order.end());
}

const at::Tensor& Graph::param(const std::string& name) const {
  auto it = params.find(name);
  if (it == params.end()) failure("graph has no parameter or buffer named '" + name + "'");
  return it->second.tensor;
}

std::vector<int> Graph::producers() const {
  std::vector<int> result(values_.size(), -1);
  for (size_t i = 0; i < nodes.size(); ++i)
    for (ValueId v : nodes[i].outputs) result.at(v) = static_cast<int>(i);
  return result;
}

std::vector<int> Graph::users(ValueId v, bool* graph_output) const {
  std::vector<int> result;
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const Arg& a : nodes[i].inputs) {
      if (a.is_value() && a.value == v) {
        result.push_back(static_cast<int>(i));
        break;
      }
    }
  }
  if (graph_output) {
    *graph_output = false;
    for (const Arg& a : outputs)
      if (a.is_value() && a.value == v) *graph_output = true;
  }
  return result;
}

void Graph::replace_uses(ValueId from, const Arg& to) {
  for (Node& n : nodes)
    for (Arg& a : n.inputs)
      if (a.is_value() && a.value == from) a = to;
  for (Arg& a : outputs)
    if (a.is_value() && a.value == from) a = to;
}

void Graph::erase_nodes(const std::vector<int>& indices) {
  std::vector<bool> drop(nodes.size(), false);
  for (int i : indices) drop.at(i) = true;
  std::vector<Node> kept;
  kept.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!drop[i]) kept.push_back(std::move(nodes[i]));
  nodes = std::move(kept);
}

int Graph::eliminate_dead_code() {
  std::unordered_set<ValueId> used;
  for (const Arg& a : outputs)
    if (a.is_value()) used.insert(a.value);
  std::vector<int> dead;
  for (int i = static_cast<int>(nodes.size()) - 1; i >= 0; --i) {
    const Node& n = nodes[i];
    bool live = n.is_leaf() || n.outputs.empty();
    for (ValueId v : n.outputs) live |= used.count(v) != 0;
    if (!live && n.schema) {
      std::string name = n.op.toQualString();
      live = n.schema->is_mutable() || name.find("rand") != std::string::npos ||
             name.find("dropout") != std::string::npos || name == "aten::warn";
    }
    if (live) {
      for (const Arg& a : n.inputs)
        if (a.is_value()) used.insert(a.value);
    } else {
      dead.push_back(i);
    }
  }
  erase_nodes(dead);
  return static_cast<int>(dead.size());
}

void Graph::lint() const {
  std::unordered_set<ValueId> defined(inputs.begin(), inputs.end());
  auto check_arg = [&](const Arg& a, const std::string& where) {
    if (a.kind == Arg::Kind::Value && !defined.count(a.value))
      failure("graph lint: " + where + " uses %" + std::to_string(a.value) + " before it is defined");
    if (a.kind == Arg::Kind::Param && !params.count(a.param))
      failure("graph lint: " + where + " uses unknown parameter '" + a.param + "'");
  };
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    std::string where = "node " + std::to_string(i) + " (" + n.op_name() + ")";
    for (const Arg& a : n.inputs) check_arg(a, where);
    for (const auto& kv : n.params)
      if (!params.count(kv.second))
        failure("graph lint: " + where + " refers to missing parameter '" + kv.second + "'");
    for (ValueId v : n.outputs) {
      if (v < 0 || v >= static_cast<ValueId>(values_.size()))
        failure("graph lint: " + where + " defines an unknown value");
      if (!defined.insert(v).second)
        failure("graph lint: " + where + " redefines %" + std::to_string(v));
    }
  }
  for (const Arg& a : outputs) check_arg(a, "graph output");
}

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

std::string Graph::to_string() const {
  std::ostringstream os;
  os << "graph(";
  for (size_t i = 0; i < inputs.size(); ++i) os << (i ? ", " : "") << "%" << inputs[i];
  os << "):\n";
  for (const Node& n : nodes) {
    os << "  ";
    for (size_t i = 0; i < n.outputs.size(); ++i) os << (i ? ", " : "") << "%" << n.outputs[i];
    os << " = " << n.op_name();
    if (n.is_leaf()) {
      os << "[" << n.module;
      for (const auto& kv : n.params) os << (kv.first == n.params.begin()->first ? ": " : ", ") << kv.first;
      os << "]";
    }
    os << "(";
    for (size_t i = 0; i < n.inputs.size(); ++i) os << (i ? ", " : "") << arg_to_string(n.inputs[i]);
    os << ")\n";
  }
  os << "  return (";
  for (size_t i = 0; i < outputs.size(); ++i) os << (i ? ", " : "") << arg_to_string(outputs[i]);
  os << ")\n";
  return os.str();
}

}  // namespace compress
