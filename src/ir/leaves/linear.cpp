// nn.Linear (and MultiheadAttention's NonDynamicallyQuantizableLinear).
#include "common.h"
#include "compress/error.h"

namespace compress::detail {
namespace {

std::optional<RecognizedLeaf> recognize(const torch::jit::Module& m) {
  auto body = single_core(m, {c10::aten::linear}, 0);
  if (!body) return std::nullopt;
  RecognizedLeaf leaf{LeafKind::Linear, {}, {}};
  LinearAttrs a;
  if (!match_param(m, body->core->input(1), body->self, "weight", false, leaf.roles)) return std::nullopt;
  if (!match_param(m, body->core->input(2), body->self, "bias", true, leaf.roles, &a.bias)) return std::nullopt;
  at::Tensor w = m.attr("weight").toTensor();
  if (w.dim() != 2) return std::nullopt;
  a.out_features = w.size(0);
  a.in_features = w.size(1);
  leaf.attrs = a;
  return leaf;
}

std::string source(const Node& n) {
  return "def forward(self, input: Tensor) -> Tensor:\n    return torch.linear(input, self.weight, " +
         opt_param(n.params.count("bias") != 0, "bias") + ")\n";
}

Shape output_shape(const Node& n, const Shape& in) {
  const auto& a = std::get<LinearAttrs>(n.attrs);
  if (in.empty() || in.back() != a.in_features)
    bad_input("expects " + std::to_string(a.in_features) + " input features, got " + shape_str(in));
  Shape out = in;
  out.back() = a.out_features;
  return out;
}

int64_t macs(const Node& n, const Shape&, const Shape& out) {
  return numel(out) * std::get<LinearAttrs>(n.attrs).in_features;
}

void validate(const Graph& g, const Node& n) {
  const auto& a = std::get<LinearAttrs>(n.attrs);
  const at::Tensor& w = role_tensor(g, n, "weight");
  if (w.dim() != 2) failure("weight has " + std::to_string(w.dim()) + " dims");
  expect_eq(a.out_features, w.size(0), "out_features vs weight dim 0");
  expect_eq(a.in_features, w.size(1), "in_features vs weight dim 1");
  expect_role(n, "bias", a.bias);
  if (a.bias) expect_eq(a.out_features, role_tensor(g, n, "bias").numel(), "out_features vs bias length");
}

[[maybe_unused]] const bool registered = [] {
  LeafInfo info;
  info.kind = LeafKind::Linear;
  info.name = "Linear";
  info.class_names = {"Linear", "NonDynamicallyQuantizableLinear"};
  info.recognize = recognize;
  info.source = source;
  info.output_shape = output_shape;
  info.macs = macs;
  info.validate = validate;
  info.channels.out = {{"weight", 0}, {"bias", 0}};
  info.channels.in = {{"weight", 1}};
  info.channels.activation_dim = -1;
  register_leaf(std::move(info));
  return true;
}();

}  // namespace
}  // namespace compress::detail
