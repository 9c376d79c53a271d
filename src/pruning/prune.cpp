#include "compress/pruning/prune.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <numeric>
#include <optional>
#include <set>

#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/train/evaluate.h"
#include "importance.h"

namespace compress::pruning {

Criterion parse_criterion(const std::string& name) {
  if (name == "l1") return Criterion::L1;
  if (name == "l2") return Criterion::L2;
  if (name == "bn") return Criterion::BatchNorm;
  if (name == "fpgm") return Criterion::Fpgm;
  if (name == "taylor") return Criterion::Taylor;
  if (name == "attention") return Criterion::Attention;
  if (name == "random") return Criterion::Random;
  bad_input("unknown pruning criterion '" + name + "' (l1, l2, bn, fpgm, taylor, attention or random)");
}

const char* criterion_name(Criterion c) {
  switch (c) {
    case Criterion::L1: return "l1";
    case Criterion::L2: return "l2";
    case Criterion::BatchNorm: return "bn";
    case Criterion::Fpgm: return "fpgm";
    case Criterion::Taylor: return "taylor";
    case Criterion::Attention: return "attention";
    case Criterion::Random: return "random";
  }
  return "?";
}

nlohmann::json PruneOptions::to_json() const {
  nlohmann::json j{{"criterion", criterion_name(criterion)}, {"global", global}, {"round_to", round_to},
                   {"min_channels", min_channels}, {"ignore", ignore}, {"seed", seed}};
  if (ratio) j["ratio"] = *ratio;
  if (target_macs) j["target_macs"] = *target_macs;
  if (!ratios.empty()) j["ratios"] = ratios;
  if (target_latency_ms) j["target_latency_ms"] = *target_latency_ms;
  if (target_speedup) j["target_speedup"] = *target_speedup;
  if (latency_aware) j["latency_aware"] = true, j["max_group_ratio"] = max_group_ratio;
  return j;
}

nlohmann::json PruneResult::to_json() const {
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& c : changes) groups.push_back({{"name", c.name}, {"before", c.before}, {"after", c.after}, {"members", c.members}});
  nlohmann::json j{{"macs_before", macs_before}, {"macs_after", macs_after}, {"params_before", params_before},
                   {"params_after", params_after}, {"groups", groups}, {"frozen", frozen}, {"ratio_used", ratio_used},
                   {"seconds", {{"analysis", seconds.analysis}, {"scores", seconds.scores}, {"search", seconds.search},
                                {"removal", seconds.removal}}}};
  if (predicted_ms_before > 0) {
    j["predicted_ms"] = {{"before", predicted_ms_before}, {"after", predicted_ms_after}, {"smallest", predicted_ms_smallest}};
    if (latency_budget_ms > 0) j["predicted_ms"]["budget"] = latency_budget_ms;
  }
  if (!latency_attempts.empty()) {
    nlohmann::json tries = nlohmann::json::array();
    for (const LatencyAttempt& t : latency_attempts)
      tries.push_back({{"budget_ms", t.budget_ms}, {"ratio", t.ratio}, {"predicted_ms", t.predicted_ms}, {"measured_ms", t.measured_ms}});
    j["latency_attempts"] = tries;
    j["latency_met"] = latency_met;
    j["measured_ms"] = measured_ms;
  }
  return j;
}

namespace {

// The slice's part of its tensor, one row per channel.
at::Tensor rows_of(const Graph& g, const ChannelSlice& s, int64_t width) {
  const at::Tensor& t = g.param(s.param);
  return t.narrow(s.dim, s.offset, width * s.stride).movedim(s.dim, 0).reshape({width, -1}).to(at::kDouble);
}

// A layer's weight (not a free parameter such as a positional embedding, which scores nothing).
bool is_weight(const Graph& g, const ChannelSlice& s) { return s.leaf->is_leaf() && g.param(s.param).dim() >= 2; }

std::vector<double> to_vector(const at::Tensor& t) { return detail::tensor_to_vector(t); }

std::vector<double> magnitude(const Graph& g, const Group& grp, bool squared) {
  at::Tensor total = at::zeros({grp.width}, at::kDouble);
  for (const ChannelSlice& s : grp.slices) {
    if (!is_weight(g, s)) continue;
    at::Tensor rows = rows_of(g, s, grp.width);
    at::Tensor score = squared ? rows.pow(2).mean(1).sqrt() : rows.abs().mean(1);
    double mean = score.mean().item<double>();
    if (mean > 0) total += score / mean;  // each layer counts alike, whatever its scale
  }
  return to_vector(total);
}

std::vector<double> batch_norm_scale(const Graph& g, const Group& grp) {
  at::Tensor total = at::zeros({grp.width}, at::kDouble);
  bool found = false;
  for (const ChannelSlice& s : grp.slices) {
    bool bn = s.leaf->is_leaf(LeafKind::BatchNorm1d) || s.leaf->is_leaf(LeafKind::BatchNorm2d);
    if (!bn || s.param != s.leaf->params.at("weight")) continue;
    total += rows_of(g, s, grp.width).abs().mean(1);
    found = true;
  }
  return found ? to_vector(total) : magnitude(g, grp, false);  // no batch norm: L1
}

// FPGM: a filter close to all others (near their geometric median) is the
// most replaceable; its summed distance to the others is its importance.
std::vector<double> geometric_median_distance(const Graph& g, const Group& grp) {
  at::Tensor total = at::zeros({grp.width}, at::kDouble);
  bool found = false;
  for (const ChannelSlice& s : grp.slices) {
    if (s.role != ChannelSlice::Role::Out || !is_weight(g, s)) continue;
    at::Tensor rows = rows_of(g, s, grp.width);
    total += at::cdist(rows.unsqueeze(0), rows.unsqueeze(0)).squeeze(0).sum(1);
    found = true;
  }
  return found ? to_vector(total) : magnitude(g, grp, true);
}

// Sum over a few batches of grad * weight for every parameter, by name: the
// first-order estimate of how the loss changes when a weight goes to zero.
std::map<std::string, at::Tensor> gradient_times_weight(const Graph& g, const PruneOptions& o) {
  torch::jit::Module m = export_module(g);
  m.eval();  // batch norm statistics as they will be used; gradients still flow
  std::map<std::string, at::Tensor> params, acc;
  for (const auto& p : m.named_parameters(true)) {
    p.value.set_requires_grad(true);
    params[p.name] = p.value;
  }
  const data::TensorDataset& ds = *o.data;
  const int64_t n = ds.inputs.size(0);
  for (int64_t b = 0; b < o.taylor_batches && b * o.taylor_batch_size < n; ++b) {
    int64_t start = b * o.taylor_batch_size, len = std::min(o.taylor_batch_size, n - start);
    at::Tensor logits = train::logits_of(m.forward({ds.inputs.narrow(0, start, len)}));
    if (logits.dim() != 2 || logits.size(1) < ds.num_classes)
      bad_input("taylor: the model's output " + c10::str(logits.sizes()) + " is no [N, classes] logits for the data");
    at::Tensor loss = at::cross_entropy_loss(logits, ds.labels.narrow(0, start, len));
    for (auto& kv : params) kv.second.mutable_grad() = at::Tensor();
    loss.backward();
    torch::NoGradGuard no_grad;
    for (auto& kv : params) {
      if (!kv.second.grad().defined()) continue;
      at::Tensor gw = (kv.second.grad() * kv.second).to(at::kDouble);
      auto it = acc.find(kv.first);
      if (it == acc.end()) acc[kv.first] = gw;
      else it->second += gw;
    }
  }
  return acc;
}

// Taylor: a channel's importance is the square of the summed grad * weight
// over all its weights in the group.
std::vector<double> taylor(const Group& grp, const std::map<std::string, at::Tensor>& gw) {
  at::Tensor total = at::zeros({grp.width}, at::kDouble);
  for (const ChannelSlice& s : grp.slices) {
    auto it = gw.find(s.param);
    if (it == gw.end()) continue;
    total += it->second.narrow(s.dim, s.offset, grp.width * s.stride).movedim(s.dim, 0).reshape({grp.width, -1}).sum(1);
  }
  return to_vector(total.pow(2));
}

int64_t keep_count(int64_t width, double ratio, const PruneOptions& o) {
  int64_t keep = width - static_cast<int64_t>(std::floor(width * ratio));
  keep = std::max(keep, std::min(o.min_channels, width));
  if (o.round_to > 1) keep = (keep + o.round_to - 1) / o.round_to * o.round_to;
  return std::min(std::max<int64_t>(keep, 1), width);
}

// The channels with the highest scores, in order.
std::vector<int64_t> top(const std::vector<double>& scores, int64_t keep) {
  std::vector<int64_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  idx.resize(static_cast<size_t>(keep));
  std::sort(idx.begin(), idx.end());
  return idx;
}

using Plan = std::vector<std::vector<int64_t>>;  // kept channels per group (empty: untouched)

Plan plan_for(const GroupAnalysis& a, const std::vector<std::vector<double>>& scores, const std::vector<bool>& prunable,
              const PruneOptions& o, double fraction) {
  Plan plan(a.groups.size());
  if (!o.global || !o.ratios.empty()) {
    for (size_t i = 0; i < a.groups.size(); ++i) {
      if (!prunable[i]) continue;
      double r = fraction;
      if (!o.ratios.empty()) {
        auto it = o.ratios.find(a.groups[i].name);
        if (it == o.ratios.end()) continue;
        r = it->second;
      }
      plan[i] = top(scores[i], keep_count(a.groups[i].width, r, o));
    }
    return plan;
  }
  // Global: scores normalised by each group's largest; one threshold for all.
  std::vector<double> all;
  std::vector<std::vector<double>> norm(a.groups.size());
  for (size_t i = 0; i < a.groups.size(); ++i) {
    if (!prunable[i]) continue;
    double mx = *std::max_element(scores[i].begin(), scores[i].end());
    for (double s : scores[i]) norm[i].push_back(mx > 0 ? s / mx : 0.0);
    all.insert(all.end(), norm[i].begin(), norm[i].end());
  }
  if (all.empty()) return plan;
  std::sort(all.begin(), all.end());
  size_t cut = std::min(all.size() - 1, static_cast<size_t>(std::floor(fraction * all.size())));
  double threshold = fraction <= 0 ? -1.0 : all[cut];
  for (size_t i = 0; i < a.groups.size(); ++i) {
    if (!prunable[i]) continue;
    int64_t above = std::count_if(norm[i].begin(), norm[i].end(), [&](double s) { return s > threshold; });
    double r = 1.0 - static_cast<double>(above) / static_cast<double>(a.groups[i].width);
    plan[i] = top(scores[i], keep_count(a.groups[i].width, r, o));
  }
  return plan;
}

// Positions (in original coordinates) each (parameter, dim) loses under a plan.
using Removed = std::map<std::pair<std::string, int>, std::set<int64_t>>;
Removed removed_positions(const GroupAnalysis& a, const Plan& plan) {
  Removed out;
  for (size_t i = 0; i < a.groups.size(); ++i) {
    if (plan[i].empty()) continue;
    std::vector<bool> kept(static_cast<size_t>(a.groups[i].width), false);
    for (int64_t c : plan[i]) kept[c] = true;
    for (const ChannelSlice& s : a.groups[i].slices) {
      auto& set = out[{s.param, s.dim}];
      for (int64_t c = 0; c < a.groups[i].width; ++c)
        if (!kept[c])
          for (int64_t j = 0; j < s.stride; ++j) set.insert(s.offset + c * s.stride + j);
    }
  }
  return out;
}

// The fraction of `param`'s dimension `dim` a plan keeps.
double kept_fraction(const Graph& g, const Removed& removed, const std::string& param, int dim) {
  auto it = removed.find({param, dim});
  if (it == removed.end()) return 1.0;
  return 1.0 - static_cast<double>(it->second.size()) / static_cast<double>(g.param(param).size(dim));
}

// What MACs and latency predictions read of a plan: the fraction of a
// parameter's dimension kept.
using KeptFraction = std::function<double(const std::string& param, int dim)>;

KeptFraction kept_by(const Graph& g, const Removed& removed) {
  return [&g, &removed](const std::string& param, int dim) { return kept_fraction(g, removed, param, dim); };
}

// Kept fractions as a function of how many channels each group keeps (which
// ones changes neither the MACs nor the predicted latency): the
// latency-aware ranking evaluates thousands of widths, and this needs no
// per-channel sets.
class GroupWidths {
 public:
  GroupWidths(const Graph& g, const GroupAnalysis& a) : a_(a) {
    for (size_t i = 0; i < a.groups.size(); ++i) {
      for (const ChannelSlice& s : a.groups[i].slices) {
        Dim& d = dims_[{s.param, s.dim}];
        d.size = static_cast<double>(g.param(s.param).size(s.dim));
        d.parts.emplace_back(i, s.stride);
      }
    }
  }
  // `widths` (kept channels per group) must outlive the function.
  KeptFraction kept(const std::vector<int64_t>& widths) const {
    return [this, &widths](const std::string& param, int dim) {
      auto it = dims_.find({param, dim});
      if (it == dims_.end()) return 1.0;
      double removed = 0;
      for (const auto& [group, stride] : it->second.parts)
        removed += static_cast<double>((a_.groups[group].width - widths[group]) * stride);
      return 1.0 - removed / it->second.size;
    };
  }

 private:
  struct Dim {
    double size = 1;
    std::vector<std::pair<size_t, int64_t>> parts;  // (group, stride)
  };
  const GroupAnalysis& a_;
  std::map<std::pair<std::string, int>, Dim> dims_;
};

// MACs after a plan without applying it: a conv's or linear layer's MACs
// scale with the fraction of its weight's rows and columns kept.
int64_t macs_after(const ModelProfile& prof, const KeptFraction& kept) {
  double total = 0;
  for (const NodeProfile& np : prof.nodes) {
    double m = static_cast<double>(np.macs);
    const Node* n = np.node;
    if (m > 0 && n->is_leaf() && n->params.count("weight") &&
        (n->is_leaf(LeafKind::Conv1d) || n->is_leaf(LeafKind::Conv2d) || n->is_leaf(LeafKind::Linear))) {
      const std::string& w = n->params.at("weight");
      m *= kept(w, 0) * kept(w, 1);
    } else if (m > 0 && n->is_leaf(LeafKind::MultiheadAttention) && !np.output_shapes.empty()) {
      // The projections (4 tokens E inner) scale with the features and the
      // heads kept, QK^T and AV (2 tokens seq inner) with the heads only.
      const auto& a = std::get<AttentionAttrs>(n->attrs);
      const Shape& s = np.output_shapes.front();
      const double seq = static_cast<double>(a.batch_first ? s.at(1) : s.at(0));
      const double projections = m * 4 * double(a.embed_dim) / (4 * double(a.embed_dim) + 2 * seq);
      const std::string& w = n->params.at("in_proj_weight");
      m = projections * kept(w, 0) * kept(w, 1) + (m - projections) * kept(w, 0);
    }
    total += m;
  }
  return static_cast<int64_t>(std::llround(total));
}

// Latency after a plan without applying it: the lookup table read at each
// layer's kept fractions of its weight's rows (output) and columns (input;
// a depthwise layer's input follows its output), plus the table's overhead
// interpolated in the kept activations (each layer's output size times the
// fraction of it kept) between the smallest model (0) and the unpruned (1).
class LatencyModel {
 public:
  LatencyModel(const Graph& g, const ModelProfile& prof, const latency::LatencyTable& table) : table_(table) {
    std::map<std::string, const NodeProfile*> by_name;
    for (const NodeProfile& np : prof.nodes) by_name[np.name] = &np;
    for (const latency::LayerTable& t : table.layers()) {
      auto it = by_name.find(t.layer.name);
      if (it == by_name.end() || !it->second->node->params.count("weight") || it->second->output_shapes.empty())
        bad_input("the latency table does not match the model: it times '" + t.layer.name + "', which the model has not");
      const Node* n = it->second->node;
      const int64_t out = g.param(n->params.at("weight")).size(0);
      if (out != t.layer.out) {
        bad_input("the latency table does not match the model: '" + t.layer.name + "' has " + std::to_string(out) +
                  " output channels, the table timed " + std::to_string(t.layer.out));
      }
      double size = 1;
      for (int64_t d : it->second->output_shapes.front()) size *= static_cast<double>(d);
      layers_.push_back({n->params.at("weight"), t.layer.depthwise, size});
      full_activations_ += size;
    }
  }
  // Sets the smallest reachable plan, the overhead's other end.
  void set_smallest(const KeptFraction& kept) { smallest_activations_ = activations(kept); }
  double predict_ms(const KeptFraction& kept) const {
    const double span = full_activations_ - smallest_activations_;
    const double t = span > 0 ? std::clamp((activations(kept) - smallest_activations_) / span, 0.0, 1.0) : 1.0;
    double total = table_.overhead_ms(t);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const double out = kept(layers_[i].weight, 0);
      const double in = layers_[i].depthwise ? out : kept(layers_[i].weight, 1);
      total += table_.layer_ms(i, in, out);
    }
    return total;
  }

 private:
  struct Layer {
    std::string weight;
    bool depthwise = false;
    double activations = 0;  // elements of its output
  };
  double activations(const KeptFraction& kept) const {
    double total = 0;
    for (const Layer& l : layers_) total += l.activations * kept(l.weight, 0);
    return total;
  }
  const latency::LatencyTable& table_;
  std::vector<Layer> layers_;
  double full_activations_ = 0, smallest_activations_ = 0;
};

int64_t count_params(const Graph& g) {
  int64_t n = 0;
  for (const auto& kv : g.params)
    if (!kv.second.is_buffer) n += kv.second.tensor.numel();
  return n;
}

void apply(Graph& g, const GroupAnalysis& a, const Plan& plan) {
  torch::NoGradGuard no_grad;
  auto removed = removed_positions(a, plan);
  std::set<const Node*> touched;
  for (const auto& kv : removed) {
    const auto& [param, dim] = kv.first;
    at::Tensor t = g.param(param);
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < t.size(dim); ++i)
      if (!kv.second.count(i)) keep.push_back(i);
    g.set_param(param, t.index_select(dim, at::tensor(keep, at::kLong)).contiguous());
  }
  for (size_t i = 0; i < a.groups.size(); ++i)
    if (!plan[i].empty())
      for (const ChannelSlice& s : a.groups[i].slices) touched.insert(s.leaf);
  // Splits at sizes written in the model follow their parts' new widths.
  for (const SplitSizes& split : a.splits) {
    std::vector<int64_t> sizes;
    for (const auto& part : split.parts) {
      int64_t size = 0;
      for (const SplitSizes::Piece& p : part) {
        const bool shrinks = p.group >= 0 && !plan[static_cast<size_t>(p.group)].empty();
        size += (shrinks ? static_cast<int64_t>(plan[static_cast<size_t>(p.group)].size()) : p.channels) * p.stride;
      }
      sizes.push_back(size);
    }
    Node* n = const_cast<Node*>(split.node);
    n->set_input(split.operand, split.single ? Arg::of_constant(sizes.front()) : Arg::of_constant(c10::IValue(sizes)));
  }
  // Hyper-parameters follow the new tensor shapes.
  for (const Node* cn : touched) {
    if (!cn->is_leaf()) continue;  // an op reading a free parameter has no hyper-parameters
    Node* n = const_cast<Node*>(cn);
    auto size = [&](const char* role, int dim) { return g.param(n->params.at(role)).size(dim); };
    switch (n->leaf) {
      case LeafKind::Conv1d:
      case LeafKind::Conv2d: {
        auto& c = std::get<ConvAttrs>(n->attrs);
        // One input channel a group (depthwise, maybe with a channel
        // multiplier): whole groups go. Otherwise the groups stay and each shrinks.
        const int64_t per_group_out = c.out_channels / c.groups;
        const bool one_input_per_group = c.groups > 1 && c.in_channels == c.groups;
        c.out_channels = size("weight", 0);
        if (one_input_per_group) c.groups = c.out_channels / per_group_out;
        c.in_channels = size("weight", 1) * c.groups;
        break;
      }
      case LeafKind::Linear: {
        auto& l = std::get<LinearAttrs>(n->attrs);
        l.out_features = size("weight", 0);
        l.in_features = size("weight", 1);
        break;
      }
      case LeafKind::BatchNorm1d:
      case LeafKind::BatchNorm2d: {
        auto& b = std::get<BatchNormAttrs>(n->attrs);
        b.num_features = n->params.count("weight") ? size("weight", 0) : size("running_mean", 0);
        break;
      }
      case LeafKind::LayerNorm:
        std::get<LayerNormAttrs>(n->attrs).normalized_shape = {size("weight", 0)};
        break;
      case LeafKind::Embedding:
        std::get<EmbeddingAttrs>(n->attrs).embedding_dim = size("weight", 1);
        break;
      case LeafKind::MultiheadAttention: {
        auto& a = std::get<AttentionAttrs>(n->attrs);
        a.head_dim = a.head_size();  // before embed_dim changes: the heads keep their size
        a.num_heads = size("in_proj_weight", 0) / (3 * a.head_dim);
        a.embed_dim = size("in_proj_weight", 1);
        if (a.inner_dim() != a.embed_dim) a.fused = false;  // the fused kernel needs the full width
        break;
      }
      default: break;
    }
  }
  g.lint();
  g.infer_shapes();
}

// The largest fraction a budget search removes: every group at its minimum.
constexpr double kMost = 0.99;

// Latency-aware ranking (PruneOptions::latency_aware): from the full model,
// repeatedly removes the next step of channels (1/32 of the group, a
// multiple of round_to) from the group whose step loses the least
// importance per time saved, until `met(predicted ms, MACs)`. Importance is
// each group's scores normalised by its largest (as the global ranking
// does), least important first; time is the latency table's prediction. A
// step that saves no predicted time still counts 1% of the MACs share it
// saves, so that a flat table falls back on importance per MAC.
std::vector<int64_t> latency_aware_widths(const GroupAnalysis& a, const std::vector<std::vector<double>>& scores,
                                          const std::vector<bool>& prunable, const PruneOptions& o,
                                          const std::function<double(const std::vector<int64_t>&)>& ms_of,
                                          const std::function<double(const std::vector<int64_t>&)>& macs_of,
                                          const std::function<bool(double, double)>& met) {
  const size_t n = a.groups.size();
  std::vector<int64_t> widths(n), lowest(n), step(n);
  std::vector<std::vector<double>> ascending(n);  // normalised scores
  for (size_t i = 0; i < n; ++i) {
    const int64_t w = a.groups[i].width;
    widths[i] = lowest[i] = w;
    if (!prunable[i]) continue;
    lowest[i] = std::max(keep_count(w, kMost, o), keep_count(w, o.max_group_ratio, o));
    const int64_t unit = std::max<int64_t>(1, o.round_to);
    step[i] = unit * std::max<int64_t>(1, (w + 32 * unit - 1) / (32 * unit));
    const double top_score = *std::max_element(scores[i].begin(), scores[i].end());
    for (double s : scores[i]) ascending[i].push_back(top_score > 0 ? s / top_score : 0.0);
    std::sort(ascending[i].begin(), ascending[i].end());
  }
  double ms = ms_of(widths), macs = macs_of(widths);
  const double full_ms = std::max(ms, 1e-12), full_macs = std::max(macs, 1.0);
  std::vector<int64_t> trial = widths;
  while (!met(ms, macs)) {
    size_t best = n;
    int64_t best_width = 0;
    double best_cost = 0, best_ms = 0, best_macs = 0;
    for (size_t i = 0; i < n; ++i) {
      if (widths[i] <= lowest[i]) continue;
      // The largest multiple of the step below the current width.
      const int64_t next = std::max(lowest[i], (widths[i] - 1) / step[i] * step[i]);
      trial[i] = next;
      const double t = ms_of(trial), m = macs_of(trial);
      trial[i] = widths[i];
      const int64_t w = a.groups[i].width;
      double lost = 0;
      for (int64_t c = w - widths[i]; c < w - next; ++c) lost += ascending[i][size_t(c)];
      const double saved = std::max(0.0, ms - t) / full_ms + 0.01 * std::max(0.0, macs - m) / full_macs;
      const double cost = lost / std::max(saved, 1e-12);
      if (best == n || cost < best_cost) {
        best = i;
        best_width = next;
        best_cost = cost;
        best_ms = t;
        best_macs = m;
      }
    }
    if (best == n) break;  // every group at its minimum (the budget was checked reachable)
    widths[best] = trial[best] = best_width;
    ms = best_ms;
    macs = best_macs;
  }
  return widths;
}

bool ignored(const Group& grp, const std::vector<std::string>& ignore) {
  for (const auto& name : ignore) {
    if (grp.name == name) return true;
    if (std::find(grp.members.begin(), grp.members.end(), name) != grp.members.end()) return true;
  }
  return false;
}

void check_options(const GroupAnalysis& a, const PruneOptions& o) {
  int budgets = (o.ratio ? 1 : 0) + (o.target_macs ? 1 : 0) + (o.ratios.empty() ? 0 : 1) + (o.target_latency_ms ? 1 : 0) +
                (o.target_speedup ? 1 : 0);
  if (budgets != 1)
    bad_input("give exactly one budget: --ratio, --target-macs, --ratios, --target-latency or --target-speedup");
  if (o.target_latency_ms && !(*o.target_latency_ms > 0))
    bad_input("--target-latency must be a positive number of ms, got " + std::to_string(*o.target_latency_ms));
  if (o.target_speedup && !(*o.target_speedup > 1 && std::isfinite(*o.target_speedup)))
    bad_input("--target-speedup must be a number above 1 (1.5: 1.5 times faster), got " + std::to_string(*o.target_speedup));
  const bool latency_budget = o.target_latency_ms || o.target_speedup;
  if (latency_budget && (!o.latency || o.latency->layers().empty()))
    bad_input("a latency budget needs a latency table with at least one measurable layer (convolution or linear)");
  if (o.latency_aware && !o.target_macs && !latency_budget)
    bad_input("the latency-aware ranking chooses widths for a budget: give --target-macs, --target-latency or "
              "--target-speedup, not a ratio");
  if (!(o.max_group_ratio > 0 && o.max_group_ratio <= kMost))
    bad_input("--max-group-ratio must be in (0, 0.99], got " + std::to_string(o.max_group_ratio));
  if (o.latency_aware && (!o.latency || o.latency->layers().empty()))
    bad_input("the latency-aware ranking needs a latency table with at least one measurable layer (convolution or linear)");
  auto in_range = [](double v) { return v > 0 && v < 1; };
  if (o.ratio && !in_range(*o.ratio)) bad_input("--ratio must be in (0, 1), got " + std::to_string(*o.ratio));
  if (o.target_macs && !in_range(*o.target_macs))
    bad_input("--target-macs must be in (0, 1), got " + std::to_string(*o.target_macs));
  if (o.round_to < 1) bad_input("--round-to must be at least 1");
  if (o.min_channels < 1) bad_input("the minimum width must be at least 1");
  std::vector<std::string> names;
  for (const Group& grp : a.groups) names.push_back(grp.name);
  for (const auto& kv : o.ratios) {
    if (a.find(kv.first) < 0) {
      std::string best = closest_name(kv.first, names);
      bad_input("ratios: '" + kv.first + "' names no pruning group" + (best.empty() ? "" : " (did you mean '" + best + "'?)"));
    }
    if (!in_range(kv.second)) bad_input("ratios: '" + kv.first + "' must be in (0, 1), got " + std::to_string(kv.second));
  }
  for (const auto& name : o.ignore) {
    bool known = std::any_of(a.groups.begin(), a.groups.end(), [&](const Group& grp) { return ignored(grp, {name}); });
    if (!known) bad_input("--ignore: '" + name + "' is no pruning group or layer in one");
  }
}

}  // namespace

namespace detail {

std::vector<double> tensor_to_vector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

std::vector<double> l1_importance(const Graph& g, const Group& grp) { return magnitude(g, grp, false); }

}  // namespace detail

std::vector<std::vector<double>> channel_importance(const Graph& g, const GroupAnalysis& a, const PruneOptions& o) {
  if (o.criterion == Criterion::Attention) return detail::attention_importance(g, a, o);
  std::vector<std::vector<double>> scores;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  std::map<std::string, at::Tensor> gw;
  if (o.criterion == Criterion::Taylor) {
    if (!o.data || o.data->size() == 0) bad_input("the taylor criterion needs data (--data)");
    gw = gradient_times_weight(g, o);
  }
  for (const Group& grp : a.groups) {
    switch (o.criterion) {
      case Criterion::L1: scores.push_back(magnitude(g, grp, false)); break;
      case Criterion::L2: scores.push_back(magnitude(g, grp, true)); break;
      case Criterion::BatchNorm: scores.push_back(batch_norm_scale(g, grp)); break;
      case Criterion::Fpgm: scores.push_back(geometric_median_distance(g, grp)); break;
      case Criterion::Taylor: scores.push_back(taylor(grp, gw)); break;
      case Criterion::Random: scores.push_back(to_vector(at::rand({grp.width}, gen, at::kDouble))); break;
      case Criterion::Attention: break;  // above
    }
  }
  return scores;
}

PruneResult prune(Graph& g, const PruneOptions& o) {
  using Clock = std::chrono::steady_clock;
  auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  PruneResult result;
  auto t = Clock::now();
  GroupAnalysis a = analyze_groups(g);
  result.seconds.analysis = seconds_since(t);
  check_options(a, o);
  t = Clock::now();
  ModelProfile before = profile_model(g);
  result.macs_before = before.total_macs;
  result.params_before = count_params(g);
  std::vector<bool> prunable;
  for (const Group& grp : a.groups) {
    bool ok = !grp.frozen && !ignored(grp, o.ignore) && grp.width > std::min(o.min_channels, grp.width);
    prunable.push_back(ok);
    if (grp.frozen) result.frozen.push_back(grp.name + ": " + grp.frozen_reason);
    else if (ignored(grp, o.ignore)) result.frozen.push_back(grp.name + ": ignored (--ignore)");
  }
  auto scores = channel_importance(g, a, o);
  result.seconds.scores = seconds_since(t);
  t = Clock::now();

  std::optional<LatencyModel> latency;
  PruneOptions uniform = o;  // the smallest model a budget reaches: every prunable group at its minimum
  uniform.ratios.clear();
  uniform.global = o.global && !o.latency_aware;  // the latency-aware ranking's minimum is every group's
  const Removed smallest = removed_positions(a, plan_for(a, scores, prunable, uniform, kMost));
  // The least a budget can keep: the smallest model, or with the
  // latency-aware ranking every group at its cap.
  const Removed least =
      o.latency_aware ? removed_positions(a, plan_for(a, scores, prunable, uniform, o.max_group_ratio)) : smallest;
  if (o.latency) {
    latency.emplace(g, before, *o.latency);
    latency->set_smallest(kept_by(g, smallest));  // the table's smallest overhead is this model's
    result.predicted_ms_before = latency->predict_ms(kept_by(g, {}));
    result.predicted_ms_smallest = latency->predict_ms(kept_by(g, least));
  }
  // The latency budget in ms (a speed-up is over this table's unpruned prediction).
  std::optional<double> budget_ms = o.target_latency_ms;
  if (o.target_speedup) budget_ms = result.predicted_ms_before / *o.target_speedup;
  if (budget_ms) result.latency_budget_ms = *budget_ms;
  auto macs_at = [&](double f) {
    const Removed removed = removed_positions(a, plan_for(a, scores, prunable, o, f));
    return static_cast<double>(macs_after(before, kept_by(g, removed)));
  };
  auto ms_at = [&](double f) {
    const Removed removed = removed_positions(a, plan_for(a, scores, prunable, o, f));
    return latency->predict_ms(kept_by(g, removed));
  };
  // The smallest fraction in [0, kMost] whose plan's cost meets the goal
  // (cost falls as the fraction grows).
  auto smallest_fraction = [&](const std::function<double(double)>& cost, double goal) {
    if (cost(0) <= goal) return 0.0;
    double lo = 0, hi = kMost;
    for (int it = 0; it < 30; ++it) {
      double mid = 0.5 * (lo + hi);
      (cost(mid) <= goal ? hi : lo) = mid;
    }
    return hi;
  };

  double fraction = o.ratio.value_or(0.0);
  std::optional<double> macs_goal;
  if (o.target_macs) {
    macs_goal = *o.target_macs * static_cast<double>(before.total_macs);
    const double least_macs = static_cast<double>(macs_after(before, kept_by(g, least)));
    if (least_macs > *macs_goal) {
      bad_input("impossible budget: pruning every prunable group to its minimum width" +
                std::string(o.latency_aware ? " (--max-group-ratio " + c10::str(o.max_group_ratio) + ")" : "") + " keeps " +
                std::to_string(static_cast<int>(std::lround(100.0 * least_macs / before.total_macs))) +
                "% of the MACs, more than the " + std::to_string(static_cast<int>(std::lround(100 * *o.target_macs))) +
                "% asked for");
    }
  }
  if (budget_ms && result.predicted_ms_smallest > *budget_ms) {
    const std::string all_at_minimum = "pruning every prunable group to its minimum width" +
                                 std::string(o.latency_aware ? " (--max-group-ratio " + c10::str(o.max_group_ratio) + ")" : "");
    const std::string setting = "batch " + std::to_string(o.latency->options().batch) + ", " +
                                std::to_string(o.latency->options().threads) + " thread(s)";
    if (o.target_speedup) {
      bad_input("impossible budget: " + all_at_minimum + " is predicted " +
                c10::str(result.predicted_ms_before / result.predicted_ms_smallest) + "x faster than the unpruned model (" +
                c10::str(result.predicted_ms_before) + " -> " + c10::str(result.predicted_ms_smallest) + " ms, " + setting +
                "), less than the " + c10::str(*o.target_speedup) + "x asked for");
    }
    bad_input("impossible budget: " + all_at_minimum + " is predicted at " + c10::str(result.predicted_ms_smallest) + " ms (" +
              setting + "), more than the " + c10::str(*budget_ms) + " ms asked for");
  }
  Plan plan;
  if (o.latency_aware) {
    const GroupWidths widths_model(g, a);
    auto ms_of = [&](const std::vector<int64_t>& w) { return latency->predict_ms(widths_model.kept(w)); };
    auto macs_of = [&](const std::vector<int64_t>& w) { return static_cast<double>(macs_after(before, widths_model.kept(w))); };
    auto met = [&](double ms, double macs) {
      return o.target_macs ? macs <= *macs_goal : ms <= *budget_ms;
    };
    const std::vector<int64_t> widths = latency_aware_widths(a, scores, prunable, o, ms_of, macs_of, met);
    plan.assign(a.groups.size(), {});
    double total = 0, kept = 0;
    for (size_t i = 0; i < a.groups.size(); ++i) {
      if (!prunable[i]) continue;
      total += static_cast<double>(a.groups[i].width);
      kept += static_cast<double>(widths[i]);
      plan[i] = top(scores[i], widths[i]);
    }
    fraction = total > 0 ? 1.0 - kept / total : 0.0;
  } else {
    if (o.target_macs) fraction = smallest_fraction(macs_at, *macs_goal);
    if (budget_ms) fraction = smallest_fraction(ms_at, *budget_ms);
    plan = plan_for(a, scores, prunable, o, fraction);
  }
  result.ratio_used = fraction;
  for (size_t i = 0; i < a.groups.size(); ++i) {
    if (plan[i].empty() || static_cast<int64_t>(plan[i].size()) == a.groups[i].width) {
      plan[i].clear();
      continue;
    }
    result.changes.push_back(GroupChange{a.groups[i].name, a.groups[i].width, static_cast<int64_t>(plan[i].size()),
                                         a.groups[i].members});
  }
  if (latency) {
    const Removed removed = removed_positions(a, plan);
    result.predicted_ms_after = latency->predict_ms(kept_by(g, removed));
  }
  result.seconds.search = seconds_since(t);
  t = Clock::now();
  apply(g, a, plan);
  result.macs_after = profile_model(g).total_macs;
  result.params_after = count_params(g);
  result.seconds.removal = seconds_since(t);
  return result;
}

PruneResult prune_to_latency(Graph& graph, const PruneOptions& options, const std::function<double(const Graph&)>& measure,
                             double tolerance, int max_attempts) {
  if (!options.target_latency_ms && !options.target_speedup)
    bad_input("prune_to_latency needs a latency budget (target_latency_ms or target_speedup)");
  if (!(tolerance >= 0) || max_attempts < 1) bad_input("prune_to_latency: the tolerance must be >= 0 and the tries >= 1");
  double target = options.target_latency_ms.value_or(0);  // a speed-up's: known after the first try
  PruneOptions o = options;
  std::optional<Graph> chosen;
  PruneResult chosen_result;
  std::vector<LatencyAttempt> attempts;
  for (int k = 0; k < max_attempts; ++k) {
    Graph g = graph;
    PruneResult r = prune(g, o);
    if (k == 0) target = r.latency_budget_ms;
    const double ms = measure(g);
    attempts.push_back({r.latency_budget_ms, r.ratio_used, r.predicted_ms_after, ms});
    const bool met = ms <= target * (1 + tolerance);
    if (!chosen || met || ms < chosen_result.measured_ms) {
      r.measured_ms = ms;
      r.latency_met = met;
      chosen = std::move(g);
      chosen_result = std::move(r);
    }
    if (met) break;
    // Slower than predicted: ask the prediction for proportionally less,
    // never below the smallest model (reached already: nothing left to try).
    if (r.latency_budget_ms <= chosen_result.predicted_ms_smallest) break;
    o.target_speedup.reset();
    o.target_latency_ms = std::max(r.latency_budget_ms * target / ms, chosen_result.predicted_ms_smallest);
  }
  chosen_result.latency_attempts = attempts;
  chosen_result.latency_budget_ms = target;  // the budget asked for, not a tightened try's
  graph = std::move(*chosen);
  return chosen_result;
}

PruneResult prune_channels(Graph& g, const std::map<std::string, std::vector<int64_t>>& keep) {
  GroupAnalysis a = analyze_groups(g);
  PruneResult result;
  result.macs_before = profile_model(g).total_macs;
  result.params_before = count_params(g);
  Plan plan(a.groups.size());
  for (const auto& [name, channels] : keep) {
    const int i = a.find(name);
    if (i < 0) bad_input("prune_channels: '" + name + "' names no pruning group");
    const Group& grp = a.groups[size_t(i)];
    if (grp.frozen) bad_input("prune_channels: group '" + name + "' may not shrink (" + grp.frozen_reason + ")");
    std::set<int64_t> unique(channels.begin(), channels.end());
    if (unique.empty()) bad_input("prune_channels: group '" + name + "' would keep no channel");
    if (*unique.begin() < 0 || *unique.rbegin() >= grp.width) {
      bad_input("prune_channels: group '" + name + "' has " + std::to_string(grp.width) + " channels, index " +
                std::to_string(*unique.begin() < 0 ? *unique.begin() : *unique.rbegin()) + " is out of range");
    }
    if (int64_t(unique.size()) == grp.width) continue;
    plan[size_t(i)].assign(unique.begin(), unique.end());
    result.changes.push_back(GroupChange{grp.name, grp.width, int64_t(unique.size()), grp.members});
  }
  apply(g, a, plan);
  result.macs_after = profile_model(g).total_macs;
  result.params_after = count_params(g);
  return result;
}

}  // namespace compress::pruning
