#include "compress/passes/graph_passes.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "compress/error.h"

namespace compress {

namespace {

int calls_of_module(const Graph& g, const std::string& module) {
  int count = 0;
  for (const Node& n : g.nodes) count += n.is_leaf() && n.module == module;
  return count;
}

bool is_dropout_op(const Node& n) {
  if (n.is_leaf() || !n.schema) return false;
  std::string name = n.op.toQualString();
  return name == "aten::dropout" || name == "aten::dropout_" || name == "aten::feature_dropout" ||
         name == "aten::feature_dropout_" || name == "aten::alpha_dropout" || name == "aten::alpha_dropout_" ||
         name == "aten::feature_alpha_dropout" || name == "aten::feature_alpha_dropout_";
}

}  // namespace

int fold_batch_norm(Graph& g) {
  torch::NoGradGuard no_grad;
  auto producers = g.producers();
  std::vector<int> folded;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& bn = g.nodes[i];
    if (!(bn.is_leaf(LeafKind::BatchNorm1d) || bn.is_leaf(LeafKind::BatchNorm2d))) continue;
    const auto& bna = std::get<BatchNormAttrs>(bn.attrs);
    if (!bna.track_running_stats || !bn.inputs[0].is_value()) continue;
    int p = producers.at(bn.inputs[0].value);
    if (p < 0) continue;
    Node& layer = g.nodes[p];
    bool is_conv = layer.is_leaf(LeafKind::Conv1d) || layer.is_leaf(LeafKind::Conv2d);
    if (!is_conv && !layer.is_leaf(LeafKind::Linear)) continue;
    bool returned = false;
    if (g.users(layer.outputs[0], &returned).size() != 1 || returned) continue;
    if (calls_of_module(g, layer.module) != 1 || calls_of_module(g, bn.module) != 1) continue;

    const std::string w_name = layer.params.at("weight");
    at::Tensor w = g.param(w_name).to(at::kDouble);
    int64_t out_channels = w.size(0);
    if (out_channels != bna.num_features) continue;
    at::Tensor mean = g.param(bn.params.at("running_mean")).to(at::kDouble);
    at::Tensor var = g.param(bn.params.at("running_var")).to(at::kDouble);
    at::Tensor gamma = bna.affine ? g.param(bn.params.at("weight")).to(at::kDouble) : at::ones_like(mean);
    at::Tensor beta = bna.affine ? g.param(bn.params.at("bias")).to(at::kDouble) : at::zeros_like(mean);
    at::Tensor scale = gamma / at::sqrt(var + bna.eps);
    std::vector<int64_t> bshape(w.dim(), 1);
    bshape[0] = out_channels;
    at::Tensor new_w = w * scale.reshape(bshape);
    bool had_bias = layer.params.count("bias") != 0;
    at::Tensor b = had_bias ? g.param(layer.params.at("bias")).to(at::kDouble) : at::zeros_like(mean);
    at::Tensor new_b = beta + (b - mean) * scale;

    at::ScalarType dtype = g.param(w_name).scalar_type();
    g.params[w_name].tensor = new_w.to(dtype).contiguous();
    std::string b_name = layer.module.empty() ? "bias" : layer.module + ".bias";
    if (had_bias) {
      g.params[b_name].tensor = new_b.to(dtype).contiguous();
    } else {
      // Keep state_dict order natural: the new bias right after its weight.
      auto pos = std::find(g.param_order.begin(), g.param_order.end(), w_name);
      g.param_order.insert(pos + 1, b_name);
      g.params[b_name] = StoredTensor{new_b.to(dtype).contiguous(), false};
      layer.params["bias"] = b_name;
      if (is_conv) std::get<ConvAttrs>(layer.attrs).bias = true;
      else std::get<LinearAttrs>(layer.attrs).bias = true;
    }
    for (const auto& kv : bn.params) g.remove_param(kv.second);
    // num_batches_tracked is a buffer the leaf does not use; it goes with the layer.
    std::string nbt = bn.module.empty() ? "num_batches_tracked" : bn.module + ".num_batches_tracked";
    if (g.has_param(nbt)) g.remove_param(nbt);
    g.replace_uses(bn.outputs[0], Arg::of_value(layer.outputs[0]));
    folded.push_back(static_cast<int>(i));
  }
  g.erase_nodes(folded);
  g.lint();
  return static_cast<int>(folded.size());
}

int strip_dropout(Graph& g) {
  std::vector<int> removed;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    if (!n.is_leaf(LeafKind::Dropout) && !is_dropout_op(n)) continue;
    g.replace_uses(n.outputs[0], n.inputs[0]);
    removed.push_back(static_cast<int>(i));
  }
  g.erase_nodes(removed);
  g.lint();
  return static_cast<int>(removed.size());
}

}  // namespace compress
