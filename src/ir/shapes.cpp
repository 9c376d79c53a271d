// Shape metadata: the shape and dtype of every tensor value of a graph for
// its example inputs, and the value of every size and list of sizes.
//
// Each op node runs once, through the operator registry, on zero-filled
// stand-ins of its operands' shapes; each leaf (where the big compute is)
// applies its shape rule instead of running. Tensors of more than a few
// elements are remembered as zero-strided views (no memory), small ones
// (sizes turned into tensors by traced graphs) by value. A node whose
// operands, attributes and parameter shapes are unchanged keeps its results,
// so asking again after a local edit costs little.
//
// An op the fast path cannot run (one that needs its TorchScript node to be
// built) sends the whole graph to the slow path: export it with
// `record_values` and run it once on zeros.
#include <sstream>

#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/runtime/operator.h>

#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/ir/leaf.h"
#include "leaves/common.h"

namespace compress {

namespace {

constexpr int64_t kKeepByValue = 64;  // tensors this small keep their values (sizes, scalars)

bool is_prim(c10::Symbol s) { return std::string(s.ns().toUnqualString()) == "prim"; }

// Prim ops that are plain operations (no per-node set-up) and safe to run.
bool runnable_prim(c10::Symbol s) {
  static const c10::Symbol ok[] = {c10::prim::NumToTensor, c10::prim::device, c10::prim::dtype, c10::prim::min,
                                   c10::prim::max, c10::prim::layout, c10::prim::is_cuda};
  return std::find(std::begin(ok), std::end(ok), s) != std::end(ok);
}

// The IValue with every tensor in it replaced by fn(tensor).
template <typename F>
c10::IValue map_tensors(const c10::IValue& v, const F& fn) {
  if (v.isTensor()) return v.toTensor().defined() ? c10::IValue(fn(v.toTensor())) : v;
  if (v.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : v.toTensorList()) out.push_back(fn(t));
    return out;
  }
  if (v.isList()) {
    auto list = v.toList();
    c10::impl::GenericList out(list.elementType());
    for (size_t i = 0; i < list.size(); ++i) out.push_back(map_tensors(list.get(i), fn));
    return out;
  }
  if (v.isTuple()) {
    std::vector<c10::IValue> elems;
    for (const auto& e : v.toTupleRef().elements()) elems.push_back(map_tensors(e, fn));
    return c10::ivalue::Tuple::create(std::move(elems));
  }
  return v;
}

// What a computed IValue is remembered as: small tensors by value, others
// as zero-strided zeros of their shape (no memory).
c10::IValue skeleton(const c10::IValue& v) {
  return map_tensors(v, [](const at::Tensor& t) {
    if (t.numel() <= kKeepByValue) return t.detach().clone();
    return at::zeros({}, t.options().requires_grad(false)).expand(t.sizes());
  });
}

// Real (writable, contiguous) tensors from a skeleton.
c10::IValue materialise(const c10::IValue& v) {
  return map_tensors(v, [](const at::Tensor& t) { return t.contiguous(); });
}

std::string describe_ivalue(const c10::IValue& v) {
  std::ostringstream os;
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (!t.defined()) return "undef";
    os << "T" << t.sizes() << c10::toString(t.scalar_type());
    if (t.numel() <= kKeepByValue && !t.is_meta()) {
      // Small tensors carry values that may decide shapes downstream.
      at::Tensor flat = t.detach().reshape({-1}).to(at::kDouble);
      for (int64_t i = 0; i < flat.numel(); ++i) os << "," << flat[i].item<double>();
    }
    return os.str();
  }
  if (v.isTensorList()) {
    os << "[";
    for (const at::Tensor& t : v.toTensorList()) os << describe_ivalue(t) << ";";
    return os.str() + "]";
  }
  if (v.isList()) {
    auto list = v.toList();
    os << "[";
    for (size_t i = 0; i < list.size(); ++i) os << describe_ivalue(list.get(i)) << ";";
    return os.str() + "]";
  }
  if (v.isTuple()) {
    os << "(";
    for (const auto& e : v.toTupleRef().elements()) os << describe_ivalue(e) << ";";
    return os.str() + ")";
  }
  os << v;
  return os.str();
}

}  // namespace

// Friend of Graph: reads and fills its metadata.
struct ShapeEngine {
  const Graph& g;

  c10::IValue operand(const Arg& a) const {
    switch (a.kind) {
      case Arg::Kind::Value: {
        const auto& m = g.meta_.at(a.value);
        if (!m.known) failure("shapes: " + g.describe_value(a.value) + " has no shape yet");
        return m.constant;
      }
      case Arg::Kind::Constant: return a.constant;
      case Arg::Kind::Param: return g.param(a.param);
      case Arg::Kind::Training: return false;  // shapes are those of eval mode
    }
    return {};
  }

  std::string key(const Node& n) const {
    std::ostringstream os;
    if (n.is_leaf()) {
      os << "leaf " << leaf_info(n.leaf).source(n);
      for (const auto& kv : n.params) os << kv.first << "=" << g.param(kv.second).sizes() << ";";
    } else {
      os << n.op.toQualString() << (n.schema ? "." + n.schema->overload_name() : "");
    }
    for (const Arg& a : n.inputs()) {
      os << "|";
      if (a.is_value()) {
        os << "v" << a.value << ":" << describe_ivalue(g.meta_.at(a.value).constant);
      } else if (a.kind == Arg::Kind::Param) {
        os << "p" << a.param << g.param(a.param).sizes();
      } else if (a.kind == Arg::Kind::Training) {
        os << "training";
      } else {
        os << describe_ivalue(a.constant);
      }
    }
    return os.str();
  }

  void set(ValueId v, const c10::IValue& computed) const {
    auto& m = g.meta_.at(v);
    m.known = true;
    m.constant = skeleton(computed);
    if (computed.isTensor() && computed.toTensor().defined()) {
      const at::Tensor& t = computed.toTensor();
      m.shape.assign(t.sizes().begin(), t.sizes().end());
      m.dtype = t.scalar_type();
    } else {
      m.shape.clear();
    }
  }

  void run_leaf(const Node& n) const {
    const LeafInfo& info = leaf_info(n.leaf);
    c10::IValue in = operand(n.input(0));
    if (!in.isTensor()) bad_input(n.describe() + " gets no tensor");
    const at::Tensor& x = in.toTensor();
    Shape out;
    try {
      out = info.output_shape(n, Shape(x.sizes().begin(), x.sizes().end()));
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::BadInput) throw;
      bad_input("input shape " + inputs_text() + " does not fit the model at node " + n.describe() + ": " + e.what());
    }
    at::ScalarType dtype = x.scalar_type();
    if (n.is_leaf(LeafKind::Embedding)) dtype = g.param(n.params.at("weight")).scalar_type();
    set(n.output(0), at::zeros({}, at::TensorOptions().dtype(dtype)).expand(out));
  }

  // False when the op cannot run here (the caller takes the slow path).
  bool run_op(const Node& n) const {
    using namespace c10;
    std::vector<IValue> args;
    for (const Arg& a : n.inputs()) args.push_back(operand(a));
    if (n.op == prim::ListConstruct) {
      auto list_type = g.value(n.output(0)).type->cast<ListType>();
      if (!list_type) return false;
      impl::GenericList list(list_type->getElementType());
      for (auto& a : args) list.push_back(a);
      set(n.output(0), IValue(list));
      return true;
    }
    if (n.op == prim::TupleConstruct) {
      set(n.output(0), ivalue::Tuple::create(args));
      return true;
    }
    if (n.op == prim::ListUnpack || n.op == prim::TupleUnpack) {
      std::vector<IValue> elems;
      if (args.at(0).isTuple()) elems = args[0].toTupleRef().elements().vec();
      else if (args.at(0).isList()) elems = args[0].toListRef().vec();
      else return false;
      if (elems.size() != n.outputs().size()) return false;
      for (size_t i = 0; i < elems.size(); ++i) set(n.output(i), elems[i]);
      return true;
    }
    if (n.op == prim::TupleIndex) {
      if (!args.at(0).isTuple() || !args.at(1).isInt()) return false;
      const auto& elems = args[0].toTupleRef().elements();
      int64_t i = args[1].toInt();
      if (i < 0) i += static_cast<int64_t>(elems.size());
      set(n.output(0), elems.at(static_cast<size_t>(i)));
      return true;
    }
    if (n.op == prim::unchecked_cast) {
      set(n.output(0), args.at(0));
      return true;
    }
    if (!n.schema || (is_prim(n.op) && !runnable_prim(n.op))) return false;
    auto op = torch::jit::findOperatorFor(OperatorName(n.schema->name(), n.schema->overload_name()));
    if (!op) return false;
    torch::jit::Stack stack;
    for (auto& a : args) stack.push_back(materialise(a));
    if (n.schema->is_vararg()) stack.emplace_back(static_cast<int64_t>(args.size()));
    op->getOperation()(stack);
    if (stack.size() != n.outputs().size()) return false;
    for (size_t i = 0; i < stack.size(); ++i) set(n.output(i), stack[i]);
    return true;
  }

  // Runs every node whose key changed. False: some op needs the slow path.
  bool fast() const {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < g.inputs_.size(); ++i) {
      const InputSpec& spec = g.example_inputs_[i];
      set(g.inputs_[i], at::zeros(spec.shape, at::TensorOptions().dtype(spec.dtype)));
    }
    for (const Node& n : g.nodes()) {
      std::string k = key(n);
      auto it = g.shape_keys_.find(&n);
      bool known = true;
      for (ValueId v : n.outputs()) known &= g.meta_.at(v).known;
      if (known && it != g.shape_keys_.end() && it->second == k) continue;
      try {
        if (n.is_leaf()) {
          run_leaf(n);
        } else if (!run_op(n)) {
          return false;
        }
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        return false;  // the slow path tells the user what does not fit, with the model's words
      }
      g.shape_keys_[&n] = k;
    }
    return true;
  }

  // The TorchScript traceback points at the generated statement that failed
  // ("    x12 = self.layer1.0.conv1.forward(x11)" above "<--- HERE"): its node.
  std::string failing_node(const std::string& message) const {
    size_t frame = message.find("in record_values");
    if (frame == std::string::npos) return "";
    size_t here = message.find("<--- HERE", frame);
    if (here == std::string::npos) return "";
    size_t line_end = message.rfind('\n', here);
    if (line_end == std::string::npos || line_end == 0) return "";
    size_t line_start = message.rfind('\n', line_end - 1);
    std::string line = message.substr(line_start + 1, line_end - line_start - 1);
    size_t x = line.find_first_not_of(' ');
    if (x == std::string::npos || line[x] != 'x') return "";
    ValueId id = std::atoi(line.c_str() + x + 1);
    if (id < 0 || static_cast<size_t>(id) >= g.num_values() || !g.producer(id)) return "";
    return g.producer(id)->describe();
  }

  // Exports the graph and runs it once on zeros, recording every tensor.
  void slow() const {
    ExportOptions options;
    options.record_values = true;
    torch::jit::Module module = export_module(g, options);
    module.eval();
    std::vector<c10::IValue> inputs;
    for (size_t i = 0; i < g.inputs_.size(); ++i) {
      const InputSpec& spec = g.example_inputs_[i];
      at::Tensor x = at::zeros(spec.shape, at::TensorOptions().dtype(spec.dtype));
      inputs.emplace_back(x);
      set(g.inputs_[i], x);
    }
    c10::List<at::Tensor> recorded;
    try {
      torch::NoGradGuard no_grad;
      recorded = module.get_method("record_values")(inputs).toTensorList();
    } catch (const std::exception& e) {
      std::string node = failing_node(e.what());
      bad_input("input shape " + inputs_text() + " does not fit the model" + (node.empty() ? "" : " at node " + node) +
                ": " + first_line_of(e));
    }
    size_t k = 0;
    for (const Node& n : g.nodes()) {
      for (ValueId v : n.outputs()) {
        if (!g.value(v).is_tensor()) {
          g.meta_.at(v) = Graph::ValueMeta{};  // sizes and lists are not recorded on this path
          continue;
        }
        if (k >= recorded.size()) failure("shape inference: fewer recorded tensors than expected");
        set(v, recorded.get(k++));
      }
    }
    g.shape_keys_.clear();  // nothing to reuse next time
  }

  std::string inputs_text() const {
    std::string text;
    for (const auto& s : g.example_inputs_) text += (text.empty() ? "" : ", ") + detail::shape_str(s.shape);
    return text;
  }

  void run() const {
    if (g.example_inputs_.empty() && !g.inputs_.empty())
      bad_input("the model's input shape is not known: give one (e.g. --input-shape 1,3,224,224)");
    g.meta_.resize(g.values_.size());
    if (!fast()) slow();
    g.shapes_version_ = g.version_;
  }
};

void Graph::infer_shapes() const { ShapeEngine{*this}.run(); }

const Shape& Graph::shape(ValueId v) const {
  if (shapes_version_ != version_ || static_cast<size_t>(v) >= meta_.size() || !meta_[v].known) infer_shapes();
  const ValueMeta& m = meta_.at(v);
  if (!m.known || !value(v).is_tensor() || !m.constant.isTensor())
    failure("shape of " + describe_value(v) + ": it is no tensor of known shape");
  return m.shape;
}

at::ScalarType Graph::dtype(ValueId v) const {
  shape(v);
  return meta_.at(v).dtype;
}

c10::IValue Graph::example_constant(ValueId v) const {
  if (shapes_version_ != version_ || static_cast<size_t>(v) >= meta_.size() || !meta_[v].known) infer_shapes();
  const ValueMeta& m = meta_.at(v);
  if (!m.known || value(v).is_tensor()) return {};
  return m.constant;
}

}  // namespace compress
