// nn.MultiheadAttention used as self-attention (one input), no masks, output
// only. Three origins: this toolkit's export (attributes say everything), a
// trace through the fused kernel, or a trace through the decomposed path.
#include <cmath>
#include <sstream>

#include "common.h"
#include "compress/error.h"

namespace compress::detail {
namespace {

namespace aten = c10::aten;
namespace prim = c10::prim;

std::optional<RecognizedLeaf> recognize(const torch::jit::Module& m) {
  RecognizedLeaf leaf{LeafKind::MultiheadAttention, {}, {}};
  AttentionAttrs a;
  // Packed q/k/v projection weights only; no bias_k / bias_v.
  if (!has_tensor_attr(m, "in_proj_weight")) return std::nullopt;
  if (has_tensor_attr(m, "bias_k") || has_tensor_attr(m, "bias_v")) return std::nullopt;
  if (!m.hasattr("out_proj")) return std::nullopt;
  auto out_proj = m.attr("out_proj").toModule();
  if (!has_tensor_attr(out_proj, "weight")) return std::nullopt;
  a.bias = has_tensor_attr(m, "in_proj_bias");
  if (a.bias != has_tensor_attr(out_proj, "bias")) return std::nullopt;
  a.embed_dim = m.attr("in_proj_weight").toTensor().size(1);
  leaf.roles = {"in_proj_weight", "out_proj.weight"};
  if (a.bias) leaf.roles.insert(leaf.roles.end(), {"in_proj_bias", "out_proj.bias"});

  if (m.hasattr("compress_fused")) {  // exported by this toolkit
    a.num_heads = m.attr("num_heads").toInt();
    a.batch_first = m.attr("batch_first").toBool();
    a.dropout = m.attr("dropout").toDouble();
    a.fused = m.attr("compress_fused").toBool();
    if (m.hasattr("head_dim")) a.head_dim = m.attr("head_dim").toInt();
    leaf.attrs = a;
    return leaf;
  }

  auto body = leaf_body(m);
  if (body->inputs().size() != 2 || body->outputs().size() != 1) return std::nullopt;
  if (!body->outputs()[0]->type()->isSubtypeOf(*c10::TensorType::get())) return std::nullopt;
  torch::jit::Value* x = body->inputs()[1];
  auto fused = nodes_of_kind(*body, {aten::_native_multi_head_attention});
  if (fused.size() == 1) {
    torch::jit::Node* c = fused[0];
    if (c->input(0) != x || c->input(1) != x || c->input(2) != x) return std::nullopt;
    auto heads = int_of(c->input(4));
    auto need_weights = bool_of(c->input(10));
    if (!heads || !need_weights || *need_weights || !is_none(c->input(9))) return std::nullopt;
    if (body->outputs()[0] != c->output(0)) return std::nullopt;
    a.num_heads = *heads;
    a.batch_first = true;  // the fused path is only taken for batch_first modules
    a.fused = true;
    leaf.attrs = a;
    return leaf;
  }
  // Decomposed path: accept exactly the ops nn.functional.multi_head_attention_forward
  // emits for this configuration; anything else (masks, add_zero_attn) is no leaf.
  static const c10::Symbol allowed[] = {
      prim::Constant, prim::GetAttr, prim::ListConstruct, prim::NumToTensor, aten::Int,
      aten::size, aten::transpose, aten::div, aten::mul, aten::linear, aten::chunk,
      prim::ListUnpack, aten::contiguous, aten::view, aten::bmm, aten::softmax, aten::dropout};
  int linears = 0, bmms = 0, softmaxes = 0;
  std::optional<int64_t> heads;
  for (torch::jit::Node* n : body->nodes()) {
    if (std::find(std::begin(allowed), std::end(allowed), n->kind()) == std::end(allowed)) return std::nullopt;
    linears += n->kind() == aten::linear;
    bmms += n->kind() == aten::bmm;
    softmaxes += n->kind() == aten::softmax;
    // head_dim = embed_dim // num_heads is traced as div(embed_dim, <num_heads>, "trunc").
    if (n->kind() == aten::div && n->inputs().size() == 3) {
      auto mode = constant_of(n->input(2));
      auto divisor = constant_of(n->input(1));
      if (mode && mode->isString() && mode->toStringRef() == "trunc" && divisor) {
        if (divisor->isTensor()) heads = divisor->toTensor().item<int64_t>();
        if (divisor->isInt()) heads = divisor->toInt();
      }
    }
  }
  if (linears != 2 || bmms != 2 || softmaxes != 1 || !heads || *heads <= 0) return std::nullopt;
  // batch_first modules transpose the input to (L, N, E) first.
  a.batch_first = false;
  for (const torch::jit::Use& use : x->uses())
    if (use.user->kind() == aten::transpose) a.batch_first = true;
  a.num_heads = *heads;
  a.fused = false;
  leaf.attrs = a;
  return leaf;
}

std::string source(const Node& n) {
  AttentionAttrs a = std::get<AttentionAttrs>(n.attrs);
  a.bias = n.params.count("in_proj_bias") != 0;
  return multihead_attention_source(a);
}

Shape output_shape(const Node& n, const Shape& in) {
  const auto& a = std::get<AttentionAttrs>(n.attrs);
  if (in.size() != 3 || in[2] != a.embed_dim)
    bad_input("expects (L, N, " + std::to_string(a.embed_dim) + "), got " + shape_str(in));
  return in;
}

int64_t macs(const Node& n, const Shape& in, const Shape&) {
  const auto& a = std::get<AttentionAttrs>(n.attrs);
  if (in.size() != 3) return 0;
  int64_t tokens = in[0] * in[1];
  int64_t seq = a.batch_first ? in[1] : in[0];
  int64_t E = a.embed_dim, inner = a.inner_dim();
  // q/k/v projections (E -> inner, three times) + out projection (inner -> E),
  // then QK^T and AV over all heads.
  return 4 * tokens * E * inner + 2 * tokens * seq * inner;
}

void validate(const Graph& g, const Node& n) {
  const auto& a = std::get<AttentionAttrs>(n.attrs);
  if (a.num_heads <= 0 || (a.head_dim == 0 && a.embed_dim % a.num_heads) || a.head_dim < 0)
    failure("num_heads " + std::to_string(a.num_heads) + " does not divide embed_dim " + std::to_string(a.embed_dim));
  const int64_t inner = a.inner_dim();
  const at::Tensor& in_w = role_tensor(g, n, "in_proj_weight");
  const at::Tensor& out_w = role_tensor(g, n, "out_proj.weight");
  if (in_w.dim() != 2 || out_w.dim() != 2) failure("projection weights must be 2-d");
  expect_eq(3 * inner, in_w.size(0), "3 * num_heads * head_dim vs in_proj_weight dim 0");
  expect_eq(a.embed_dim, in_w.size(1), "embed_dim vs in_proj_weight dim 1");
  expect_eq(a.embed_dim, out_w.size(0), "embed_dim vs out_proj.weight dim 0");
  expect_eq(inner, out_w.size(1), "num_heads * head_dim vs out_proj.weight dim 1");
  expect_role(n, "in_proj_bias", a.bias);
  expect_role(n, "out_proj.bias", a.bias);
  if (a.bias) {
    expect_eq(3 * inner, role_tensor(g, n, "in_proj_bias").numel(), "3 * num_heads * head_dim vs in_proj_bias length");
    expect_eq(a.embed_dim, role_tensor(g, n, "out_proj.bias").numel(), "embed_dim vs out_proj.bias length");
  }
}

[[maybe_unused]] const bool registered = [] {
  LeafInfo info;
  info.kind = LeafKind::MultiheadAttention;
  info.name = "MultiheadAttention";
  info.class_names = {"MultiheadAttention"};
  info.recognize = recognize;
  info.source = source;
  info.attributes = [](const Node& n) {
    const auto& a = std::get<AttentionAttrs>(n.attrs);
    return std::vector<std::pair<std::string, c10::IValue>>{{"embed_dim", a.embed_dim},
                                                            {"num_heads", a.num_heads},
                                                            {"batch_first", a.batch_first},
                                                            {"dropout", a.dropout},
                                                            {"compress_fused", a.fused},
                                                            {"head_dim", a.head_size()}};
  };
  info.output_shape = output_shape;
  info.macs = macs;
  info.validate = validate;
  // Output channels: the residual-stream features out_proj writes. The q/k/v
  // rows (in_proj dim 0) and out_proj's columns are grouped by head: pruning
  // removes whole heads (src/pruning/groups.cpp).
  info.channels.out = {{"out_proj.weight", 0}, {"out_proj.bias", 0}};
  info.channels.in = {{"in_proj_weight", 1}};
  info.channels.activation_dim = -1;
  register_leaf(std::move(info));
  return true;
}();

}  // namespace
}  // namespace compress::detail

namespace compress {

// In leaf.h: self-attention as torch 1.13 computes it (fused or decomposed).
std::string multihead_attention_source(const AttentionAttrs& a) {
  using detail::float_literal;
  const bool bias = a.bias;
  const int64_t head_dim = a.head_size(), inner = a.inner_dim();
  std::ostringstream s;
  std::string in_b = bias ? "self.in_proj_bias" : "None";
  std::string out_b = bias ? "self.out_proj.bias" : "None";
  s << "def forward(self, x: Tensor) -> Tensor:\n";
  if (a.fused && inner == a.embed_dim) {  // the fused kernel needs q/k/v as wide as the input
    s << "    if not self.training:\n"
      << "        return torch._native_multi_head_attention(x, x, x, " << a.embed_dim << ", " << a.num_heads
      << ", self.in_proj_weight, " << in_b << ", self.out_proj.weight, " << out_b
      << ", None, False, True, None)[0]\n";
  }
  s << "    q = x\n";
  if (a.batch_first) s << "    q = torch.transpose(x, 1, 0)\n";
  s << "    tgt_len = torch.size(q, 0)\n"
    << "    bsz = torch.size(q, 1)\n"
    << "    qkv = torch.chunk(torch.linear(q, self.in_proj_weight, " << in_b << "), 3, -1)\n"
    << "    q1 = torch.transpose(torch.view(torch.contiguous(qkv[0]), [tgt_len, bsz * " << a.num_heads << ", "
    << head_dim << "]), 0, 1)\n"
    << "    k1 = torch.transpose(torch.view(torch.contiguous(qkv[1]), [torch.size(qkv[1], 0), bsz * "
    << a.num_heads << ", " << head_dim << "]), 0, 1)\n"
    << "    v1 = torch.transpose(torch.view(torch.contiguous(qkv[2]), [torch.size(qkv[2], 0), bsz * "
    << a.num_heads << ", " << head_dim << "]), 0, 1)\n"
    << "    q1 = torch.div(q1, " << float_literal(std::sqrt(static_cast<double>(head_dim))) << ")\n"
    << "    attn = torch.softmax(torch.bmm(q1, torch.transpose(k1, -2, -1)), -1)\n";
  if (a.dropout > 0) s << "    attn = torch.dropout(attn, " << float_literal(a.dropout) << ", self.training)\n";
  s << "    out = torch.bmm(attn, v1)\n"
    << "    out = torch.view(torch.contiguous(torch.transpose(out, 0, 1)), [tgt_len * bsz, " << inner
    << "])\n"
    << "    out = torch.linear(out, self.out_proj.weight, " << out_b << ")\n"
    << "    out = torch.view(out, [tgt_len, bsz, torch.size(out, 1)])\n";
  if (a.batch_first) s << "    out = torch.transpose(out, 1, 0)\n";
  s << "    return out\n";
  return s.str();
}

}  // namespace compress
