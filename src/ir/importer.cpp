// TorchScript module -> compress::Graph.
//
// Walks `forward` the way an inliner would: calls of leaf modules become typed
// leaf nodes; calls of other modules and functions are entered recursively;
// attribute reads become parameter references or constants; every other op is
// copied as a generic node. Conditions that are constant once module
// attributes are known (common in scripted code) are folded on the way;
// control flow that still depends on the input is refused.
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/operator.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "compress/error.h"
#include "compress/ir/import.h"
#include "compress/ir/leaf.h"
#include "leaves/names.h"

namespace compress {
namespace {

using torch::jit::Block;
using JitNode = torch::jit::Node;
using JitValue = torch::jit::Value;
namespace attr = c10::attr;
namespace aten = c10::aten;
namespace prim = c10::prim;

// What a TorchScript value stands for during the walk.
struct Binding {
  enum class Kind { Value, Constant, Param, Training, Module, Function };
  Kind kind = Kind::Constant;
  ValueId value = -1;
  c10::IValue constant;
  std::string name;  // parameter name or module path
  std::optional<torch::jit::Module> module;
  torch::jit::Function* function = nullptr;
};

std::string where(const JitNode* n) {
  std::string kind = n->kind().toQualString();
  std::string loc;
  auto src = n->sourceRange().file_line_col();
  if (src) {
    loc = " at " + std::get<0>(*src) + ":" + std::to_string(std::get<1>(*src));
  }
  return kind + loc;
}

std::string join_path(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

bool is_tensor_like(const c10::TypePtr& t) {
  if (t->kind() == c10::TypeKind::TensorType) return true;
  for (const auto& c : t->containedTypes())
    if (is_tensor_like(c)) return true;
  return false;
}

// Tensor types without the shapes a trace may have recorded: the graph is
// shape-agnostic, and the export annotates its inputs with these types.
c10::TypePtr plain_type(const c10::TypePtr& t) {
  return t->kind() == c10::TypeKind::TensorType ? c10::TensorType::get() : t;
}

class Importer {
 public:
  explicit Importer(const torch::jit::Module& root) : root_(root) {}

  Graph run() {
    // Parameters and buffers first, under their state_dict names. The graph
    // owns copies: nothing done to it (or to a module exported from it)
    // reaches back into the source module.
    torch::NoGradGuard no_grad;
    for (const auto& p : root_.named_parameters(true))
      graph_.add_param(p.name, p.value.detach().clone(at::MemoryFormat::Preserve), false);
    for (const auto& b : root_.named_buffers(true))
      graph_.add_param(b.name, b.value.detach().clone(at::MemoryFormat::Preserve), true);
    for (const auto& m : root_.named_modules()) graph_.module_types[m.name] = detail::unmangled_type_name(m.value.type());

    auto method = root_.find_method("forward");
    if (!method) bad_input("the model has no forward method");
    auto& fn = torch::jit::toGraphFunction(method->function());
    std::shared_ptr<torch::jit::Graph> g = fn.graph();

    read_saved_metadata();
    Binding self;
    self.kind = Binding::Kind::Module;
    self.module = root_;
    std::vector<Binding> args{self};
    std::vector<InputSpec> example;
    for (size_t i = 1; i < g->inputs().size(); ++i) {
      JitValue* in = g->inputs()[i];
      Binding b;
      b.kind = Binding::Kind::Value;
      std::string saved = saved_name(in);
      b.value = graph_.add_input(plain_type(in->type()), saved.empty() ? input_name(in, i) : saved);
      args.push_back(b);
      // A trace records its example input's shape and dtype: shape metadata
      // is then available without asking the user.
      if (auto t = in->type()->cast<c10::TensorType>()) {
        auto sizes = t->sizes().concrete_sizes();
        if (sizes && t->scalarType()) example.push_back(InputSpec{*sizes, *t->scalarType()});
      }
    }
    auto outs = walk_graph(*g, args, "");
    for (const Binding& b : outs) graph_.add_output(to_arg(b, nullptr));
    // What folded assertions and constant conditions left behind.
    graph_.eliminate_dead_code();
    if (example.size() != graph_.inputs().size() || example.empty()) example = saved_inputs_;
    if (example.size() == graph_.inputs().size() && !example.empty()) graph_.set_example_inputs(example);
    graph_.lint();
    return std::move(graph_);
  }

 private:
  using Env = std::unordered_map<const JitValue*, Binding>;

  std::vector<Binding> walk_graph(torch::jit::Graph& g, const std::vector<Binding>& args,
                                  const std::string& scope) {
    if (++depth_ > 200) bad_input("module calls nest too deeply (recursion?)");
    Env env;
    for (size_t i = 0; i < g.inputs().size(); ++i) {
      if (i >= args.size()) bad_input("call passes too few arguments to a graph");
      env[g.inputs()[i]] = args[i];
    }
    walk_block(g.block(), env, scope);
    std::vector<Binding> outs;
    for (JitValue* v : g.outputs()) outs.push_back(lookup(env, v));
    --depth_;
    return outs;
  }

  void walk_block(Block* block, Env& env, const std::string& scope) {
    for (JitNode* n : block->nodes()) walk_node(n, env, scope);
  }

  // The binding of a TorchScript value; a graph value that an in-place op
  // has since replaced reads as its newest version.
  Binding lookup(Env& env, const JitValue* v) {
    auto it = env.find(v);
    if (it == env.end()) failure("import: value %" + v->debugName() + " used before definition");
    Binding b = it->second;
    if (b.kind == Binding::Kind::Value) b.value = latest(b.value);
    return b;
  }

  ValueId latest(ValueId v) const {
    for (auto it = newer_.find(v); it != newer_.end(); it = newer_.find(v)) v = it->second;
    return v;
  }

  // A model this toolkit exported carries its value names, scopes and
  // example inputs as attributes of the root (its forward is flat).
  void read_saved_metadata() {
    auto dict = [&](const char* name, std::map<std::string, std::string>& out) {
      if (!root_.hasattr(name) || !root_.attr(name).isGenericDict()) return;
      for (const auto& kv : root_.attr(name).toGenericDict())
        if (kv.key().isString() && kv.value().isString()) out[kv.key().toStringRef()] = kv.value().toStringRef();
    };
    dict(detail::kValueNamesAttr, saved_names_);
    dict(detail::kScopesAttr, saved_scopes_);
    if (root_.hasattr(detail::kInputShapesAttr) && root_.hasattr(detail::kInputDtypesAttr)) {
      auto shapes = root_.attr(detail::kInputShapesAttr);
      auto dtypes = root_.attr(detail::kInputDtypesAttr);
      if (shapes.isList() && dtypes.isIntList() && shapes.toListRef().size() == dtypes.toIntList().size()) {
        for (size_t i = 0; i < shapes.toListRef().size(); ++i) {
          const auto& s = shapes.toListRef()[i];
          int64_t dtype = dtypes.toIntList().get(i);
          if (!s.isIntList() || dtype < 0 || dtype >= static_cast<int64_t>(at::ScalarType::NumOptions)) {
            saved_inputs_.clear();
            return;
          }
          saved_inputs_.push_back(InputSpec{s.toIntVector(), static_cast<at::ScalarType>(dtype)});
        }
      }
    }
  }

  // The saved name of a value of the root's forward ("" when there is none).
  std::string saved_name(const JitValue* v) const {
    if (depth_ > 1 || saved_names_.empty() || !v->hasDebugName()) return "";
    auto it = saved_names_.find(v->debugName().substr(0, v->debugName().find('.')));
    return it == saved_names_.end() ? "" : it->second;
  }
  std::string saved_scope(const JitValue* v, const std::string& scope) const {
    if (depth_ > 1 || saved_scopes_.empty() || !v->hasDebugName()) return scope;
    auto it = saved_scopes_.find(v->debugName().substr(0, v->debugName().find('.')));
    return it == saved_scopes_.end() ? scope : it->second;
  }

  // "x" for a traced input called "x.1"; "input_<i>" when it has no name.
  static std::string input_name(const JitValue* in, size_t i) {
    std::string name = in->hasDebugName() ? in->debugName() : "";
    auto dot = name.find('.');
    if (dot != std::string::npos) name = name.substr(0, dot);
    return name.empty() ? "input_" + std::to_string(i - 1) : name;
  }

  Binding constant(c10::IValue v) {
    Binding b;
    b.kind = Binding::Kind::Constant;
    b.constant = std::move(v);
    return b;
  }

  void walk_node(JitNode* n, Env& env, const std::string& scope) {
    auto kind = n->kind();
    if (kind == prim::Constant) {
      if (n->output()->type()->kind() == c10::TypeKind::FunctionType) {
        Binding b;
        b.kind = Binding::Kind::Function;
        b.function = n->output()->type()->expectRef<c10::FunctionType>().function();
        env[n->output()] = b;
      } else {
        env[n->output()] = constant(*torch::jit::toIValue(n->output()));
      }
      return;
    }
    if (kind == prim::GetAttr) return walk_get_attr(n, env);
    if (kind == prim::CallMethod) return walk_call_method(n, env, scope);
    if (kind == prim::CallFunction) return walk_call_function(n, env, scope);
    if (kind == prim::If) return walk_if(n, env, scope);
    if (kind == prim::Loop) {
      bad_input("control flow: " + where(n) + " (a loop) cannot be imported; trace the model with "
                "torch.jit.trace(model, example_input) so that loops are unrolled");
    }
    if (kind == prim::RaiseException) {
      bad_input("the model raises an exception at " + where(n) + " for every input");
    }
    if (kind == prim::unchecked_cast) {
      // Optional refinement: a Value keeps its id, the cast is emitted when typed differently.
      const Binding in = lookup(env, n->input(0));
      if (in.kind != Binding::Kind::Value) {
        env[n->output()] = in;
        return;
      }
    }
    if (fold_structural(n, env)) return;
    if (fold_constant(n, env)) return;
    emit_op(n, env, scope);
  }

  void walk_get_attr(JitNode* n, Env& env) {
    const Binding obj = lookup(env, n->input(0));
    const std::string name = n->s(attr::name);
    if (obj.kind != Binding::Kind::Module) {
      bad_input("unsupported attribute access '" + name + "' on a non-module value at " + where(n));
    }
    const torch::jit::Module& m = *obj.module;
    std::string path = join_path(obj.name, name);
    if (!m.hasattr(name)) bad_input("module '" + obj.name + "' has no attribute '" + name + "' (read at " + where(n) + ")");
    c10::IValue v = m.attr(name);
    Binding b;
    auto type = m.type();
    auto slot = type->findAttributeSlot(name);
    if (v.isModule()) {
      b.kind = Binding::Kind::Module;
      b.module = v.toModule();
      b.name = path;
    } else if (name == "training") {
      b.kind = Binding::Kind::Training;
    } else if (slot && (type->is_parameter(*slot) || type->is_buffer(*slot)) && v.isTensor()) {
      b.kind = Binding::Kind::Param;
      b.name = path;
    } else {
      b = constant(v);  // hyper-parameters, None, plain tensor attributes
    }
    env[n->output()] = b;
  }

  std::vector<Binding> call_args(JitNode* n, Env& env, size_t first) {
    std::vector<Binding> args;
    for (size_t i = first; i < n->inputs().size(); ++i) args.push_back(lookup(env, n->input(i)));
    return args;
  }

  void bind_outputs(JitNode* n, Env& env, const std::vector<Binding>& outs) {
    if (outs.size() != n->outputs().size()) failure("import: call at " + where(n) + " returns a different arity");
    for (size_t i = 0; i < outs.size(); ++i) env[n->output(i)] = outs[i];
  }

  void walk_call_method(JitNode* n, Env& env, const std::string& scope) {
    Binding self = lookup(env, n->input(0));
    if (self.kind != Binding::Kind::Module) bad_input("method call on a non-module value at " + where(n));
    const std::string method = n->s(attr::name);
    const torch::jit::Module& m = *self.module;
    if (method == "forward" && n->inputs().size() == 2 && n->outputs().size() == 1) {
      if (auto leaf = leaf_for(m, self.name)) {
        const Binding x = lookup(env, n->input(1));
        if (x.kind == Binding::Kind::Value || x.kind == Binding::Kind::Param) {
          std::map<std::string, std::string> params;
          for (const auto& role : leaf->roles) params[role] = join_path(self.name, role);
          Node* node = graph_.create_leaf(leaf->kind, self.name, leaf->attrs, std::move(params), to_arg(x, n),
                                          saved_scope(n->output(), scope), saved_name(n->output()));
          Binding b;
          b.kind = Binding::Kind::Value;
          b.value = node->output();
          env[n->output()] = b;
          return;
        }
      }
    }
    auto fn = m.find_method(method);
    if (!fn) bad_input("call of unknown method '" + method + "' at " + where(n));
    std::vector<Binding> args{self};
    auto rest = call_args(n, env, 1);
    args.insert(args.end(), rest.begin(), rest.end());
    bind_outputs(n, env, walk_graph(*torch::jit::toGraphFunction(fn->function()).graph(), args, self.name));
  }

  void walk_call_function(JitNode* n, Env& env, const std::string& scope) {
    const Binding f = lookup(env, n->input(0));
    if (f.kind != Binding::Kind::Function) bad_input("call of a non-function value at " + where(n));
    auto graph = torch::jit::toGraphFunction(*f.function).graph();
    bind_outputs(n, env, walk_graph(*graph, call_args(n, env, 1), scope));
  }

  // A branch that does nothing but raise: the shape scripted code gives `assert`.
  static bool only_raises(Block* b) {
    bool raises = false;
    for (JitNode* n : b->nodes()) {
      if (n->kind() == prim::RaiseException) raises = true;
      else if (n->kind() != prim::Constant && n->kind() != prim::Uninitialized && n->kind() != aten::format)
        return false;
    }
    return raises;
  }

  void walk_if(JitNode* n, Env& env, const std::string& scope) {
    const Binding cond = lookup(env, n->input(0));
    if (cond.kind != Binding::Kind::Constant && n->outputs().empty()) {
      // An assertion on the input (`assert cond` / `if not cond: raise`): the
      // graph keeps the path that does not raise; the check itself is dropped.
      for (int taken : {0, 1}) {
        if (only_raises(n->blocks().at(1 - taken)) && !only_raises(n->blocks().at(taken))) {
          walk_block(n->blocks().at(taken), env, scope);
          return;
        }
      }
    }
    if (cond.kind != Binding::Kind::Constant || !cond.constant.isBool()) {
      bad_input("control flow: " + where(n) +
                " (an `if` that depends on the input) cannot be imported; trace the model with "
                "torch.jit.trace(model, example_input) instead of torch.jit.script");
    }
    Block* taken = n->blocks().at(cond.constant.toBool() ? 0 : 1);
    walk_block(taken, env, scope);
    for (size_t i = 0; i < n->outputs().size(); ++i) env[n->output(i)] = lookup(env, taken->outputs()[i]);
  }

  // Tuples and lists built and taken apart within the walk (typically across a
  // module boundary) need no node: bind the elements through.
  bool fold_structural(JitNode* n, Env& env) {
    auto kind = n->kind();
    if (kind == prim::TupleConstruct || kind == prim::ListConstruct) {
      std::vector<Binding> elems;
      bool all_constant = true;
      for (JitValue* in : n->inputs()) {
        elems.push_back(lookup(env, in));
        all_constant &= elems.back().kind == Binding::Kind::Constant;
      }
      if (all_constant) {
        std::vector<c10::IValue> values;
        for (auto& e : elems) values.push_back(e.constant);
        if (kind == prim::TupleConstruct) {
          env[n->output()] = constant(c10::ivalue::Tuple::create(std::move(values)));
        } else {
          auto list_type = n->output()->type()->expect<c10::ListType>();
          c10::impl::GenericList list(list_type->getElementType());
          for (auto& v : values) list.push_back(v);
          env[n->output()] = constant(c10::IValue(list));
        }
        return true;
      }
      return false;
    }
    if (kind == prim::TupleUnpack || kind == prim::ListUnpack || kind == prim::TupleIndex) {
      const Binding in = lookup(env, n->input(0));
      if (in.kind == Binding::Kind::Constant) {
        std::vector<c10::IValue> elems;
        if (in.constant.isTuple()) elems = in.constant.toTupleRef().elements().vec();
        else if (in.constant.isList()) elems = in.constant.toListRef().vec();
        else return false;
        if (kind == prim::TupleIndex) {
          const Binding idx = lookup(env, n->input(1));
          if (idx.kind != Binding::Kind::Constant) return false;
          int64_t i = idx.constant.toInt();
          if (i < 0) i += static_cast<int64_t>(elems.size());
          env[n->output()] = constant(elems.at(i));
          return true;
        }
        if (elems.size() != n->outputs().size()) bad_input("unpacking of the wrong length at " + where(n));
        for (size_t i = 0; i < elems.size(); ++i) env[n->output(i)] = constant(elems[i]);
        return true;
      }
      auto it = packed_.find(in.value);
      if (in.kind != Binding::Kind::Value || it == packed_.end()) return false;
      const auto& elems = it->second;
      if (kind == prim::TupleIndex) {
        const Binding idx = lookup(env, n->input(1));
        if (idx.kind != Binding::Kind::Constant) return false;
        int64_t i = idx.constant.toInt();
        if (i < 0) i += static_cast<int64_t>(elems.size());
        env[n->output()] = elems.at(i);
        return true;
      }
      if (elems.size() != n->outputs().size()) return false;
      for (size_t i = 0; i < elems.size(); ++i) env[n->output(i)] = elems[i];
      return true;
    }
    return false;
  }

  // Evaluates ops whose inputs are all constants and whose results are not
  // tensors (shape arithmetic, comparisons on hyper-parameters).
  bool fold_constant(JitNode* n, Env& env) {
    const auto* schema = n->maybeSchema();
    if (!schema || schema->is_mutable() || n->outputs().empty()) return false;
    // prim ops are mostly graph plumbing; fold only the pure ones scripted code uses.
    static const c10::Symbol pure_prims[] = {prim::min, prim::max, prim::isinstance, prim::is_cuda,
                                             prim::device, prim::dtype};
    if (n->kind() == aten::warn) return false;
    if (n->kind().is_prim() &&
        std::find(std::begin(pure_prims), std::end(pure_prims), n->kind()) == std::end(pure_prims)) {
      return false;
    }
    for (JitValue* out : n->outputs())
      if (is_tensor_like(out->type())) return false;
    torch::jit::Stack stack;
    for (JitValue* in : n->inputs()) {
      const Binding b = lookup(env, in);
      if (b.kind != Binding::Kind::Constant) return false;
      stack.push_back(b.constant);
    }
    try {
      n->getOperation()(stack);
    } catch (const std::exception& e) {
      bad_input("evaluating " + where(n) + " on constants failed: " + first_line_of(e));
    }
    if (stack.size() != n->outputs().size()) return false;
    for (size_t i = 0; i < stack.size(); ++i) env[n->output(i)] = constant(stack[i]);
    return true;
  }

  Arg to_arg(const Binding& b, const JitNode* n) {
    switch (b.kind) {
      case Binding::Kind::Value: return Arg::of_value(b.value);
      case Binding::Kind::Constant: return Arg::of_constant(b.constant);
      case Binding::Kind::Param: return Arg::of_param(b.name);
      case Binding::Kind::Training: return Arg::training();
      case Binding::Kind::Module:
        bad_input("a module object is used as a value" + (n ? " at " + where(n) : std::string()) +
                  "; only tensors, numbers and lists can flow between ops");
      case Binding::Kind::Function:
        bad_input("a function object is used as a value" + (n ? " at " + where(n) : std::string()));
    }
    failure("unreachable");
  }

  static bool is_dropout(c10::Symbol k) {
    return k == aten::dropout || k == aten::dropout_ || k == aten::feature_dropout ||
           k == aten::feature_dropout_ || k == aten::alpha_dropout || k == aten::alpha_dropout_ ||
           k == aten::feature_alpha_dropout || k == aten::feature_alpha_dropout_;
  }

  void emit_op(JitNode* n, Env& env, const std::string& scope) {
    auto kind = n->kind();
    static const c10::Symbol structural[] = {prim::ListConstruct, prim::TupleConstruct, prim::ListUnpack,
                                             prim::TupleUnpack, prim::TupleIndex, prim::unchecked_cast};
    bool is_structural = std::find(std::begin(structural), std::end(structural), kind) != std::end(structural);
    const auto* jit_schema = n->maybeSchema();
    if (!jit_schema && !is_structural) {
      bad_input("unsupported node " + where(n) + ": it has no operator schema the toolkit can carry through");
    }
    std::shared_ptr<c10::FunctionSchema> schema;
    if (jit_schema) schema = std::make_shared<c10::FunctionSchema>(*jit_schema);
    std::vector<Arg> inputs;
    for (JitValue* in : n->inputs()) inputs.push_back(to_arg(lookup(env, in), n));
    // In-place ops (relu_, add_, hardtanh_, ...) become their functional
    // forms, so that every graph value is one tensor at one point in time:
    // later readers of the mutated value read the op's result instead.
    ValueId mutated = -1;
    if (schema && is_in_place(*schema) && !inputs.empty() && inputs[0].is_value() && may_functionalize(inputs[0].value)) {
      if (auto functional = functional_schema(*schema)) {
        mutated = inputs[0].value;
        kind = c10::Symbol::fromQualString(functional->name());
        schema = functional;
      }
    }
    // Dropout traced in eval mode carries a constant `train=False`: make it
    // follow the module's training flag, as nn.Dropout would.
    if (is_dropout(kind) && inputs.size() == 3) inputs[2] = Arg::training();

    std::vector<c10::TypePtr> types;
    for (JitValue* out : n->outputs()) types.push_back(plain_type(out->type()));
    Node* node = graph_.create_raw_op(kind, schema, std::move(inputs), types, saved_scope(n->output(0), scope),
                                      n->outputs().size() == 1 ? saved_name(n->output(0)) : "");
    std::vector<Binding> outs;
    for (size_t i = 0; i < n->outputs().size(); ++i) {
      Binding b;
      b.kind = Binding::Kind::Value;
      b.value = node->output(i);
      env[n->output(i)] = b;
    }
    if (mutated >= 0) newer_[mutated] = node->output(0);
    if (kind == prim::TupleConstruct || kind == prim::ListConstruct) {
      std::vector<Binding> elems;
      for (JitValue* in : n->inputs()) elems.push_back(lookup(env, in));
      packed_[node->output(0)] = std::move(elems);
    }
  }

  // An aten op that writes its first operand and returns it (`relu_`, `add_.Tensor`).
  static bool is_in_place(const c10::FunctionSchema& s) {
    const std::string& name = s.name();
    if (name.rfind("aten::", 0) != 0 || name.size() < 2 || name.back() != '_' || name[name.size() - 2] == '_') return false;
    if (s.arguments().empty() || s.returns().size() != 1) return false;
    const auto* alias = s.arguments()[0].alias_info();
    return alias && alias->isWrite();
  }

  // The same operator without the trailing underscore and with the same
  // operands (aliasing aside), when the registry has one.
  static std::shared_ptr<c10::FunctionSchema> functional_schema(const c10::FunctionSchema& s) {
    std::string name = s.name().substr(0, s.name().size() - 1);
    for (const auto& op : torch::jit::getAllOperatorsFor(c10::Symbol::fromQualString(name))) {
      const auto& f = op->schema();
      if (f.overload_name() != s.overload_name() || f.arguments().size() != s.arguments().size() || f.is_mutable())
        continue;
      bool same = true;
      for (size_t i = 0; i < f.arguments().size(); ++i)
        same &= f.arguments()[i].type()->str() == s.arguments()[i].type()->str() &&
                f.arguments()[i].name() == s.arguments()[i].name();
      if (same) return std::make_shared<c10::FunctionSchema>(f);
    }
    return nullptr;
  }

  // Whether the mutation of `v` can be replaced by a new value: only when no
  // other tensor may share its memory — it is no graph input (the caller
  // would see the write), not itself a view of another tensor, and no view
  // of it has been taken (those would see the write too).
  bool may_functionalize(ValueId v) const {
    Node* producer = graph_.producer(v);
    if (!producer || is_view(*producer)) return false;
    for (Node* user : graph_.users(v))
      if (is_view(*user)) return false;
    return true;
  }

  // Results may alias an operand: a schema return annotated `Tensor(a)`, or
  // plumbing that hands out list elements.
  static bool is_view(const Node& n) {
    if (n.is_leaf()) return false;
    if (!n.schema) return true;  // list/tuple plumbing: elements may be views
    for (const auto& r : n.schema->returns())
      if (r.alias_info() || (r.type()->kind() == c10::TypeKind::ListType)) return true;
    return false;
  }

  std::optional<RecognizedLeaf> leaf_for(const torch::jit::Module& m, const std::string& path) {
    auto it = leaf_cache_.find(path);
    if (it != leaf_cache_.end()) return it->second;
    auto leaf = recognize_leaf(m);
    leaf_cache_[path] = leaf;
    return leaf;
  }

  const torch::jit::Module& root_;
  Graph graph_;
  int depth_ = 0;
  std::unordered_map<ValueId, std::vector<Binding>> packed_;
  std::map<std::string, std::string> saved_names_, saved_scopes_;
  std::vector<InputSpec> saved_inputs_;
  // Value -> the value an in-place op replaced it by (functionalised).
  std::unordered_map<ValueId, ValueId> newer_;
  std::map<std::string, std::optional<RecognizedLeaf>> leaf_cache_;
};

}  // namespace

Graph import_module(const torch::jit::Module& module) {
  try {
    return Importer(module).run();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    bad_input("cannot import the model: " + first_line_of(e));
  }
}

}  // namespace compress
