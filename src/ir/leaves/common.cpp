#include "common.h"

#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/inliner.h>

#include "compress/error.h"

namespace compress::detail {

using JitNode = torch::jit::Node;
using JitValue = torch::jit::Value;
namespace attr = c10::attr;
namespace prim = c10::prim;

std::shared_ptr<torch::jit::Graph> leaf_body(const torch::jit::Module& module) {
  auto graph = module.get_method("forward").graph()->copy();
  torch::jit::Inline(*graph);
  torch::jit::ConstantPropagation(graph);
  return graph;
}

std::optional<c10::IValue> constant_of(JitValue* v) {
  if (v->node()->kind() != prim::Constant) return std::nullopt;
  return torch::jit::toIValue(v);
}
std::optional<int64_t> int_of(JitValue* v) {
  auto c = constant_of(v);
  if (c && c->isInt()) return c->toInt();
  return std::nullopt;
}
std::optional<double> double_of(JitValue* v) {
  auto c = constant_of(v);
  if (c && c->isDouble()) return c->toDouble();
  if (c && c->isInt()) return static_cast<double>(c->toInt());
  return std::nullopt;
}
std::optional<bool> bool_of(JitValue* v) {
  auto c = constant_of(v);
  if (c && c->isBool()) return c->toBool();
  return std::nullopt;
}
std::optional<std::vector<int64_t>> ints_of(JitValue* v) {
  auto c = constant_of(v);
  if (c && c->isIntList()) return c->toIntVector();
  return std::nullopt;
}
bool is_none(JitValue* v) {
  auto c = constant_of(v);
  return c && c->isNone();
}

std::vector<JitNode*> nodes_of_kind(torch::jit::Graph& g, std::initializer_list<c10::Symbol> kinds) {
  std::vector<JitNode*> out;
  for (JitNode* n : g.nodes())
    for (auto k : kinds)
      if (n->kind() == k) out.push_back(n);
  return out;
}

std::optional<c10::IValue> module_constant(const torch::jit::Module& m, const std::string& name) {
  if (m.hasattr(name)) return m.attr(name);
  auto type = m.type();
  if (type->hasConstant(name)) return type->getConstant(name);
  return std::nullopt;
}

bool has_tensor_attr(const torch::jit::Module& m, const std::string& name) {
  return m.hasattr(name) && m.attr(name).isTensor();
}

namespace {
// If `v` is `self.a.b` (a chain of prim::GetAttr from the body's self), its path "a.b".
std::optional<std::string> attr_path(JitValue* v, JitValue* self) {
  std::vector<std::string> parts;
  while (v != self) {
    JitNode* n = v->node();
    if (n->kind() != prim::GetAttr) return std::nullopt;
    parts.push_back(n->s(attr::name));
    v = n->input(0);
  }
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) path += (path.empty() ? "" : ".") + *it;
  return path;
}

// The value of `module.a.b` for path "a.b".
c10::IValue attr_value(const torch::jit::Module& module, const std::string& path) {
  c10::IValue v = module._ivalue();
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    v = v.toObject()->getAttr(part);
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}
}  // namespace

bool match_param(const torch::jit::Module& module, JitValue* v, JitValue* self, const std::string& role,
                 bool may_be_none, std::vector<std::string>& roles, bool* present) {
  if (present) *present = false;
  if (may_be_none && is_none(v)) return true;
  auto path = attr_path(v, self);
  if (!path || *path != role) return false;
  c10::IValue value = attr_value(module, role);
  if (value.isNone()) return may_be_none;
  if (!value.isTensor()) return false;
  roles.push_back(role);
  if (present) *present = true;
  return true;
}

std::optional<SimpleBody> single_core(const torch::jit::Module& module, std::initializer_list<c10::Symbol> kinds,
                                      size_t data_input) {
  SimpleBody b;
  b.graph = leaf_body(module);
  if (b.graph->inputs().size() != 2 || b.graph->outputs().size() != 1) return std::nullopt;
  auto cores = nodes_of_kind(*b.graph, kinds);
  if (cores.size() != 1) return std::nullopt;
  b.core = cores[0];
  b.self = b.graph->inputs()[0];
  if (b.core->inputs().size() <= data_input || b.core->input(data_input) != b.graph->inputs()[1]) return std::nullopt;
  if (b.graph->outputs()[0] != b.core->output(0)) return std::nullopt;
  return b;
}

std::string opt_param(bool present, const std::string& role) { return present ? "self." + role : "None"; }

std::string int_list(const std::vector<int64_t>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}

const char* py_bool(bool b) { return b ? "True" : "False"; }

std::string float_literal(double v) {
  if (std::isinf(v)) return v > 0 ? "float(\"inf\")" : "float(\"-inf\")";
  if (std::isnan(v)) return "float(\"nan\")";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".";
  return s;
}

int64_t numel(const Shape& s) { return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<int64_t>()); }

std::string shape_str(const Shape& s) {
  if (s.empty()) return "scalar";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}

void expect_eq(int64_t expected, int64_t found, const std::string& what) {
  if (expected != found) failure(what + ": attribute says " + std::to_string(expected) + ", tensor has " + std::to_string(found));
}

const at::Tensor& role_tensor(const Graph& g, const Node& n, const std::string& role) {
  auto it = n.params.find(role);
  if (it == n.params.end()) failure("has no '" + role + "' parameter");
  return g.param(it->second);
}

void expect_role(const Node& n, const std::string& role, bool present) {
  bool has = n.params.count(role) != 0;
  if (has != present) failure(std::string(present ? "misses" : "has an unexpected") + " '" + role + "' parameter");
}

}  // namespace compress::detail
