// nn.Dropout.
#include "common.h"
#include "compress/error.h"

namespace compress::detail {
namespace {

std::optional<RecognizedLeaf> recognize(const torch::jit::Module& m) {
  auto body = single_core(m, {c10::aten::dropout, c10::aten::dropout_}, 0);
  if (!body) return std::nullopt;
  auto p = double_of(body->core->input(1));
  if (!p) return std::nullopt;
  return RecognizedLeaf{LeafKind::Dropout, DropoutAttrs{*p}, {}};
}

[[maybe_unused]] const bool registered = [] {
  LeafInfo info;
  info.kind = LeafKind::Dropout;
  info.name = "Dropout";
  info.class_names = {"Dropout"};
  info.recognize = recognize;
  info.source = [](const Node& n) {
    return "def forward(self, input: Tensor) -> Tensor:\n    return torch.dropout(input, " +
           float_literal(std::get<DropoutAttrs>(n.attrs).p) + ", self.training)\n";
  };
  info.output_shape = [](const Node&, const Shape& in) { return in; };
  info.macs = [](const Node&, const Shape&, const Shape&) { return int64_t{0}; };
  info.validate = [](const Graph&, const Node& n) {
    double p = std::get<DropoutAttrs>(n.attrs).p;
    if (!(p >= 0 && p <= 1)) failure("p " + float_literal(p) + " is outside [0, 1]");
    if (!n.params.empty()) failure("has parameters");
  };
  info.channels.passthrough = true;
  info.channels.activation_dim = 1;
  register_leaf(std::move(info));
  return true;
}();

}  // namespace
}  // namespace compress::detail
