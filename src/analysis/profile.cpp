#include "compress/analysis/profile.h"

#include <numeric>
#include <set>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "compress/error.h"
#include "compress/ir/export.h"

namespace compress {

namespace {

int64_t numel(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<int64_t>());
}

// Ops the passes reason about: how channels and shapes flow through them.
const std::set<std::string>& understood_ops() {
  static const std::set<std::string> ops = {
      // element-wise and activations
      "aten::relu", "aten::relu_", "aten::relu6", "aten::hardtanh", "aten::hardtanh_", "aten::hardswish",
      "aten::hardswish_", "aten::hardsigmoid", "aten::hardsigmoid_", "aten::silu", "aten::silu_",
      "aten::sigmoid", "aten::sigmoid_", "aten::gelu", "aten::tanh", "aten::leaky_relu", "aten::leaky_relu_",
      "aten::add", "aten::add_", "aten::sub", "aten::mul", "aten::mul_", "aten::div", "aten::softmax",
      "aten::dropout", "aten::dropout_", "aten::feature_dropout", "aten::clamp",
      // pooling and reductions
      "aten::max_pool2d", "aten::avg_pool2d", "aten::adaptive_avg_pool2d", "aten::adaptive_max_pool2d",
      "aten::mean", "aten::sum",
      // layout
      "aten::cat", "aten::flatten", "aten::view", "aten::reshape", "aten::permute", "aten::transpose",
      "aten::contiguous", "aten::expand", "aten::select", "aten::slice", "aten::chunk", "aten::unsqueeze",
      "aten::squeeze",
      // compute carried as ops (functional forms)
      "aten::linear", "aten::matmul", "aten::bmm", "aten::mm", "aten::addmm", "aten::_convolution",
      "aten::conv2d", "aten::conv1d", "aten::batch_norm", "aten::layer_norm",
      "aten::_native_multi_head_attention"};
  return ops;
}

const std::set<std::string>& plumbing_ops() {
  static const std::set<std::string> ops = {
      "prim::ListConstruct", "prim::TupleConstruct", "prim::ListUnpack", "prim::TupleUnpack",
      "prim::TupleIndex", "prim::NumToTensor", "prim::unchecked_cast", "aten::size", "aten::Int",
      "aten::Float", "aten::ScalarImplicit", "aten::__getitem__", "aten::len", "aten::dim"};
  return ops;
}

// The TorchScript traceback points at the generated statement that failed
// ("    x12 = self.layer1.0.conv1.forward(x11)" above "<--- HERE"): name its node.
std::string failing_node(const Graph& graph, const std::string& message) {
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
  for (const Node& n : graph.nodes)
    for (ValueId v : n.outputs)
      if (v == id) {
        std::string name = n.is_leaf() ? n.module : (n.scope.empty() ? "" : n.scope + "/") + n.op.toUnqualString();
        return name + " (" + n.op_name() + ")";
      }
  return "";
}

}  // namespace

bool is_understood_op(const std::string& name) { return understood_ops().count(name) || plumbing_ops().count(name); }
bool is_plumbing_op(const std::string& name) { return plumbing_ops().count(name) != 0; }

std::string shape_to_string(const Shape& s) {
  if (s.empty()) return "scalar";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}

Shape parse_shape(const std::string& text, const std::string& what) {
  Shape shape;
  size_t start = 0;
  if (text.empty()) bad_input(what + ": empty shape (expected numbers separated by commas, e.g. 1,3,224,224)");
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(part, &used);
    } catch (...) {
      used = 0;
    }
    if (part.empty() || used != part.size() || v <= 0) {
      bad_input(what + ": '" + text + "' is not a shape (expected positive integers separated by commas, e.g. 1,3,224,224)");
    }
    shape.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return shape;
}

std::map<ValueId, Shape> infer_shapes(const Graph& graph, const std::vector<Shape>& input_shapes,
                                      at::ScalarType input_dtype) {
  if (input_shapes.size() != graph.inputs.size()) {
    bad_input("the model takes " + std::to_string(graph.inputs.size()) + " input(s) but " +
              std::to_string(input_shapes.size()) + " input shape(s) were given");
  }
  ExportOptions options;
  options.record_values = true;
  torch::jit::Module module = export_module(graph, options);
  module.eval();
  std::vector<c10::IValue> inputs;
  std::map<ValueId, Shape> shapes;
  for (size_t i = 0; i < input_shapes.size(); ++i) {
    inputs.emplace_back(at::zeros(input_shapes[i], at::TensorOptions().dtype(input_dtype)));
    shapes[graph.inputs[i]] = input_shapes[i];
  }
  c10::List<at::Tensor> recorded;
  try {
    torch::NoGradGuard no_grad;
    recorded = module.get_method("record_values")(inputs).toTensorList();
  } catch (const std::exception& e) {
    std::string shape_text;
    for (const auto& s : input_shapes) shape_text += (shape_text.empty() ? "" : ", ") + shape_to_string(s);
    std::string node = failing_node(graph, e.what());
    bad_input("input shape " + shape_text + " does not fit the model" + (node.empty() ? "" : " at node " + node) +
              ": " + first_line_of(e));
  }
  size_t k = 0;
  for (const Node& n : graph.nodes) {
    for (ValueId v : n.outputs) {
      if (graph.value(v).type->kind() != c10::TypeKind::TensorType) continue;
      if (k >= recorded.size()) failure("shape inference: fewer recorded tensors than expected");
      at::Tensor t = recorded.get(k++);
      shapes[v] = Shape(t.sizes().begin(), t.sizes().end());
    }
  }
  return shapes;
}

ModelProfile profile_model(const Graph& graph, const std::vector<Shape>& input_shapes, at::ScalarType input_dtype) {
  auto shapes = infer_shapes(graph, input_shapes, input_dtype);
  ModelProfile prof;
  prof.input_shapes = input_shapes;

  auto shape_of = [&](const Arg& a) -> Shape {
    if (a.kind == Arg::Kind::Value) {
      auto it = shapes.find(a.value);
      if (it != shapes.end()) return it->second;
    } else if (a.kind == Arg::Kind::Param) {
      const at::Tensor& t = graph.param(a.param);
      return Shape(t.sizes().begin(), t.sizes().end());
    } else if (a.kind == Arg::Kind::Constant && a.constant.isTensor()) {
      const at::Tensor& t = a.constant.toTensor();
      return Shape(t.sizes().begin(), t.sizes().end());
    }
    return {};
  };

  std::set<std::string> counted;  // parameters already attributed to a node
  auto take_param = [&](const std::string& name, NodeProfile& np) {
    if (!counted.insert(name).second) return;
    const StoredTensor& st = graph.params.at(name);
    if (st.is_buffer) return;
    np.params += st.tensor.numel();
    np.param_bytes += st.tensor.numel() * static_cast<int64_t>(st.tensor.element_size());
  };

  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    std::string op = n.op_name();
    NodeProfile np;
    np.node = static_cast<int>(i);
    np.op = op;
    for (ValueId v : n.outputs) {
      auto it = shapes.find(v);
      if (it != shapes.end()) np.output_shapes.push_back(it->second);
    }
    Shape out = np.output_shapes.empty() ? Shape{} : np.output_shapes[0];
    if (n.is_leaf()) {
      np.name = n.module;
      for (const auto& kv : n.params) take_param(kv.second, np);
      switch (n.leaf) {
        case LeafKind::Conv1d:
        case LeafKind::Conv2d: {
          const auto& a = std::get<ConvAttrs>(n.attrs);
          np.macs = numel(out) * (a.in_channels / a.groups) * numel(a.kernel);
          break;
        }
        case LeafKind::Linear:
          np.macs = numel(out) * std::get<LinearAttrs>(n.attrs).in_features;
          break;
        case LeafKind::MultiheadAttention: {
          const auto& a = std::get<AttentionAttrs>(n.attrs);
          Shape in = shape_of(n.inputs.at(0));
          if (in.size() == 3) {
            int64_t tokens = in[0] * in[1];
            int64_t seq = a.batch_first ? in[1] : in[0];
            int64_t E = a.embed_dim;
            // q/k/v projections + out projection, then QK^T and AV over all heads.
            np.macs = 4 * tokens * E * E + 2 * tokens * seq * E;
          }
          break;
        }
        default: break;
      }
    } else {
      np.name = (n.scope.empty() ? "" : n.scope + "/") + std::string(n.op.toUnqualString());
      np.understood = is_understood_op(op);
      for (const Arg& a : n.inputs)
        if (a.kind == Arg::Kind::Param) take_param(a.param, np);
      if (!out.empty()) {
        auto in0 = n.inputs.empty() ? Shape{} : shape_of(n.inputs[0]);
        if ((op == "aten::matmul" || op == "aten::bmm" || op == "aten::mm") && !in0.empty()) {
          np.macs = numel(out) * in0.back();
        } else if (op == "aten::addmm" && n.inputs.size() > 1) {
          auto m1 = shape_of(n.inputs[1]);
          if (m1.size() == 2) np.macs = numel(out) * m1[1];
        } else if (op == "aten::linear" && n.inputs.size() > 1) {
          auto w = shape_of(n.inputs[1]);
          if (w.size() == 2) np.macs = numel(out) * w[1];
        } else if ((op == "aten::_convolution" || op == "aten::conv2d" || op == "aten::conv1d") &&
                   n.inputs.size() > 1) {
          auto w = shape_of(n.inputs[1]);
          if (w.size() >= 3) np.macs = numel(out) * numel(Shape(w.begin() + 1, w.end()));
        }
      }
      if (!np.understood) prof.carried_ops[op]++;
    }
    prof.total_macs += np.macs;
    // Plumbing (lists, tuples, size arithmetic) counts but is not listed.
    if (n.is_leaf() || !is_plumbing_op(op)) prof.nodes.push_back(std::move(np));
  }
  for (const auto& name : graph.param_order) {
    const StoredTensor& st = graph.params.at(name);
    int64_t bytes = st.tensor.numel() * static_cast<int64_t>(st.tensor.element_size());
    if (st.is_buffer) {
      prof.buffer_bytes += bytes;
    } else {
      prof.total_params += st.tensor.numel();
      prof.param_bytes += bytes;
    }
  }
  return prof;
}

}  // namespace compress
