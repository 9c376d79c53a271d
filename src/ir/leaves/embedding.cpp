// nn.Embedding.
#include "common.h"
#include "compress/error.h"

namespace compress::detail {
namespace {

std::optional<RecognizedLeaf> recognize(const torch::jit::Module& m) {
  auto body = single_core(m, {c10::aten::embedding}, 1);
  if (!body) return std::nullopt;
  torch::jit::Node* c = body->core;
  RecognizedLeaf leaf{LeafKind::Embedding, {}, {}};
  EmbeddingAttrs a;
  if (!match_param(m, c->input(0), body->self, "weight", false, leaf.roles)) return std::nullopt;
  auto padding_idx = int_of(c->input(2));
  auto scale = bool_of(c->input(3));
  auto sparse = bool_of(c->input(4));
  if (!padding_idx || !scale || !sparse) return std::nullopt;
  if (*padding_idx >= 0) a.padding_idx = *padding_idx;
  a.scale_grad_by_freq = *scale;
  a.sparse = *sparse;
  at::Tensor w = m.attr("weight").toTensor();
  if (w.dim() != 2) return std::nullopt;
  a.num_embeddings = w.size(0);
  a.embedding_dim = w.size(1);
  leaf.attrs = a;
  return leaf;
}

std::string source(const Node& n) {
  const auto& a = std::get<EmbeddingAttrs>(n.attrs);
  return "def forward(self, input: Tensor) -> Tensor:\n    return torch.embedding(self.weight, input, " +
         std::to_string(a.padding_idx.value_or(-1)) + ", " + py_bool(a.scale_grad_by_freq) + ", " +
         py_bool(a.sparse) + ")\n";
}

Shape output_shape(const Node& n, const Shape& in) {
  Shape out = in;
  out.push_back(std::get<EmbeddingAttrs>(n.attrs).embedding_dim);
  return out;
}

void validate(const Graph& g, const Node& n) {
  const auto& a = std::get<EmbeddingAttrs>(n.attrs);
  const at::Tensor& w = role_tensor(g, n, "weight");
  if (w.dim() != 2) failure("weight has " + std::to_string(w.dim()) + " dims");
  expect_eq(a.num_embeddings, w.size(0), "num_embeddings vs weight dim 0");
  expect_eq(a.embedding_dim, w.size(1), "embedding_dim vs weight dim 1");
  if (a.padding_idx && (*a.padding_idx < 0 || *a.padding_idx >= a.num_embeddings))
    failure("padding_idx " + std::to_string(*a.padding_idx) + " is outside the table");
}

[[maybe_unused]] const bool registered = [] {
  LeafInfo info;
  info.kind = LeafKind::Embedding;
  info.name = "Embedding";
  info.class_names = {"Embedding"};
  info.recognize = recognize;
  info.source = source;
  info.output_shape = output_shape;
  info.macs = [](const Node&, const Shape&, const Shape&) { return int64_t{0}; };  // a lookup
  info.validate = validate;
  info.channels.out = {{"weight", 1}};
  info.channels.activation_dim = -1;
  register_leaf(std::move(info));
  return true;
}();

}  // namespace
}  // namespace compress::detail
