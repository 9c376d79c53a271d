#include "leaves.h"

#include <cmath>
#include <cstdio>
#include <regex>
#include <sstream>

#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/inliner.h>

#include "compress/error.h"

namespace compress::detail {

using torch::jit::Node;
using JitValue = torch::jit::Value;
namespace attr = c10::attr;
namespace aten = c10::aten;
namespace prim = c10::prim;

std::string unmangled_type_name(const c10::ClassTypePtr& type) {
  static const std::regex mangle("___torch_mangle_[0-9]+\\.");
  return std::regex_replace(type->name()->qualifiedName(), mangle, "");
}

std::string float_literal(double v) {
  if (std::isinf(v)) return v > 0 ? "float(\"inf\")" : "float(\"-inf\")";
  if (std::isnan(v)) return "float(\"nan\")";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".";
  return s;
}

namespace {

struct LeafType {
  const char* suffix;  // last component of the class name
  LeafKind kind;
};
const LeafType kLeafTypes[] = {
    {"Conv1d", LeafKind::Conv1d},
    {"Conv2d", LeafKind::Conv2d},
    {"Linear", LeafKind::Linear},
    {"NonDynamicallyQuantizableLinear", LeafKind::Linear},
    {"BatchNorm1d", LeafKind::BatchNorm1d},
    {"BatchNorm2d", LeafKind::BatchNorm2d},
    {"LayerNorm", LeafKind::LayerNorm},
    {"MultiheadAttention", LeafKind::MultiheadAttention},
    {"Embedding", LeafKind::Embedding},
    {"Dropout", LeafKind::Dropout},
};

std::optional<LeafKind> leaf_kind_of(const std::string& type_name) {
  // Only torch.nn's own classes (whose forward we know) and the ones this
  // toolkit exports; a user's class that happens to be called Linear is not a leaf.
  static const char* kPrefixes[] = {"__torch__.torch.nn.modules.", "__torch__.compress.nn."};
  bool known_prefix = false;
  for (const char* p : kPrefixes) known_prefix |= type_name.rfind(p, 0) == 0;
  if (!known_prefix) return std::nullopt;
  std::string last = type_name.substr(type_name.rfind('.') + 1);
  for (const auto& t : kLeafTypes)
    if (last == t.suffix) return t.kind;
  return std::nullopt;
}

// The leaf's forward graph, inlined and constant-folded, on a private copy.
std::shared_ptr<torch::jit::Graph> leaf_body(const torch::jit::Module& module) {
  auto graph = module.get_method("forward").graph()->copy();
  torch::jit::Inline(*graph);
  torch::jit::ConstantPropagation(graph);
  return graph;
}

// Only prim::Constant counts: toIValue also answers for some other nodes.
std::optional<c10::IValue> constant_of(JitValue* v) {
  if (v->node()->kind() != prim::Constant) return std::nullopt;
  return torch::jit::toIValue(v);
}

std::optional<int64_t> int_of(JitValue* v) {
  auto c = constant_of(v);
  if (c && c->isInt()) return c->toInt();
  return std::nullopt;
}
std::optional<double> double_of(JitValue* v) {
  auto c = constant_of(v);
  if (c && c->isDouble()) return c->toDouble();
  if (c && c->isInt()) return static_cast<double>(c->toInt());
  return std::nullopt;
}
std::optional<bool> bool_of(JitValue* v) {
  auto c = constant_of(v);
  if (c && c->isBool()) return c->toBool();
  return std::nullopt;
}
std::optional<std::vector<int64_t>> ints_of(JitValue* v) {
  auto c = constant_of(v);
  if (c && c->isIntList()) return c->toIntVector();
  return std::nullopt;
}
bool is_none(JitValue* v) {
  auto c = constant_of(v);
  return c && c->isNone();
}

// If `v` is `self.a.b` (a chain of prim::GetAttr from the body's self), its path "a.b".
std::optional<std::string> attr_path(JitValue* v, JitValue* self) {
  std::vector<std::string> parts;
  while (v != self) {
    Node* n = v->node();
    if (n->kind() != prim::GetAttr) return std::nullopt;
    parts.push_back(n->s(attr::name));
    v = n->input(0);
  }
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) path += (path.empty() ? "" : ".") + *it;
  return path;
}

// The value of `module.a.b` for path "a.b".
c10::IValue attr_value(const torch::jit::Module& module, const std::string& path) {
  c10::IValue v = module._ivalue();
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    v = v.toObject()->getAttr(part);
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// The operand must be the given attribute of self (a tensor, or None where
// optional: scripted modules keep a missing bias as a None attribute).
// Returns false when it is something else (then the module is no leaf).
bool match_param(const torch::jit::Module& module, JitValue* v, JitValue* self, const std::string& role,
                 bool may_be_none, std::vector<std::string>& roles, bool* present = nullptr) {
  if (present) *present = false;
  if (may_be_none && is_none(v)) return true;
  auto path = attr_path(v, self);
  if (!path || *path != role) return false;
  c10::IValue value = attr_value(module, role);
  if (value.isNone()) return may_be_none;
  if (!value.isTensor()) return false;
  roles.push_back(role);
  if (present) *present = true;
  return true;
}

std::vector<Node*> nodes_of_kind(torch::jit::Graph& g, std::initializer_list<c10::Symbol> kinds) {
  std::vector<Node*> out;
  for (Node* n : g.nodes())
    for (auto k : kinds)
      if (n->kind() == k) out.push_back(n);
  return out;
}

// A module attribute or class constant (scripted modules keep hyper-parameters there).
std::optional<c10::IValue> module_constant(const torch::jit::Module& m, const std::string& name) {
  if (m.hasattr(name)) return m.attr(name);
  auto type = m.type();
  if (type->hasConstant(name)) return type->getConstant(name);
  return std::nullopt;
}

// Common shape of the simple leaves: forward(self, x) returns core(x, ...).
struct SimpleBody {
  std::shared_ptr<torch::jit::Graph> graph;
  Node* core = nullptr;
  JitValue* self = nullptr;
};
std::optional<SimpleBody> single_core(const torch::jit::Module& module,
                                      std::initializer_list<c10::Symbol> kinds, size_t data_input) {
  SimpleBody b;
  b.graph = leaf_body(module);
  if (b.graph->inputs().size() != 2 || b.graph->outputs().size() != 1) return std::nullopt;
  auto cores = nodes_of_kind(*b.graph, kinds);
  if (cores.size() != 1) return std::nullopt;
  b.core = cores[0];
  b.self = b.graph->inputs()[0];
  if (b.core->inputs().size() <= data_input || b.core->input(data_input) != b.graph->inputs()[1]) return std::nullopt;
  if (b.graph->outputs()[0] != b.core->output(0)) return std::nullopt;
  return b;
}

std::optional<RecognizedLeaf> recognize_conv(const torch::jit::Module& m, LeafKind kind) {
  auto body = single_core(m, {aten::_convolution, aten::conv1d, aten::conv2d}, 0);
  if (!body) return std::nullopt;
  Node* c = body->core;
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
  size_t dims = kind == LeafKind::Conv1d ? 1 : 2;
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

std::optional<RecognizedLeaf> recognize_linear(const torch::jit::Module& m) {
  auto body = single_core(m, {aten::linear}, 0);
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

std::optional<RecognizedLeaf> recognize_batch_norm(const torch::jit::Module& m, LeafKind kind) {
  auto body = leaf_body(m);
  auto cores = nodes_of_kind(*body, {aten::batch_norm});
  if (cores.size() != 1 || body->inputs().size() != 2 || body->outputs().size() != 1) return std::nullopt;
  Node* c = cores[0];
  if (c->input(0) != body->inputs()[1] || body->outputs()[0] != c->output(0)) return std::nullopt;
  RecognizedLeaf leaf{kind, {}, {}};
  BatchNormAttrs a;
  // Parameters: taken from the module itself. Scripted BatchNorm selects its
  // running statistics through `if`s, so the operands are not plain attributes.
  auto tensor_attr = [&](const char* name) {
    if (m.hasattr(name) && m.attr(name).isTensor()) {
      leaf.roles.push_back(name);
      return true;
    }
    return false;
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

std::optional<RecognizedLeaf> recognize_layer_norm(const torch::jit::Module& m) {
  auto body = single_core(m, {aten::layer_norm}, 0);
  if (!body) return std::nullopt;
  Node* c = body->core;
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

std::optional<RecognizedLeaf> recognize_embedding(const torch::jit::Module& m) {
  auto body = single_core(m, {aten::embedding}, 1);
  if (!body) return std::nullopt;
  Node* c = body->core;
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
  a.num_embeddings = w.size(0);
  a.embedding_dim = w.size(1);
  leaf.attrs = a;
  return leaf;
}

std::optional<RecognizedLeaf> recognize_dropout(const torch::jit::Module& m) {
  auto body = single_core(m, {aten::dropout, aten::dropout_}, 0);
  if (!body) return std::nullopt;
  auto p = double_of(body->core->input(1));
  if (!p) return std::nullopt;
  return RecognizedLeaf{LeafKind::Dropout, DropoutAttrs{*p}, {}};
}

// nn.MultiheadAttention used as self-attention (one input), no masks, output
// only. Three origins: our own export (attributes say everything), a trace
// through the fused kernel, or a trace through the decomposed "slow path".
std::optional<RecognizedLeaf> recognize_attention(const torch::jit::Module& m) {
  RecognizedLeaf leaf{LeafKind::MultiheadAttention, {}, {}};
  AttentionAttrs a;
  // Packed q/k/v projection weights only; no bias_k / bias_v.
  auto tensor_attr = [&](const char* name) { return m.hasattr(name) && m.attr(name).isTensor(); };
  if (!tensor_attr("in_proj_weight")) return std::nullopt;
  if (tensor_attr("bias_k") || tensor_attr("bias_v")) return std::nullopt;
  if (!m.hasattr("out_proj")) return std::nullopt;
  auto out_proj = m.attr("out_proj").toModule();
  if (!(out_proj.hasattr("weight") && out_proj.attr("weight").isTensor())) return std::nullopt;
  a.bias = tensor_attr("in_proj_bias");
  bool out_bias = out_proj.hasattr("bias") && out_proj.attr("bias").isTensor();
  if (a.bias != out_bias) return std::nullopt;
  a.embed_dim = m.attr("in_proj_weight").toTensor().size(1);
  leaf.roles = {"in_proj_weight", "out_proj.weight"};
  if (a.bias) leaf.roles.insert(leaf.roles.end(), {"in_proj_bias", "out_proj.bias"});

  if (m.hasattr("compress_fused")) {  // exported by this toolkit
    a.num_heads = m.attr("num_heads").toInt();
    a.batch_first = m.attr("batch_first").toBool();
    a.dropout = m.attr("dropout").toDouble();
    a.fused = m.attr("compress_fused").toBool();
    leaf.attrs = a;
    return leaf;
  }

  auto body = leaf_body(m);
  if (body->inputs().size() != 2 || body->outputs().size() != 1) return std::nullopt;
  if (!body->outputs()[0]->type()->isSubtypeOf(*c10::TensorType::get())) return std::nullopt;
  JitValue* x = body->inputs()[1];
  auto fused = nodes_of_kind(*body, {aten::_native_multi_head_attention});
  if (fused.size() == 1) {
    Node* c = fused[0];
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
  for (Node* n : body->nodes()) {
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

std::string opt_param(bool present, const std::string& role) { return present ? "self." + role : "None"; }

std::string int_list(const std::vector<int64_t>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}

const char* py_bool(bool b) { return b ? "True" : "False"; }

}  // namespace

std::optional<RecognizedLeaf> recognize_leaf(const torch::jit::Module& module) {
  auto kind = leaf_kind_of(unmangled_type_name(module.type()));
  if (!kind || !module.find_method("forward")) return std::nullopt;
  switch (*kind) {
    case LeafKind::Conv1d:
    case LeafKind::Conv2d: return recognize_conv(module, *kind);
    case LeafKind::Linear: return recognize_linear(module);
    case LeafKind::BatchNorm1d:
    case LeafKind::BatchNorm2d: return recognize_batch_norm(module, *kind);
    case LeafKind::LayerNorm: return recognize_layer_norm(module);
    case LeafKind::MultiheadAttention: return recognize_attention(module);
    case LeafKind::Embedding: return recognize_embedding(module);
    case LeafKind::Dropout: return recognize_dropout(module);
  }
  return std::nullopt;
}

std::string default_leaf_type_name(LeafKind kind) {
  return std::string("__torch__.compress.nn.") + leaf_kind_name(kind);
}

std::vector<std::pair<std::string, c10::IValue>> leaf_module_attributes(const compress::Node& leaf) {
  if (leaf.leaf != LeafKind::MultiheadAttention) return {};
  const auto& a = std::get<AttentionAttrs>(leaf.attrs);
  return {{"embed_dim", a.embed_dim},
          {"num_heads", a.num_heads},
          {"batch_first", a.batch_first},
          {"dropout", a.dropout},
          {"compress_fused", a.fused}};
}

namespace {

// Self-attention exactly as torch 1.13's nn.functional.multi_head_attention_forward
// computes it for one input, no masks and need_weights=False; the fused kernel
// in eval mode when the original used it (same numerics), the decomposition
// otherwise and always in training (the fused kernel has no dropout or backward).
std::string attention_source(const AttentionAttrs& a, bool bias) {
  int64_t head_dim = a.embed_dim / a.num_heads;
  std::ostringstream s;
  std::string in_b = bias ? "self.in_proj_bias" : "None";
  std::string out_b = bias ? "self.out_proj.bias" : "None";
  s << "def forward(self, x: Tensor) -> Tensor:\n";
  if (a.fused) {
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
    << "    out = torch.view(torch.contiguous(torch.transpose(out, 0, 1)), [tgt_len * bsz, " << a.embed_dim
    << "])\n"
    << "    out = torch.linear(out, self.out_proj.weight, " << out_b << ")\n"
    << "    out = torch.view(out, [tgt_len, bsz, torch.size(out, 1)])\n";
  if (a.batch_first) s << "    out = torch.transpose(out, 1, 0)\n";
  s << "    return out\n";
  return s.str();
}

}  // namespace

std::string leaf_module_source(const compress::Node& leaf) {
  auto has = [&](const std::string& role) { return leaf.params.count(role) != 0; };
  std::ostringstream s;
  switch (leaf.leaf) {
    case LeafKind::Conv1d:
    case LeafKind::Conv2d: {
      const auto& a = std::get<ConvAttrs>(leaf.attrs);
      s << "def forward(self, input: Tensor) -> Tensor:\n"
        << "    return torch." << (leaf.leaf == LeafKind::Conv1d ? "conv1d" : "conv2d") << "(input, self.weight, "
        << opt_param(has("bias"), "bias") << ", " << int_list(a.stride) << ", " << int_list(a.padding) << ", "
        << int_list(a.dilation) << ", " << a.groups << ")\n";
      break;
    }
    case LeafKind::Linear:
      s << "def forward(self, input: Tensor) -> Tensor:\n"
        << "    return torch.linear(input, self.weight, " << opt_param(has("bias"), "bias") << ")\n";
      break;
    case LeafKind::BatchNorm1d:
    case LeafKind::BatchNorm2d: {
      const auto& a = std::get<BatchNormAttrs>(leaf.attrs);
      // Without running statistics, batch statistics are used in eval mode too.
      std::string use_batch_stats = a.track_running_stats ? "self.training" : "True";
      s << "def forward(self, input: Tensor) -> Tensor:\n"
        << "    return torch.batch_norm(input, " << opt_param(has("weight"), "weight") << ", "
        << opt_param(has("bias"), "bias") << ", " << opt_param(has("running_mean"), "running_mean") << ", "
        << opt_param(has("running_var"), "running_var") << ", " << use_batch_stats << ", "
        << float_literal(a.momentum) << ", " << float_literal(a.eps) << ", " << py_bool(a.cudnn_enabled) << ")\n";
      break;
    }
    case LeafKind::LayerNorm: {
      const auto& a = std::get<LayerNormAttrs>(leaf.attrs);
      s << "def forward(self, input: Tensor) -> Tensor:\n"
        << "    return torch.layer_norm(input, " << int_list(a.normalized_shape) << ", "
        << opt_param(has("weight"), "weight") << ", " << opt_param(has("bias"), "bias") << ", "
        << float_literal(a.eps) << ", " << py_bool(a.cudnn_enabled) << ")\n";
      break;
    }
    case LeafKind::Embedding: {
      const auto& a = std::get<EmbeddingAttrs>(leaf.attrs);
      s << "def forward(self, input: Tensor) -> Tensor:\n"
        << "    return torch.embedding(self.weight, input, " << a.padding_idx.value_or(-1) << ", "
        << py_bool(a.scale_grad_by_freq) << ", " << py_bool(a.sparse) << ")\n";
      break;
    }
    case LeafKind::Dropout: {
      const auto& a = std::get<DropoutAttrs>(leaf.attrs);
      s << "def forward(self, input: Tensor) -> Tensor:\n"
        << "    return torch.dropout(input, " << float_literal(a.p) << ", self.training)\n";
      break;
    }
    case LeafKind::MultiheadAttention:
      return attention_source(std::get<AttentionAttrs>(leaf.attrs), has("in_proj_bias"));
  }
  return s.str();
}

}  // namespace compress::detail
