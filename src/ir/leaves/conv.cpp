// nn.Conv1d / nn.Conv2d (zero padding, not transposed).
#include "common.h"
#include "compress/error.h"

namespace compress::detail {
namespace {

namespace aten = c10::aten;

size_t spatial_dims(LeafKind kind) { return kind == LeafKind::Conv1d ? 1 : 2; }

std::optional<RecognizedLeaf> recognize(const torch::jit::Module& m, LeafKind kind) {
  auto body = single_core(m, {aten::_convolution, aten::conv1d, aten::conv2d}, 0);
  if (!body) return std::nullopt;
  torch::jit::Node* c = body->core;
  RecognizedLeaf leaf{kind, {}, {}};
  ConvAttrs a;
  if (!match_param(m, c->input(1), body->self, "weight", false, leaf.roles)) return std::nullopt;
  if (!match_param(m, c->input(2), body->self, "bias", true, leaf.roles, &a.bias)) return std::nullopt;
  auto stride = ints_of(c->input(3)), padding = ints_of(c->input(4)), dilation = ints_of(c->input(5));
  std::optional<int64_t> groups;
  if (c->kind() == aten::_convolution) {
    auto transposed = bool_of(c->input(6));
    if (!transposed || *transposed) return std::nullopt;
    groups = int_of(c->input(8));
  } else {
    groups = int_of(c->input(6));
  }
  if (!stride || !padding || !dilation || !groups) return std::nullopt;
  size_t dims = spatial_dims(kind);
  if (stride->size() != dims || padding->size() != dims || dilation->size() != dims) return std::nullopt;
  at::Tensor w = m.attr("weight").toTensor();
  if (static_cast<size_t>(w.dim()) != dims + 2) return std::nullopt;
  a.out_channels = w.size(0);
  a.in_channels = w.size(1) * *groups;
  a.groups = *groups;
  a.kernel.assign(w.sizes().begin() + 2, w.sizes().end());
  a.stride = *stride;
  a.padding = *padding;
  a.dilation = *dilation;
  leaf.attrs = a;
  return leaf;
}

std::string source(const Node& n) {
  const auto& a = std::get<ConvAttrs>(n.attrs);
  return std::string("def forward(self, input: Tensor) -> Tensor:\n") + "    return torch." +
         (n.leaf == LeafKind::Conv1d ? "conv1d" : "conv2d") + "(input, self.weight, " +
         opt_param(n.params.count("bias") != 0, "bias") + ", " + int_list(a.stride) + ", " + int_list(a.padding) +
         ", " + int_list(a.dilation) + ", " + std::to_string(a.groups) + ")\n";
}

Shape output_shape(const Node& n, const Shape& in) {
  const auto& a = std::get<ConvAttrs>(n.attrs);
  size_t dims = spatial_dims(n.leaf);
  if (in.size() != dims + 2 && in.size() != dims + 1)
    bad_input("takes a " + std::to_string(dims + 2) + "-d input, got " + shape_str(in));
  size_t c = in.size() - dims - 1;
  if (in[c] != a.in_channels)
    bad_input("expects " + std::to_string(a.in_channels) + " input channels, got " +
              shape_str(in));
  Shape out(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(c));
  out.push_back(a.out_channels);
  for (size_t d = 0; d < dims; ++d) {
    int64_t size = (in[c + 1 + d] + 2 * a.padding[d] - a.dilation[d] * (a.kernel[d] - 1) - 1) / a.stride[d] + 1;
    if (size <= 0) bad_input("input " + shape_str(in) + " is smaller than the kernel");
    out.push_back(size);
  }
  return out;
}

int64_t macs(const Node& n, const Shape&, const Shape& out) {
  const auto& a = std::get<ConvAttrs>(n.attrs);
  return numel(out) * (a.in_channels / a.groups) * numel(a.kernel);
}

void validate(const Graph& g, const Node& n) {
  const auto& a = std::get<ConvAttrs>(n.attrs);
  size_t dims = spatial_dims(n.leaf);
  const at::Tensor& w = role_tensor(g, n, "weight");
  if (static_cast<size_t>(w.dim()) != dims + 2) failure("weight has " + std::to_string(w.dim()) + " dims");
  if (a.groups <= 0 || a.in_channels % a.groups || a.out_channels % a.groups)
    failure("groups " + std::to_string(a.groups) + " does not divide the channels");
  expect_eq(a.out_channels, w.size(0), "out_channels vs weight dim 0");
  expect_eq(a.in_channels / a.groups, w.size(1), "in_channels / groups vs weight dim 1");
  if (a.kernel.size() != dims || a.stride.size() != dims || a.padding.size() != dims || a.dilation.size() != dims)
    failure("kernel/stride/padding/dilation need " + std::to_string(dims) + " entries");
  for (size_t d = 0; d < dims; ++d) expect_eq(a.kernel[d], w.size(2 + d), "kernel vs weight dim " + std::to_string(2 + d));
  expect_role(n, "bias", a.bias);
  if (a.bias) expect_eq(a.out_channels, role_tensor(g, n, "bias").numel(), "out_channels vs bias length");
}

LeafInfo entry(LeafKind kind, const char* name) {
  LeafInfo info;
  info.kind = kind;
  info.name = name;
  info.class_names = {name};
  info.recognize = [kind](const torch::jit::Module& m) { return recognize(m, kind); };
  info.source = source;
  info.output_shape = output_shape;
  info.macs = macs;
  info.validate = validate;
  info.channels.out = {{"weight", 0}, {"bias", 0}};
  info.channels.in = {{"weight", 1}};
  info.channels.activation_dim = 1;
  info.channels.grouped = true;
  return info;
}

[[maybe_unused]] const bool registered = [] {
  register_leaf(entry(LeafKind::Conv1d, "Conv1d"));
  register_leaf(entry(LeafKind::Conv2d, "Conv2d"));
  return true;
}();

}  // namespace
}  // namespace compress::detail
