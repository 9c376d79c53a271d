// The `attention` criterion: channels and heads scored by the network's own
// attention signals on data (docs/pruning.md, "Attention-guided pruning").
//
//  - Attention heads (groups "<module>:heads"): Michel et al. 2019's head
//    importance, the accumulated |dLoss/d xi_h| of a gate xi_h = 1 on head h's
//    output. Scaling head h's output by xi is scaling out_proj's columns of
//    head h, so dLoss/d xi_h = sum over those columns of grad * weight; one
//    absolute value per batch, summed over batches.
//  - Channels: an activation-based attention map (Zagoruyko & Komodakis
//    2017: the mean |activation| of the channel) taken where the group's
//    consumers read it, times the L2 norm of the consumer's weights for that
//    channel. Removing input channel c changes a reader's output by
//    a_c * W[:, c], whose norm is |a_c| * ||W[:, c]||: the product is the
//    expected size of what the next layer loses. Summed over consumers,
//    each normalised by its mean.
//  - Channels gated by squeeze-excitation: the above times the gate's mean
//    over the data (what the network itself learned to attend to).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/pruning/prune.h"
#include "compress/train/evaluate.h"
#include "importance.h"

namespace compress::pruning::detail {

namespace {

const c10::Symbol kSigmoid = c10::Symbol::fromQualString("aten::sigmoid");
const c10::Symbol kHardSigmoid = c10::Symbol::fromQualString("aten::hardsigmoid");
const c10::Symbol kMul = c10::Symbol::fromQualString("aten::mul");

// Where a group's channels are read: a tapped value, the dimension holding
// them, and the consumer weight's columns for them.
struct Reader {
  std::string value;  // tap name
  int64_t dim = 1;    // channel dimension of the value
  int64_t offset = 0, stride = 1;
  std::string weight;  // the consumer's weight (state_dict name); its dim 1
  int64_t weight_offset = 0;  // where the channels start in the weight's dim 1 (a grouped conv: within its group)
};

// A squeeze-excitation gate of a group: the sigmoid output that multiplies it.
struct Gate {
  std::string value;
  int64_t offset = 0;
};

struct GroupPlan {
  bool heads = false;
  std::string out_proj;  // heads: out_proj's weight
  int64_t head_dim = 1;
  std::vector<Reader> readers;
  std::vector<Gate> gates;
};

bool is_dense(const Node* n) { return n->is_leaf(LeafKind::Conv2d) || n->is_leaf(LeafKind::Linear); }

// True when `v` reaches an aten::mul within a few shape-only steps
// (unsqueeze, view, reshape, expand, flatten): a gate multiplied into a feature map.
bool multiplies(const Graph& g, ValueId v, int depth = 4) {
  static const std::set<std::string> reshapes = {"aten::unsqueeze", "aten::view", "aten::reshape", "aten::expand",
                                                 "aten::flatten"};
  for (const Use& u : g.value(v).uses) {
    const Node* n = u.user;
    if (n->is_op(kMul)) return true;
    if (depth > 0 && !n->is_leaf() && n->outputs().size() == 1 && reshapes.count(n->op_name()) &&
        multiplies(g, n->output(), depth - 1))
      return true;
  }
  return false;
}

GroupPlan plan_group(const Graph& g, const Group& grp) {
  GroupPlan p;
  if (grp.name.size() > 6 && grp.name.compare(grp.name.size() - 6, 6, ":heads") == 0) {
    p.heads = true;
    for (const ChannelSlice& s : grp.slices) {
      if (s.role == ChannelSlice::Role::In && s.leaf->is_leaf(LeafKind::MultiheadAttention)) {
        p.out_proj = s.param;
        p.head_dim = s.stride;
      }
    }
    return p;
  }
  std::set<std::tuple<std::string, std::string, int64_t>> seen;
  for (const ChannelSlice& s : grp.slices) {
    const Node* leaf = s.leaf;
    if (!is_dense(leaf) || leaf->params.count("weight") == 0 || s.param != leaf->params.at("weight")) continue;
    if (s.role == ChannelSlice::Role::In && leaf->input().is_value()) {
      const ValueId in = leaf->input().value;
      const int64_t rank = static_cast<int64_t>(g.shape(in).size());
      const int64_t dim = leaf->is_leaf(LeafKind::Conv2d) ? 1 : rank - 1;
      // A grouped conv's weight indexes channels within a group: the
      // group's channels sit at that place in each of the input's blocks.
      int64_t blocks = 1, block = 0;
      if (leaf->is_leaf(LeafKind::Conv2d)) {
        const auto& c = std::get<ConvAttrs>(leaf->attrs);
        if (c.groups > 1) blocks = c.groups, block = c.in_channels / c.groups;
      }
      for (int64_t k = 0; k < blocks; ++k) {
        Reader r{g.value(in).name, dim, s.offset + k * block, s.stride, s.param, s.offset};
        if (seen.insert({r.value, r.weight, r.offset}).second) p.readers.push_back(r);
      }
    } else if (s.role == ChannelSlice::Role::Out && !leaf->outputs().empty()) {
      // A producer whose output goes through a sigmoid into a multiply: a
      // gate (one entry per block of it the group holds).
      for (const Use& u : g.value(leaf->output()).uses) {
        if ((u.user->is_op(kSigmoid) || u.user->is_op(kHardSigmoid)) && multiplies(g, u.user->output()))
          p.gates.push_back(Gate{g.value(u.user->output()).name, s.offset});
      }
    }
  }
  return p;
}

// Mean |x| per index of dimension `dim`, summed into `acc` (created on first use).
void add_channel_means(const at::Tensor& x, int64_t dim, at::Tensor& acc) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != dim) dims.push_back(d);
  at::Tensor m = x.detach().abs().to(at::kDouble).mean(dims);
  acc = acc.defined() ? acc + m : m;
}

at::Tensor normalised(const at::Tensor& t) {
  const double mean = t.mean().item<double>();
  return mean > 0 ? t / mean : t;
}

}  // namespace

std::vector<std::vector<double>> attention_importance(const Graph& g, const GroupAnalysis& a, const PruneOptions& o) {
  if (!o.data || o.data->size() == 0) bad_input("the attention criterion needs data (--data)");
  std::vector<GroupPlan> plans;
  std::vector<std::string> taps;
  std::map<std::string, size_t> tap_index;
  auto tap = [&](const std::string& name) {
    if (tap_index.emplace(name, taps.size()).second) taps.push_back(name);
  };
  bool any_heads = false;
  for (const Group& grp : a.groups) {
    plans.push_back(grp.frozen ? GroupPlan{} : plan_group(g, grp));
    for (const Reader& r : plans.back().readers) tap(r.value);
    for (const Gate& gate : plans.back().gates) tap(gate.value);
    any_heads |= plans.back().heads && !plans.back().out_proj.empty();
  }

  // Forward (and backward, for the head gates) over the data.
  ExportOptions eo;
  eo.taps = taps;
  // The fused attention kernel (eval mode) has no backward: export a copy
  // whose attention runs the decomposition (same values).
  std::optional<Graph> unfused;
  if (any_heads) {
    unfused.emplace(g);
    for (Node& node : unfused->nodes())
      if (node.is_leaf(LeafKind::MultiheadAttention)) std::get<AttentionAttrs>(node.attrs).fused = false;
  }
  torch::jit::Module m = export_module(unfused ? *unfused : g, eo);
  m.eval();
  std::map<std::string, at::Tensor> params;
  for (const auto& p : m.named_parameters(true)) {
    p.value.set_requires_grad(any_heads);
    params[p.name] = p.value;
  }
  // The channel dimension of each tap: that of the first reader naming it
  // (a value only gates read holds its channels in dimension 1).
  std::vector<int64_t> tap_dim(taps.size(), 1);
  std::vector<bool> dim_known(taps.size(), false);
  for (const GroupPlan& p : plans)
    for (const Reader& r : p.readers) {
      const size_t t = tap_index.at(r.value);
      if (!dim_known[t]) tap_dim[t] = r.dim, dim_known[t] = true;
    }
  std::vector<at::Tensor> channel_means(taps.size());
  std::map<std::string, at::Tensor> head_scores;  // by out_proj weight: sum over batches of |dL/dxi|
  const data::TensorDataset& ds = *o.data;
  const int64_t n = ds.inputs.size(0);
  int64_t batches = 0;
  for (int64_t b = 0; b < o.taylor_batches && b * o.taylor_batch_size < n; ++b, ++batches) {
    const int64_t start = b * o.taylor_batch_size, len = std::min(o.taylor_batch_size, n - start);
    torch::AutoGradMode grad(any_heads);
    std::vector<at::Tensor> feats;
    at::Tensor logits = train::logits_of(m.forward({ds.inputs.narrow(0, start, len).to(at::kFloat)}), &feats);
    if (logits.dim() != 2 || logits.size(1) < ds.num_classes)
      bad_input("attention: the model's output " + c10::str(logits.sizes()) + " is no [N, classes] logits for the data");
    for (size_t t = 0; t < taps.size(); ++t) add_channel_means(feats.at(t), tap_dim[t], channel_means[t]);
    if (!any_heads) continue;
    for (auto& kv : params) kv.second.mutable_grad() = at::Tensor();
    at::cross_entropy_loss(logits, ds.labels.narrow(0, start, len)).backward();
    torch::NoGradGuard no_grad;
    for (const GroupPlan& p : plans) {
      if (!p.heads || p.out_proj.empty()) continue;
      const at::Tensor& w = params.at(p.out_proj);
      if (!w.grad().defined()) continue;
      // [E, heads * d] -> per head: sum of grad * weight over its columns.
      at::Tensor gw = (w.grad() * w).to(at::kDouble).sum(0).view({-1, p.head_dim}).sum(1).abs();
      at::Tensor& acc = head_scores[p.out_proj];
      acc = acc.defined() ? acc + gw : gw;
    }
  }

  std::vector<std::vector<double>> scores;
  for (size_t gi = 0; gi < a.groups.size(); ++gi) {
    const Group& grp = a.groups[gi];
    const GroupPlan& p = plans[gi];
    at::Tensor total;
    if (p.heads) {
      auto it = head_scores.find(p.out_proj);
      if (it != head_scores.end()) total = it->second;
    } else {
      for (const Reader& r : p.readers) {
        const at::Tensor& means = channel_means[tap_index.at(r.value)];
        // This group's channels: [offset + c * stride, ... + stride) of the value and of the weight's dim 1.
        at::Tensor act = means.narrow(0, r.offset, grp.width * r.stride).view({grp.width, r.stride}).mean(1);
        at::Tensor w = g.param(r.weight).narrow(1, r.weight_offset, grp.width * r.stride).movedim(1, 0);
        // The L2 norm, not the mean |w|: a channel read through a few large
        // weights moves the output as much as their norm says (zoo senet at
        // 50% MACs, before fine-tuning: 71.61% against 69.78% with the mean).
        at::Tensor mag = w.reshape({grp.width, -1}).to(at::kDouble).pow(2).sum(1).sqrt();
        at::Tensor contribution = normalised(act * mag);
        total = total.defined() ? total + contribution : contribution;
      }
      if (total.defined()) {
        // Each gate's mean over its blocks (a grouped layer's channel has one in each).
        std::map<std::string, at::Tensor> gate_means;
        for (const Gate& gate : p.gates) {
          at::Tensor m = channel_means[tap_index.at(gate.value)].narrow(0, gate.offset, grp.width);
          at::Tensor& acc = gate_means[gate.value];
          acc = acc.defined() ? acc + m : m;
        }
        for (const auto& kv : gate_means) total = total * normalised(kv.second / double(batches));
      }
    }
    // Nothing measured (a frozen group, or channels nobody reads through a
    // conv or linear layer): weight magnitude.
    scores.push_back(total.defined() ? tensor_to_vector(total) : l1_importance(g, grp));
  }
  return scores;
}

}  // namespace compress::pruning::detail
