#include "compress/passes/fold_batch_norm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "compress/error.h"

namespace compress {
namespace {

int calls_of_module(const Graph& g, const std::string& module) {
  int count = 0;
  for (const Node& n : g.nodes()) count += n.is_leaf() && n.module == module;
  return count;
}

// Why `bn` cannot be folded into `layer`; empty when it can.
std::string refusal(const Graph& g, const Node& bn, const Node* layer, const FoldBatchNormOptions& options) {
  const auto& bna = std::get<BatchNormAttrs>(bn.attrs);
  if (!bna.track_running_stats) return "it has no running statistics (track_running_stats=False)";
  if (!layer) return "its input is no layer's output";
  bool is_conv = layer->is_leaf(LeafKind::Conv1d) || layer->is_leaf(LeafKind::Conv2d);
  bool is_linear = layer->is_leaf(LeafKind::Linear);
  if (!is_conv && !is_linear) return "its input comes from " + layer->describe() + ", not a convolution or linear layer";
  if (is_linear && !options.linear) return "folding into linear layers is off (linear=false)";
  if (g.users(layer->output()).size() != 1 || g.is_output(layer->output()))
    return "the output of " + layer->module + " is also read elsewhere";
  if (calls_of_module(g, layer->module) != 1) return layer->module + " is called more than once";
  if (calls_of_module(g, bn.module) != 1) return bn.module + " is called more than once";
  int64_t out_channels = g.param(layer->params.at("weight")).size(0);
  if (out_channels != bna.num_features)
    return layer->module + " has " + std::to_string(out_channels) + " outputs but the batch norm " +
           std::to_string(bna.num_features) + " channels";
  if (is_linear) {
    // nn.BatchNorm1d normalises dim 1; a linear layer's features are the last dim.
    if (g.example_inputs().empty()) return "the input shape is unknown, so whether the linear layer's features are dim 1 is too";
    if (g.shape(layer->output()).size() != 2)
      return "the linear output has rank " + std::to_string(g.shape(layer->output()).size()) +
             ": the batch norm normalises dim 1, the linear layer's features are the last";
  }
  return "";
}

void fold(Graph& g, Node& bn, Node& layer) {
  torch::NoGradGuard no_grad;
  const auto& bna = std::get<BatchNormAttrs>(bn.attrs);
  const std::string w_name = layer.params.at("weight");
  at::Tensor w = g.param(w_name).to(at::kDouble);
  at::Tensor mean = g.param(bn.params.at("running_mean")).to(at::kDouble);
  at::Tensor var = g.param(bn.params.at("running_var")).to(at::kDouble);
  at::Tensor gamma = bna.affine ? g.param(bn.params.at("weight")).to(at::kDouble) : at::ones_like(mean);
  at::Tensor beta = bna.affine ? g.param(bn.params.at("bias")).to(at::kDouble) : at::zeros_like(mean);
  at::Tensor scale = gamma / at::sqrt(var + bna.eps);
  std::vector<int64_t> bshape(static_cast<size_t>(w.dim()), 1);
  bshape[0] = w.size(0);
  bool had_bias = layer.params.count("bias") != 0;
  at::Tensor b = had_bias ? g.param(layer.params.at("bias")).to(at::kDouble) : at::zeros_like(mean);
  at::ScalarType dtype = g.param(w_name).scalar_type();
  g.set_param(w_name, (w * scale.reshape(bshape)).to(dtype).contiguous());
  at::Tensor new_b = (beta + (b - mean) * scale).to(dtype).contiguous();
  std::string b_name = layer.module.empty() ? "bias" : layer.module + ".bias";
  if (had_bias) {
    g.set_param(b_name, new_b);
  } else {
    // Keep state_dict order natural: the new bias right after its weight.
    g.add_param(b_name, new_b, false);
    g.param_order.pop_back();
    auto pos = std::find(g.param_order.begin(), g.param_order.end(), w_name);
    g.param_order.insert(pos + 1, b_name);
    layer.params["bias"] = b_name;
    if (layer.is_leaf(LeafKind::Linear)) std::get<LinearAttrs>(layer.attrs).bias = true;
    else std::get<ConvAttrs>(layer.attrs).bias = true;
  }
  for (const auto& kv : bn.params) g.remove_param(kv.second);
  // num_batches_tracked is a buffer the leaf does not use; it goes with the layer.
  std::string nbt = bn.module.empty() ? "num_batches_tracked" : bn.module + ".num_batches_tracked";
  if (g.has_param(nbt)) g.remove_param(nbt);
  g.replace_all_uses(bn.output(), Arg::of_value(layer.output()));
  g.erase(&bn);
}

}  // namespace

FoldBatchNormOptions FoldBatchNormOptions::from_json(const nlohmann::json& j) {
  FoldBatchNormOptions o;
  o.linear = j.value("linear", o.linear);
  return o;
}

PassResult fold_batch_norm(Graph& g, const FoldBatchNormOptions& options) {
  PassResult result;
  result.pass = "fold_batch_norm";
  for (Node& bn : g.nodes()) {
    if (!bn.is_leaf(LeafKind::BatchNorm1d) && !bn.is_leaf(LeafKind::BatchNorm2d)) continue;
    Node* layer = bn.input().is_value() ? g.producer(bn.input().value) : nullptr;
    std::string why = refusal(g, bn, layer, options);
    if (!why.empty()) {
      result.skipped.push_back(bn.module + ": " + why);
      continue;
    }
    result.changes.push_back(bn.module + " folded into " + layer->module);
    fold(g, bn, *layer);
    ++result.changed;
  }
  return result;
}

namespace {
[[maybe_unused]] const bool registered = [] {
  PassInfo info;
  info.name = "fold_batch_norm";
  info.summary = "fold batch norms into the convolution or linear layer before them";
  info.default_options = FoldBatchNormOptions{}.to_json();
  info.run = [](Graph& g, const nlohmann::json& o) { return fold_batch_norm(g, FoldBatchNormOptions::from_json(o)); };
  register_pass(std::move(info));
  return true;
}();
}  // namespace

}  // namespace compress
