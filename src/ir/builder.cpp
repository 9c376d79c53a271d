#include "compress/ir/builder.h"

#include <sstream>

#include <torch/csrc/jit/runtime/operator.h>

#include "compress/error.h"

namespace compress {
namespace {

// TorchScript converts an int to a float argument implicitly; so do we.
bool accepts(const c10::TypePtr& formal, const Graph& g, Arg& a, std::string& why) {
  using namespace c10;
  TypePtr want = formal;
  if (auto opt = formal->cast<OptionalType>()) {
    if (a.kind == Arg::Kind::Constant && a.constant.isNone()) return true;
    want = opt->getElementType();
  }
  TypePtr have;
  switch (a.kind) {
    case Arg::Kind::Value: have = g.value(a.value).type; break;
    case Arg::Kind::Param: have = TensorType::get(); break;
    case Arg::Kind::Training: have = BoolType::get(); break;
    case Arg::Kind::Constant:
      if (want->kind() == TypeKind::FloatType && a.constant.isInt()) {
        a.constant = static_cast<double>(a.constant.toInt());
        return true;
      }
      have = a.constant.type();
      break;
  }
  if (have->isSubtypeOf(*want)) return true;
  // A list constant of one element type is typed by its contents.
  if (want->kind() == TypeKind::ListType && a.kind == Arg::Kind::Constant && a.constant.isList() &&
      a.constant.toListRef().empty())
    return true;
  why = "expected " + want->repr_str() + ", got " + have->repr_str();
  return false;
}

// Operands that fit the schema, completed with its defaults; nullopt and a
// reason otherwise.
std::optional<std::vector<Arg>> fit(const c10::FunctionSchema& s, const Graph& g, std::vector<Arg> args,
                                    std::string& why) {
  const auto& formals = s.arguments();
  if (s.is_vararg()) return args;
  if (args.size() > formals.size()) {
    why = "takes at most " + std::to_string(formals.size()) + " operands, got " + std::to_string(args.size());
    return std::nullopt;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string w;
    if (!accepts(formals[i].type(), g, args[i], w)) {
      why = "operand " + std::to_string(i) + " (" + formals[i].name() + "): " + w;
      return std::nullopt;
    }
  }
  for (size_t i = args.size(); i < formals.size(); ++i) {
    if (!formals[i].default_value()) {
      why = "operand " + std::to_string(i) + " (" + formals[i].name() + ") is missing and has no default";
      return std::nullopt;
    }
    args.push_back(Arg::of_constant(*formals[i].default_value()));
  }
  return args;
}

struct Resolved {
  std::shared_ptr<c10::FunctionSchema> schema;
  std::vector<Arg> args;
};

Resolved resolve(const Graph& g, const std::string& op, const std::vector<Arg>& args) {
  std::string name = op, overload;
  auto dot = op.find('.', op.find("::") == std::string::npos ? 0 : op.find("::"));
  if (dot != std::string::npos) {
    name = op.substr(0, dot);
    overload = op.substr(dot + 1);
  }
  if (name.find("::") == std::string::npos) failure("create_op: '" + op + "' needs a namespace (aten::, compress::, prim::)");
  auto candidates = torch::jit::getAllOperatorsFor(c10::Symbol::fromQualString(name));
  if (candidates.empty()) failure("create_op: no operator '" + name + "' is registered");
  std::ostringstream reasons;
  // Functional overloads first: a pass never wants an in-place one by accident.
  for (bool want_mutable : {false, true}) {
    for (const auto& cand : candidates) {
      const auto& s = cand->schema();
      if (s.is_mutable() != want_mutable) continue;
      if (dot != std::string::npos && s.overload_name() != overload) continue;
      std::string why;
      if (auto fitted = fit(s, g, args, why)) return Resolved{std::make_shared<c10::FunctionSchema>(s), *fitted};
      reasons << "\n  " << s << ": " << why;
    }
  }
  failure("create_op: no overload of " + op + " accepts these operands:" + reasons.str());
}

}  // namespace

std::shared_ptr<c10::FunctionSchema> resolve_schema(const Graph& g, const std::string& op, const std::vector<Arg>& args) {
  return resolve(g, op, args).schema;
}

Node* create_op(Graph& g, const std::string& op, std::vector<Arg> args, const OpOptions& options) {
  Resolved r = resolve(g, op, args);
  std::vector<c10::TypePtr> types;
  for (const auto& ret : r.schema->returns()) {
    c10::TypePtr t = ret.type();
    types.push_back(t->kind() == c10::TypeKind::TensorType ? c10::TensorType::get() : t);
  }
  std::string scope;
  if (options.scope) {
    scope = *options.scope;
  } else {
    Node* before = g.insert_point().before;
    Node* anchor = before ? before->prev() : g.last_node();
    if (anchor) scope = anchor->scope;
  }
  return g.create_raw_op(c10::Symbol::fromQualString(r.schema->name()), r.schema, std::move(r.args), types, scope,
                         options.name);
}

ValueId add_op(Graph& g, const std::string& op, std::vector<Arg> args, const OpOptions& options) {
  Node* n = create_op(g, op, std::move(args), options);
  if (n->outputs().size() != 1)
    failure("add_op: " + op + " returns " + std::to_string(n->outputs().size()) + " values; use create_op");
  return n->output();
}

}  // namespace compress
