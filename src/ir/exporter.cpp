// compress::Graph -> TorchScript module, by generating TorchScript source and
// compiling it with Module::define. See docs/ir.md.
#include <cctype>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>


#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/ir/leaf.h"
#include "compress/ops/script.h"
#include "leaves/common.h"
#include "leaves/names.h"

namespace compress {
namespace {

bool is_identifier(const std::string& s) {
  static const std::set<std::string> keywords = {
      "False", "None", "True", "and", "as", "assert", "break", "class", "continue", "def", "del", "elif",
      "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
      "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "print"};
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return !keywords.count(s);
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  if (path.empty()) return parts;
  std::string cur;
  for (char c : path) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

// `self.layer1` / `getattr(self.layer1, "0")` for attribute names that are no identifiers.
std::string access(const std::string& base, const std::string& path) {
  std::string expr = base;
  for (const auto& part : split_path(path)) {
    if (is_identifier(part)) {
      expr += "." + part;
    } else {
      expr = "getattr(" + expr + ", \"" + part + "\")";
    }
  }
  return expr;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default: out += c;
    }
  }
  return out + "\"";
}

// ("a.b", "c") for "a.b.c"; ("", "c") for "c".
std::pair<std::string, std::string> split_last(const std::string& name) {
  auto dot = name.rfind('.');
  if (dot == std::string::npos) return {"", name};
  return {name.substr(0, dot), name.substr(dot + 1)};
}

class SourceWriter {
 public:
  SourceWriter(const Graph& graph, torch::jit::Module* root) : graph_(graph), root_(root) {}

  // `forward` (or `record_values`, which returns every tensor the graph
  // computes). With taps, forward returns (outputs..., taps...) as a tuple.
  std::string forward(const std::string& name, bool record, const std::vector<ValueId>& taps = {}) {
    std::ostringstream s;
    s << "def " << name << "(self";
    for (ValueId v : graph_.inputs()) s << ", " << var(v) << ": " << graph_.value(v).type->annotation_str();
    s << ")";
    if (record) s << " -> List[Tensor]";
    s << ":\n";
    if (record) s << "    _recorded = annotate(List[Tensor], [])\n";
    module_vars_.clear();
    for (const Node& n : graph_.nodes()) {
      std::string line = statement(n);
      for (const std::string& binding : bindings_) s << "    " << binding << "\n";
      bindings_.clear();
      s << "    " << line << "\n";
      if (record) {
        for (ValueId v : n.outputs())
          if (graph_.value(v).is_tensor()) s << "    _recorded.append(" << var(v) << ")\n";
      }
    }
    std::vector<std::string> results;
    for (const Arg& a : graph_.outputs()) results.push_back(expr(a));
    for (ValueId v : taps) results.push_back(var(v));
    if (record) {
      s << "    return _recorded\n";
    } else if (results.size() == 1) {
      s << "    return " << results[0] << "\n";
    } else {
      s << "    return (";
      for (size_t i = 0; i < results.size(); ++i) s << (i ? ", " : "") << results[i];
      s << ")\n";
    }
    return s.str();
  }

 private:
  static std::string var(ValueId v) { return "x" + std::to_string(v); }

  std::string expr(const Arg& a) {
    switch (a.kind) {
      case Arg::Kind::Value: return var(a.value);
      case Arg::Kind::Param: return param_access(a.param);
      case Arg::Kind::Training: return "self.training";
      case Arg::Kind::Constant: return literal(a.constant);
    }
    return "?";
  }

  // A parameter read through a local bound to its module at first use: a
  // quantized layer's three buffers are then one attribute chain in the
  // saved code and its debug records, not three (mobilenet_v2's forward
  // code halves).
  std::string param_access(const std::string& path) {
    auto [owner, attr] = split_last(path);
    if (owner.empty()) return access("self", path);
    auto it = module_vars_.find(owner);
    if (it == module_vars_.end()) {
      std::string local = "_m" + std::to_string(module_vars_.size());
      bindings_.push_back(local + " = " + access("self", owner));
      it = module_vars_.emplace(owner, local).first;
    }
    return access(it->second, attr);
  }

  std::string literal(const c10::IValue& v) {
    if (v.isNone()) return "None";
    if (v.isBool()) return v.toBool() ? "True" : "False";
    if (v.isInt()) {
      int64_t i = v.toInt();
      if (i == std::numeric_limits<int64_t>::min()) return "(-9223372036854775807 - 1)";
      return std::to_string(i);
    }
    if (v.isDouble()) return detail::float_literal(v.toDouble());
    if (v.isString()) return quote(v.toStringRef());
    if (v.isDevice()) return "torch.device(" + quote(v.toDevice().str()) + ")";
    if (v.isTensor()) return tensor_constant(v.toTensor());
    if (v.isTuple()) {
      const auto& elems = v.toTupleRef().elements();
      std::string s = "(";
      for (size_t i = 0; i < elems.size(); ++i) s += (i ? ", " : "") + literal(elems[i]);
      return s + (elems.size() == 1 ? ",)" : ")");
    }
    if (v.isList()) {
      auto list = v.toList();
      std::string s = "annotate(" + v.type()->annotation_str() + ", [";
      for (size_t i = 0; i < list.size(); ++i) s += (i ? ", " : "") + literal(list.get(i));
      return s + "])";
    }
    failure("export: cannot write a constant of type " + v.type()->repr_str() + " as TorchScript");
  }

  // Tensor constants (traced graphs embed some) live as plain attributes of
  // the root module: they load and save with it but are not in its state_dict.
  std::string tensor_constant(const at::Tensor& t) {
    auto it = constants_.find(t.unsafeGetTensorImpl());
    if (it != constants_.end()) return it->second;
    std::string name = "_compress_constant" + std::to_string(constants_.size());
    if (root_) root_->register_attribute(name, c10::TensorType::get(), t);
    return constants_[t.unsafeGetTensorImpl()] = "self." + name;
  }

  std::string outputs_lhs(const Node& n) {
    std::string s;
    for (size_t i = 0; i < n.outputs().size(); ++i) s += (i ? ", " : "") + var(n.output(i));
    return s;
  }

  std::string statement(const Node& n) {
    if (n.is_leaf()) {
      return var(n.output(0)) + " = " + access("self", n.module) + ".forward(" + expr(n.input(0)) + ")";
    }
    auto k = n.op;
    std::vector<std::string> args;
    for (const Arg& a : n.inputs()) args.push_back(expr(a));
    auto joined = [&](size_t from = 0) {
      std::string s;
      for (size_t i = from; i < args.size(); ++i) s += (i > from ? ", " : "") + args[i];
      return s;
    };
    if (k == c10::prim::ListConstruct) {
      return var(n.output(0)) + " = annotate(" + graph_.value(n.output(0)).type->annotation_str() + ", [" +
             joined() + "])";
    }
    if (k == c10::prim::TupleConstruct) {
      return var(n.output(0)) + " = (" + joined() + (args.size() == 1 ? ",)" : ")");
    }
    if (k == c10::prim::ListUnpack || k == c10::prim::TupleUnpack) return outputs_lhs(n) + ", = " + args.at(0);
    if (k == c10::prim::TupleIndex) return var(n.output(0)) + " = " + args.at(0) + "[" + args.at(1) + "]";
    if (k == c10::prim::unchecked_cast) {
      return var(n.output(0)) + " = unchecked_cast(" + graph_.value(n.output(0)).type->annotation_str() + ", " +
             args.at(0) + ")";
    }
    if (!n.schema) failure("export: node " + n.op_name() + " has no schema");
    std::string ns = k.ns().toUnqualString();
    std::string callee = ns == "aten" ? "torch." + std::string(k.toUnqualString())
                                      : "ops." + ns + "." + k.toUnqualString();
    std::string call = callee + "(";
    const auto& formals = n.schema->arguments();
    for (size_t i = 0; i < args.size(); ++i) {
      if (i) call += ", ";
      if (!n.schema->is_vararg() && i < formals.size() && formals[i].kwarg_only()) call += formals[i].name() + "=";
      call += args[i];
    }
    call += ")";
    if (n.outputs().empty()) return call;
    return outputs_lhs(n) + (n.outputs().size() > 1 ? ", = " : " = ") + call;
  }

  const Graph& graph_;
  torch::jit::Module* root_;
  std::unordered_map<const void*, std::string> constants_;
  std::map<std::string, std::string> module_vars_;  // module path -> local bound in this method
  std::vector<std::string> bindings_;                // locals the next statement needs first
};

// The module tree, built in two steps. First a draft: every module path gets
// a module of its own type with its parameters and attributes (`get`, then
// register_*). Then `share_types` rebuilds it so that modules with the same
// class name, slots and forward share one TorchScript class: a saved archive
// holds one code file and one debug record per class, each about 400 bytes
// with its zip entry even for a class of three buffers, and an exporter
// making a class per instance wrote 53 classes for the zoo's INT8
// mobilenetv2 where 9 differ.
struct Hierarchy {
  std::shared_ptr<torch::jit::CompilationUnit> draft_cu = std::make_shared<torch::jit::CompilationUnit>();
  std::map<std::string, torch::jit::Module> modules;  // path -> draft module ("" is the root)
  std::map<std::string, std::string> type_names;      // path -> class name asked for (unmangled)
  std::map<std::string, std::string> sources;         // path -> forward source of a leaf

  torch::jit::Module& get(const Graph& graph, const std::string& path, const std::string& leaf_type = "") {
    auto it = modules.find(path);
    if (it != modules.end()) return it->second;
    std::string type_name = "__torch__.compress.Module";
    auto known = graph.module_types.find(path);
    if (known != graph.module_types.end()) {
      type_name = known->second;
    } else if (!leaf_type.empty()) {
      type_name = leaf_type;
    }
    torch::jit::Module m(c10::QualifiedName(type_name), draft_cu, /*shouldMangle=*/true);
    m.register_attribute("training", c10::BoolType::get(), false);
    if (!path.empty()) {
      auto [parent, name] = split_last(path);
      get(graph, parent).register_module(name, m);
    }
    type_names[path] = type_name;
    return modules.emplace(path, m).first->second;
  }

  // The final tree: the root gets a class of its own (its forward is defined
  // later); any other module reuses the class of an earlier one with the same
  // signature: class name, each slot's name, kind and type (a submodule's by
  // its final class) in order, and forward source.
  torch::jit::Module share_types(const torch::jit::ResolverPtr& resolver) {
    auto cu = std::make_shared<torch::jit::CompilationUnit>();
    std::map<std::string, c10::ClassTypePtr> classes;  // signature -> class
    return build("", cu, classes, resolver);
  }

 private:
  struct Slot {
    std::string name;
    c10::TypePtr type;
    c10::IValue value;
    bool is_module, is_parameter, is_buffer;
  };

  torch::jit::Module build(const std::string& path, const std::shared_ptr<torch::jit::CompilationUnit>& cu,
                           std::map<std::string, c10::ClassTypePtr>& classes, const torch::jit::ResolverPtr& resolver) {
    const torch::jit::Module& draft = modules.at(path);
    const c10::ClassTypePtr& draft_type = draft.type();
    const auto source = sources.find(path);
    std::string signature = type_names.at(path) + "\n" + (source == sources.end() ? "" : source->second);
    std::vector<Slot> slots;
    for (size_t i = 0; i < draft_type->numAttributes(); ++i) {
      Slot slot{draft_type->getAttributeName(i), draft_type->getAttribute(i), draft._ivalue()->getSlot(i),
                false, draft_type->is_parameter(i), draft_type->is_buffer(i)};
      if (slot.type->cast<c10::ClassType>()) {
        torch::jit::Module child = build(path.empty() ? slot.name : path + "." + slot.name, cu, classes, resolver);
        slot = Slot{slot.name, child.type(), child._ivalue(), true, false, false};
      }
      signature += "\n" + slot.name + (slot.is_parameter ? " parameter " : slot.is_buffer ? " buffer " : " ") +
                   slot.type->annotation_str();
      slots.push_back(std::move(slot));
    }
    auto shared = path.empty() ? classes.end() : classes.find(signature);
    if (shared != classes.end()) {
      torch::jit::Module m(cu, shared->second);
      for (size_t i = 0; i < slots.size(); ++i) m._ivalue()->setSlot(i, slots[i].value);
      return m;
    }
    torch::jit::Module m(c10::QualifiedName(type_names.at(path)), cu, /*shouldMangle=*/true);
    for (const Slot& slot : slots) {
      if (slot.is_module) {
        m.register_module(slot.name, torch::jit::Module(slot.value.toObject()));
      } else if (slot.is_parameter || slot.is_buffer) {
        m.register_parameter(slot.name, slot.value.toTensor(), slot.is_buffer);
      } else {
        m.register_attribute(slot.name, slot.type, slot.value);
      }
    }
    if (source != sources.end()) m.define(source->second, resolver);
    if (!path.empty()) classes.emplace(signature, m.type());
    return m;
  }
};

}  // namespace

namespace {

// What a later import cannot see in the generated code: each value's name
// and scope (the root forward is flat), and the example inputs. Plain
// attributes of the root; the model runs without them.
void record_metadata(const Graph& graph, torch::jit::Module& root) {
  c10::Dict<std::string, std::string> names, scopes;
  for (ValueId v : graph.inputs()) names.insert("x" + std::to_string(v), graph.name_of(v));
  for (const Node& n : graph.nodes()) {
    for (ValueId v : n.outputs()) {
      names.insert("x" + std::to_string(v), graph.name_of(v));
      if (!n.scope.empty()) scopes.insert("x" + std::to_string(v), n.scope);
    }
  }
  root.register_attribute(detail::kValueNamesAttr, c10::DictType::create(c10::StringType::get(), c10::StringType::get()), names);
  root.register_attribute(detail::kScopesAttr, c10::DictType::create(c10::StringType::get(), c10::StringType::get()), scopes);
  if (!graph.example_inputs().empty()) {
    c10::List<std::vector<int64_t>> shapes;
    c10::List<int64_t> dtypes;
    for (const InputSpec& in : graph.example_inputs()) {
      shapes.push_back(in.shape);
      dtypes.push_back(static_cast<int64_t>(in.dtype));
    }
    root.register_attribute(detail::kInputShapesAttr, c10::ListType::create(c10::ListType::ofInts()), shapes);
    root.register_attribute(detail::kInputDtypesAttr, c10::ListType::ofInts(), dtypes);
  }
}

std::vector<ValueId> tap_values(const Graph& graph, const ExportOptions& options) {
  std::vector<ValueId> taps;
  for (const std::string& name : options.taps) {
    ValueId v = graph.value_named(name, "tap");
    if (!graph.value(v).is_tensor()) bad_input("tap '" + name + "' is not a tensor value");
    taps.push_back(v);
  }
  return taps;
}

}  // namespace

void update_from_module(Graph& graph, const torch::jit::Module& module) {
  torch::NoGradGuard no_grad;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    if (graph.has_param(p.name)) graph.set_param(p.name, p.value.detach().clone());
  for (const auto& b : module.named_buffers(/*recurse=*/true))
    if (graph.has_param(b.name)) graph.set_param(b.name, b.value.detach().clone());
}

std::string export_source(const Graph& graph, const ExportOptions& options) {
  SourceWriter writer(graph, nullptr);
  std::string src = writer.forward("forward", false, tap_values(graph, options));
  if (options.record_values) src += "\n" + writer.forward("record_values", true);
  return src;
}

torch::jit::Module export_module(const Graph& graph, const ExportOptions& options) {
  graph.lint();
  std::vector<ValueId> taps = tap_values(graph, options);
  Hierarchy h;
  h.get(graph, "");
  torch::jit::Module root;
  auto resolver = ops::script_resolver();
  try {
    // Leaf modules first, so their parameters sit under their own names.
    std::vector<const Node*> leaves;  // the first call of each leaf module
    for (const Node& n : graph.nodes()) {
      if (!n.is_leaf()) continue;
      std::string src = leaf_info(n.leaf).source(n);
      auto done = h.sources.find(n.module);
      if (done != h.sources.end()) {
        if (done->second != src)
          failure("export: module '" + n.module + "' is called as two different " + n.op_name() + " leaves");
        continue;
      }
      h.sources[n.module] = src;
      leaves.push_back(&n);
      h.get(graph, n.module, detail::default_leaf_type_name(n.leaf));
      for (const auto& role : n.params) {
        if (role.second != (n.module.empty() ? role.first : n.module + "." + role.first))
          failure("export: parameter '" + role.second + "' of " + n.op_name() + " '" + n.module +
                  "' is not named after its module");
      }
    }
    // The module gets its own copies: training it never changes the graph,
    // nor another module exported from the same graph.
    torch::NoGradGuard no_grad;
    for (const auto& name : graph.param_order) {
      auto [owner, attr] = split_last(name);
      const StoredTensor& st = graph.params.at(name);
      at::Tensor copy = st.tensor.detach().clone(at::MemoryFormat::Preserve);
      h.get(graph, owner).register_parameter(attr, copy, st.is_buffer);
    }
    // Then their attributes, after the parameters (the slot order their class records).
    for (const Node* n : leaves) {
      const LeafInfo& info = leaf_info(n->leaf);
      if (!info.attributes) continue;
      torch::jit::Module& m = h.modules.at(n->module);
      for (const auto& kv : info.attributes(*n)) m.register_attribute(kv.first, kv.second.type(), kv.second);
    }
    root = h.share_types(resolver);
    SourceWriter writer(graph, &root);
    std::string src = writer.forward("forward", false, taps);
    if (options.record_values) src += "\n" + writer.forward("record_values", true);
    root.define(src, resolver);
    record_metadata(graph, root);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    failure("export: generated TorchScript does not compile: " + first_line_of(e));
  }
  root.eval();
  return root;
}

}  // namespace compress
