#include "compress/analysis/profile.h"

#include <numeric>
#include <set>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "compress/error.h"
#include "compress/ir/leaf.h"

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
      "aten::_native_multi_head_attention", "aten::_transformer_encoder_layer_fwd", "aten::baddbmm",
      // sequence models
      "aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu", "aten::embedding", "aten::embedding_bag"};
  return ops;
}

const std::set<std::string>& plumbing_ops() {
  static const std::set<std::string> ops = {
      "prim::ListConstruct", "prim::TupleConstruct", "prim::ListUnpack", "prim::TupleUnpack",
      "prim::TupleIndex", "prim::NumToTensor", "prim::unchecked_cast", "aten::size", "aten::Int",
      "aten::Float", "aten::ScalarImplicit", "aten::__getitem__", "aten::len", "aten::dim"};
  return ops;
}

// The tensors of a list operand (aten::lstm's parameters): the operands of
// the prim::ListConstruct producing it.
std::vector<Arg> list_elements(const Graph& g, const Arg& a) {
  if (!a.is_value() || !g.producer(a.value)) return {};
  const Node* p = g.producer(a.value);
  if (p->op_name() != "prim::ListConstruct") return {};
  return p->inputs();
}

bool is_recurrent_op(const std::string& op) {
  return op == "aten::lstm" || op == "aten::gru" || op == "aten::rnn_tanh" || op == "aten::rnn_relu";
}

// Self-attention of the fused kernels over batch-first [B, T, E]: the q/k/v
// and output projections per token, plus QK^T and AV (as the
// MultiheadAttention leaf counts them).
int64_t attention_macs(const Shape& x, int64_t embed_dim) {
  if (x.size() != 3 || embed_dim <= 0) return 0;
  const int64_t tokens = x[0] * x[1], seq = x[1];
  return 4 * tokens * embed_dim * embed_dim + 2 * tokens * seq * embed_dim;
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

ModelProfile profile_model(Graph& graph, const std::vector<Shape>& input_shapes, at::ScalarType input_dtype) {
  std::vector<InputSpec> specs;
  for (const Shape& s : input_shapes) specs.push_back(InputSpec{s, input_dtype});
  graph.set_example_inputs(std::move(specs));
  return profile_model(graph);
}

ModelProfile profile_model(const Graph& graph) {
  graph.infer_shapes();
  ModelProfile prof;
  for (const InputSpec& in : graph.example_inputs()) prof.input_shapes.push_back(in.shape);

  auto shape_of = [&](const Arg& a) -> Shape {
    if (a.kind == Arg::Kind::Value) {
      if (graph.value(a.value).is_tensor()) return graph.shape(a.value);
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

  // Parameters gathered into a list for a recurrent op belong to that op.
  std::set<const Node*> recurrent_lists;
  for (const Node& n : graph.nodes())
    if (is_recurrent_op(n.op_name()) && n.inputs().size() > 2 && n.input(2).is_value() && graph.producer(n.input(2).value))
      recurrent_lists.insert(graph.producer(n.input(2).value));

  for (const Node& n : graph.nodes()) {
    std::string op = n.op_name();
    NodeProfile np;
    np.node = &n;
    np.op = op;
    np.name = n.outputs().empty() ? op : graph.name_of(n.output(0));
    for (ValueId v : n.outputs())
      if (graph.value(v).is_tensor()) np.output_shapes.push_back(graph.shape(v));
    Shape out = np.output_shapes.empty() ? Shape{} : np.output_shapes[0];
    if (n.is_leaf()) {
      for (const auto& kv : n.params) take_param(kv.second, np);
      np.macs = leaf_info(n.leaf).macs(n, shape_of(n.input(0)), out);
    } else {
      np.understood = is_understood_op(op);
      if (!recurrent_lists.count(&n))
        for (const Arg& a : n.inputs())
          if (a.kind == Arg::Kind::Param) take_param(a.param, np);
      if (is_recurrent_op(op) && n.inputs().size() > 2) {
        // Every step of every layer and direction multiplies its input and
        // its hidden state by that layer's W_ih and W_hh: per (sample, step)
        // the 2-D weights' elements, whatever the gate count.
        auto in0 = shape_of(n.input(0));
        int64_t weights = 0;
        for (const Arg& a : list_elements(graph, n.input(2))) {
          if (a.kind == Arg::Kind::Param) take_param(a.param, np);
          Shape w = shape_of(a);
          if (w.size() == 2) weights += numel(w);
        }
        if (!in0.empty() && in0.back() > 0) np.macs = numel(in0) / in0.back() * weights;
      } else if (op == "aten::_native_multi_head_attention" && n.inputs().size() > 3) {
        np.macs = attention_macs(shape_of(n.input(0)), n.input(3).constant.isInt() ? n.input(3).constant.toInt() : 0);
      } else if (op == "aten::_transformer_encoder_layer_fwd" && n.inputs().size() > 16) {
        // Attention, then the two feed-forward linears (E -> F -> E) per token.
        const Shape x = shape_of(n.input(0)), w1 = shape_of(n.input(14));
        const int64_t E = n.input(1).constant.isInt() ? n.input(1).constant.toInt() : 0;
        np.macs = attention_macs(x, E);
        if (x.size() == 3 && w1.size() == 2) np.macs += x[0] * x[1] * 2 * numel(w1);
      } else if (op == "aten::baddbmm" && n.inputs().size() > 1 && !out.empty()) {
        auto b1 = shape_of(n.input(1));
        if (!b1.empty()) np.macs = numel(out) * b1.back();
      } else if (!out.empty()) {
        auto in0 = n.inputs().empty() ? Shape{} : shape_of(n.input(0));
        if ((op == "aten::matmul" || op == "aten::bmm" || op == "aten::mm" || op == "compress::linear_int8_dynamic") &&
            !in0.empty()) {
          np.macs = numel(out) * in0.back();
        } else if (op == "aten::addmm" && n.inputs().size() > 1) {
          auto m1 = shape_of(n.input(1));
          if (m1.size() == 2) np.macs = numel(out) * m1[1];
        } else if (op == "aten::linear" && n.inputs().size() > 1) {
          auto w = shape_of(n.input(1));
          if (w.size() == 2) np.macs = numel(out) * w[1];
        } else if ((op == "aten::_convolution" || op == "aten::conv2d" || op == "aten::conv1d") &&
                   n.inputs().size() > 1) {
          auto w = shape_of(n.input(1));
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
