// nn.BatchNorm1d / nn.BatchNorm2d (momentum a number; momentum=None is inlined).
#include "common.h"
#include "compress/error.h"

namespace compress::detail {
namespace {

std::optional<RecognizedLeaf> recognize(const torch::jit::Module& m, LeafKind kind) {
  auto body = leaf_body(m);
  auto cores = nodes_of_kind(*body, {c10::aten::batch_norm});
  if (cores.size() != 1 || body->inputs().size() != 2 || body->outputs().size() != 1) return std::nullopt;
  torch::jit::Node* c = cores[0];
  if (c->input(0) != body->inputs()[1] || body->outputs()[0] != c->output(0)) return std::nullopt;
  RecognizedLeaf leaf{kind, {}, {}};
  BatchNormAttrs a;
  // Parameters: taken from the module itself. Scripted BatchNorm selects its
  // running statistics through `if`s, so the operands are not plain attributes.
  auto tensor_attr = [&](const char* name) {
    if (!has_tensor_attr(m, name)) return false;
    leaf.roles.push_back(name);
    return true;
  };
  bool has_weight = tensor_attr("weight");
  bool has_bias = tensor_attr("bias");
  bool has_mean = tensor_attr("running_mean");
  bool has_var = tensor_attr("running_var");
  if (has_weight != has_bias || has_mean != has_var) return std::nullopt;
  a.affine = has_weight;
  a.track_running_stats = has_mean;
  auto momentum = double_of(c->input(6));
  auto eps = double_of(c->input(7));
  if (!momentum) {
    auto mc = module_constant(m, "momentum");
    if (!mc || !(mc->isDouble())) return std::nullopt;  // momentum=None (cumulative) is not reproduced
    momentum = mc->toDouble();
  }
  if (!eps) {
    auto ec = module_constant(m, "eps");
    if (!ec || !ec->isDouble()) return std::nullopt;
    eps = ec->toDouble();
  }
  a.momentum = *momentum;
  a.eps = *eps;
  a.cudnn_enabled = bool_of(c->input(8)).value_or(true);
  if (has_weight) {
    a.num_features = m.attr("weight").toTensor().size(0);
  } else if (has_mean) {
    a.num_features = m.attr("running_mean").toTensor().size(0);
  } else {
    return std::nullopt;
  }
  leaf.attrs = a;
  return leaf;
}

std::string source(const Node& n) {
  const auto& a = std::get<BatchNormAttrs>(n.attrs);
  auto has = [&](const char* role) { return n.params.count(role) != 0; };
  // Without running statistics, batch statistics are used in eval mode too.
  std::string use_batch_stats = a.track_running_stats ? "self.training" : "True";
  return "def forward(self, input: Tensor) -> Tensor:\n    return torch.batch_norm(input, " +
         opt_param(has("weight"), "weight") + ", " + opt_param(has("bias"), "bias") + ", " +
         opt_param(has("running_mean"), "running_mean") + ", " + opt_param(has("running_var"), "running_var") + ", " +
         use_batch_stats + ", " + float_literal(a.momentum) + ", " + float_literal(a.eps) + ", " +
         py_bool(a.cudnn_enabled) + ")\n";
}

Shape output_shape(const Node& n, const Shape& in) {
  const auto& a = std::get<BatchNormAttrs>(n.attrs);
  size_t rank = n.leaf == LeafKind::BatchNorm1d ? 0 : 4;
  if (in.size() < 2 || (rank && in.size() != rank) || (!rank && in.size() > 3) || in[1] != a.num_features)
    bad_input("expects " + std::to_string(a.num_features) + " channels in dim 1, got " +
              shape_str(in));
  return in;
}

void validate(const Graph& g, const Node& n) {
  const auto& a = std::get<BatchNormAttrs>(n.attrs);
  for (const char* role : {"weight", "bias"}) {
    expect_role(n, role, a.affine);
    if (a.affine) expect_eq(a.num_features, role_tensor(g, n, role).numel(), std::string("num_features vs ") + role);
  }
  for (const char* role : {"running_mean", "running_var"}) {
    expect_role(n, role, a.track_running_stats);
    if (a.track_running_stats)
      expect_eq(a.num_features, role_tensor(g, n, role).numel(), std::string("num_features vs ") + role);
  }
}

LeafInfo entry(LeafKind kind, const char* name) {
  LeafInfo info;
  info.kind = kind;
  info.name = name;
  info.class_names = {name};
  info.recognize = [kind](const torch::jit::Module& m) { return recognize(m, kind); };
  info.source = source;
  info.output_shape = output_shape;
  info.macs = [](const Node&, const Shape&, const Shape&) { return int64_t{0}; };
  info.validate = validate;
  info.channels.out = {{"weight", 0}, {"bias", 0}, {"running_mean", 0}, {"running_var", 0}};
  info.channels.passthrough = true;
  info.channels.activation_dim = 1;
  return info;
}

[[maybe_unused]] const bool registered = [] {
  register_leaf(entry(LeafKind::BatchNorm1d, "BatchNorm1d"));
  register_leaf(entry(LeafKind::BatchNorm2d, "BatchNorm2d"));
  return true;
}();

}  // namespace
}  // namespace compress::detail
