// nn.LayerNorm.
#include "common.h"
#include "compress/error.h"

namespace compress::detail {
namespace {

std::optional<RecognizedLeaf> recognize(const torch::jit::Module& m) {
  auto body = single_core(m, {c10::aten::layer_norm}, 0);
  if (!body) return std::nullopt;
  torch::jit::Node* c = body->core;
  RecognizedLeaf leaf{LeafKind::LayerNorm, {}, {}};
  LayerNormAttrs a;
  auto shape = ints_of(c->input(1));
  auto eps = double_of(c->input(4));
  if (!shape || !eps) return std::nullopt;
  bool has_weight = false, has_bias = false;
  if (!match_param(m, c->input(2), body->self, "weight", true, leaf.roles, &has_weight)) return std::nullopt;
  if (!match_param(m, c->input(3), body->self, "bias", true, leaf.roles, &has_bias)) return std::nullopt;
  if (has_weight != has_bias) return std::nullopt;
  a.affine = has_weight;
  a.normalized_shape = *shape;
  a.eps = *eps;
  a.cudnn_enabled = bool_of(c->input(5)).value_or(true);
  leaf.attrs = a;
  return leaf;
}

std::string source(const Node& n) {
  const auto& a = std::get<LayerNormAttrs>(n.attrs);
  auto has = [&](const char* role) { return n.params.count(role) != 0; };
  return "def forward(self, input: Tensor) -> Tensor:\n    return torch.layer_norm(input, " +
         int_list(a.normalized_shape) + ", " + opt_param(has("weight"), "weight") + ", " +
         opt_param(has("bias"), "bias") + ", " + float_literal(a.eps) + ", " + py_bool(a.cudnn_enabled) + ")\n";
}

Shape output_shape(const Node& n, const Shape& in) {
  const auto& a = std::get<LayerNormAttrs>(n.attrs);
  bool fits = in.size() >= a.normalized_shape.size() &&
              std::equal(a.normalized_shape.begin(), a.normalized_shape.end(), in.end() - static_cast<std::ptrdiff_t>(a.normalized_shape.size()));
  if (!fits) bad_input("normalises " + shape_str(a.normalized_shape) + ", got " + shape_str(in));
  return in;
}

void validate(const Graph& g, const Node& n) {
  const auto& a = std::get<LayerNormAttrs>(n.attrs);
  for (const char* role : {"weight", "bias"}) {
    expect_role(n, role, a.affine);
    if (!a.affine) continue;
    const at::Tensor& t = role_tensor(g, n, role);
    if (Shape(t.sizes().begin(), t.sizes().end()) != a.normalized_shape)
      failure(std::string("normalized_shape ") + shape_str(a.normalized_shape) + " vs " + role + " " +
              shape_str(Shape(t.sizes().begin(), t.sizes().end())));
  }
}

[[maybe_unused]] const bool registered = [] {
  LeafInfo info;
  info.kind = LeafKind::LayerNorm;
  info.name = "LayerNorm";
  info.class_names = {"LayerNorm"};
  info.recognize = recognize;
  info.source = source;
  info.output_shape = output_shape;
  info.macs = [](const Node&, const Shape&, const Shape&) { return int64_t{0}; };
  info.validate = validate;
  info.channels.out = {{"weight", 0}, {"bias", 0}};
  info.channels.passthrough = true;
  info.channels.activation_dim = -1;
  register_leaf(std::move(info));
  return true;
}();

}  // namespace
}  // namespace compress::detail
