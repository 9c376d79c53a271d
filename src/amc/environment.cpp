#include "compress/amc/environment.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <sstream>

#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/pruning/groups.h"
#include "compress/train/evaluate.h"

namespace compress::amc {

namespace {

bool is_mac_layer(const Node* n) {
  return n->is_leaf() && n->params.count("weight") &&
         (n->is_leaf(LeafKind::Conv2d) || n->is_leaf(LeafKind::Linear));
}

bool is_depthwise(const Node* n) {
  if (!n->is_leaf(LeafKind::Conv2d)) return false;
  const auto& c = std::get<ConvAttrs>(n->attrs);
  return c.groups > 1 && c.groups == c.in_channels && c.groups == c.out_channels;
}

// The convolutions and linear layers that carry MACs, in graph order: the
// layers of the cost model and of the latency table (latency::latency_layers),
// in the same order.
std::vector<const NodeProfile*> mac_layers(const ModelProfile& profile) {
  std::vector<const NodeProfile*> out;
  for (const NodeProfile& np : profile.nodes)
    if (np.macs > 0 && is_mac_layer(np.node)) out.push_back(&np);
  return out;
}

std::string format_double(double v, int digits) {
  std::ostringstream s;
  s.precision(digits);
  s << std::fixed << v;
  return s.str();
}

}  // namespace

// Cost as a function of the kept widths: each layer's MACs scale with the
// fraction of its weight's rows (dim 0) and columns (dim 1) kept, exactly as
// the pruning engine counts them; latency reads the same fractions from the
// lookup table.
struct PruningEnvironment::CostModel {
  struct Dim {
    int64_t size = 1;
    std::vector<std::pair<size_t, int64_t>> parts;  // (step, positions per channel)
  };
  struct Layer {
    double macs = 0;
    Dim dims[2];
    bool depthwise = false;
  };
  std::vector<Layer> layers;
  double fixed_macs = 0;  // layers no prunable group touches, and other MAC-bearing ops
  const latency::LatencyTable* table = nullptr;
  std::vector<int64_t> widths, smallest;
  std::vector<double> spatial;  // each group's activation size per channel (H x W of its producer's output)

  double kept(const Dim& d, const std::vector<int64_t>& keep) const {
    double removed = 0;
    for (const auto& [step, stride] : d.parts) removed += static_cast<double>((widths[step] - keep[step]) * stride);
    return std::max(0.0, 1.0 - removed / static_cast<double>(d.size));
  }
  double macs(const std::vector<int64_t>& keep) const {
    double total = fixed_macs;
    for (const Layer& l : layers) total += l.macs * kept(l.dims[0], keep) * kept(l.dims[1], keep);
    return total;
  }
  // Where the kept activation channels lie between the smallest model (0)
  // and the unpruned one (1): what the overhead is interpolated in.
  double activation_position(const std::vector<int64_t>& keep) const {
    double kept = 0, full = 0, least = 0;
    for (size_t i = 0; i < widths.size(); ++i) {
      kept += spatial[i] * static_cast<double>(keep[i]);
      full += spatial[i] * static_cast<double>(widths[i]);
      least += spatial[i] * static_cast<double>(smallest[i]);
    }
    return full > least ? (kept - least) / (full - least) : 1.0;
  }
  double latency_ms(const std::vector<int64_t>& keep) const {
    double total = table->overhead_ms(activation_position(keep));
    for (size_t i = 0; i < layers.size(); ++i) {
      const double out = kept(layers[i].dims[0], keep);
      const double in = layers[i].depthwise ? out : kept(layers[i].dims[1], keep);
      total += table->layer_ms(i, in, out);
    }
    return total;
  }
  double operator()(const std::vector<int64_t>& keep) const { return table ? latency_ms(keep) : macs(keep); }
};

const std::vector<std::string>& PruningEnvironment::state_feature_names() {
  static const std::vector<std::string> names{"index",       "kind",         "in_width",     "out_width",
                                              "kernel",      "stride",       "feature_size", "group_macs",
                                              "cost_removed", "macs_left",   "previous_action"};
  return names;
}

PruningEnvironment::PruningEnvironment(const Graph& graph, const data::TensorDataset& validation,
                                       const data::TensorDataset* calibration, PruningEnvConfig config)
    : graph_(graph), validation_(validation), calibration_(calibration), config_(config),
      cost_(std::make_unique<CostModel>()) {
  if (config_.target_macs.has_value() == config_.target_latency_ms.has_value())
    bad_input("give exactly one budget: --target-macs or --target-latency");
  if (config_.target_macs && !(*config_.target_macs > 0 && *config_.target_macs < 1))
    bad_input("--target-macs must be in (0, 1), got " + std::to_string(*config_.target_macs));
  if (config_.target_latency_ms && !(*config_.target_latency_ms > 0))
    bad_input("--target-latency must be a positive number of ms, got " + std::to_string(*config_.target_latency_ms));
  if (!(config_.min_keep > 0 && config_.min_keep <= config_.max_keep && config_.max_keep <= 1))
    bad_input("keep ratios need 0 < min <= max <= 1");
  if (validation_.size() == 0) bad_input("the validation set is empty");
  if (config_.recalibrate_batches > 0 && (!calibration_ || calibration_->size() == 0))
    bad_input("batch-norm recalibration needs a non-empty calibration set");

  pruning::GroupAnalysis analysis = pruning::analyze_groups(graph_);
  ModelProfile profile = profile_model(graph_);
  std::map<std::string, size_t> step_of;  // group name -> step
  std::vector<const pruning::Group*> groups;
  for (const pruning::Group& g : analysis.groups) {
    if (g.frozen || g.width < 2) continue;
    step_of[g.name] = groups.size();
    groups.push_back(&g);
  }
  if (groups.empty()) bad_input("the model has no prunable channel group (compress inspect --groups says why)");

  // Cost model: which steps shrink each layer's weight dimensions.
  CostModel& cm = *cost_;
  for (const pruning::Group* g : groups) cm.widths.push_back(g->width);
  std::vector<const NodeProfile*> layers = mac_layers(profile);
  double all_macs = static_cast<double>(profile.total_macs);
  double layer_macs = 0;
  for (const NodeProfile* np : layers) {
    CostModel::Layer l;
    l.macs = static_cast<double>(np->macs);
    l.depthwise = is_depthwise(np->node);
    const std::string& w = np->node->params.at("weight");
    for (int d = 0; d < 2; ++d) l.dims[d].size = graph_.param(w).size(d);
    for (const pruning::Group* g : groups)
      for (const pruning::ChannelSlice& s : g->slices)
        if (s.param == w && s.dim < 2) l.dims[s.dim].parts.push_back({step_of[g->name], s.stride});
    layer_macs += l.macs;
    cm.layers.push_back(std::move(l));
  }
  cm.fixed_macs = all_macs - layer_macs;

  if (config_.target_latency_ms) {
    if (!config_.latency || config_.latency->layers().empty())
      bad_input("a latency budget needs a latency table with at least one measurable layer (convolution or linear)");
    if (config_.latency->layers().size() != layers.size())
      bad_input("the latency table does not match the model (" + std::to_string(config_.latency->layers().size()) +
                " layers, the model has " + std::to_string(layers.size()) + ")");
    cm.table = config_.latency;
  }

  // The static state features.
  for (size_t i = 0; i < groups.size(); ++i) {
    const pruning::Group& g = *groups[i];
    GroupStep s;
    s.name = g.name;
    s.width = g.width;
    s.min_keep = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(config_.min_keep * g.width - 1e-9)), 1, g.width);
    const Node* p = g.producers.empty() ? nullptr : g.producers.front();
    float kind = 3, in = 0, kernel = 1, stride = 1, feature = 1;
    double spatial = 1;
    if (p) {
      const Shape& out = graph_.shape(p->output());
      for (size_t d = 2; d < out.size(); ++d) spatial *= static_cast<double>(out[d]);
      // A grouped layer's channel appears once in each of its blocks.
      if (p->is_leaf(LeafKind::Conv2d)) {
        int64_t blocks = 0;
        for (const pruning::ChannelSlice& sl : g.slices)
          blocks += sl.leaf == p && sl.dim == 0 && sl.param == p->params.at("weight");
        spatial *= static_cast<double>(std::max<int64_t>(blocks, 1));
      }
    }
    cm.spatial.push_back(spatial);
    if (p && p->is_leaf(LeafKind::Conv2d)) {
      const auto& c = std::get<ConvAttrs>(p->attrs);
      kind = is_depthwise(p) ? 1 : 0;
      in = static_cast<float>(c.in_channels);
      kernel = static_cast<float>(c.kernel.empty() ? 1 : c.kernel[0]);
      stride = static_cast<float>(c.stride.empty() ? 1 : c.stride[0]);
      const Shape& out = graph_.shape(p->output());
      feature = static_cast<float>(out.size() >= 3 ? out[out.size() - 2] : 1);
    } else if (p && p->is_leaf(LeafKind::Linear)) {
      kind = 2;
      in = static_cast<float>(std::get<LinearAttrs>(p->attrs).in_features);
    }
    double own = 0, later = 0;
    for (const CostModel::Layer& l : cm.layers) {
      bool mine = false, theirs = false;
      for (const auto& d : l.dims)
        for (const auto& part : d.parts) {
          mine = mine || part.first == i;
          theirs = theirs || part.first > i;
        }
      if (mine) own += l.macs;
      if (theirs) later += l.macs;
    }
    s.features = {static_cast<float>(i), kind, in, static_cast<float>(g.width), kernel, stride, feature,
                  static_cast<float>(own / all_macs), 0.f, static_cast<float>(later / all_macs), 0.f};
    steps_.push_back(std::move(s));
  }
  // Min-max normalisation of the static features (AMC), columns 0..6.
  feature_min_.assign(7, 0.f);
  feature_max_.assign(7, 0.f);
  for (size_t c = 0; c < 7; ++c) {
    feature_min_[c] = feature_max_[c] = steps_[0].features[c];
    for (const GroupStep& s : steps_) {
      feature_min_[c] = std::min(feature_min_[c], s.features[c]);
      feature_max_[c] = std::max(feature_max_[c], s.features[c]);
    }
  }

  std::vector<int64_t> smallest;
  for (const GroupStep& s : steps_) smallest.push_back(s.min_keep);
  cm.smallest = smallest;
  if (config_.target_macs) {
    budget_ = *config_.target_macs * all_macs;
    if (cost(smallest) > budget_ * (1 + 1e-12)) {
      bad_input("impossible budget: every prunable group at its minimum (keep ratio " +
                format_double(config_.min_keep, 2) + ") keeps " + format_double(100.0 * cost(smallest) / all_macs, 1) +
                "% of the MACs, more than the " + format_double(100.0 * *config_.target_macs, 1) + "% asked for");
    }
  } else {
    budget_ = *config_.target_latency_ms;
    if (cost(smallest) > budget_) {
      bad_input("impossible budget: every prunable group at its minimum (keep ratio " +
                format_double(config_.min_keep, 2) + ") is predicted at " + format_double(cost(smallest), 3) +
                " ms, more than the " + format_double(budget_, 3) + " ms asked for");
    }
  }
}

PruningEnvironment::~PruningEnvironment() = default;

int64_t PruningEnvironment::state_size() const { return static_cast<int64_t>(state_feature_names().size()); }

double PruningEnvironment::cost(const std::vector<int64_t>& keep) const { return (*cost_)(keep); }

double PruningEnvironment::full_cost() const { return cost(cost_->widths); }

int64_t PruningEnvironment::macs(const std::vector<int64_t>& keep) const {
  return static_cast<int64_t>(std::llround(cost_->macs(keep)));
}

std::vector<int64_t> PruningEnvironment::keep_counts(const std::vector<double>& keep_ratios) const {
  if (keep_ratios.size() != steps_.size()) bad_input("expected one keep ratio per prunable group");
  std::vector<int64_t> keep;
  for (size_t i = 0; i < steps_.size(); ++i) {
    keep.push_back(std::clamp<int64_t>(std::llround(keep_ratios[i] * static_cast<double>(steps_[i].width)),
                                       steps_[i].min_keep, steps_[i].width));
  }
  return keep;
}

at::Tensor PruningEnvironment::state() const {
  const GroupStep& s = steps_[t_];
  std::vector<float> f = s.features;
  for (size_t c = 0; c < 7; ++c) {
    float span = feature_max_[c] - feature_min_[c];
    f[c] = span > 0 ? (f[c] - feature_min_[c]) / span : 0.f;
  }
  f[8] = static_cast<float>((full_cost() - cost(keep_)) / full_cost());  // keep_ holds widths past t_
  f[10] = static_cast<float>(previous_action_);
  return at::tensor(f);
}

at::Tensor PruningEnvironment::reset() {
  t_ = 0;
  keep_ = cost_->widths;
  previous_action_ = 1;
  return state();
}

PruningEnvironment::StepResult PruningEnvironment::step(double action) {
  if (t_ >= steps_.size()) bad_input("step() after the episode ended (call reset())");
  const GroupStep& s = steps_[t_];
  const double ratio = std::clamp(action, config_.min_keep, config_.max_keep);
  int64_t k = std::clamp<int64_t>(std::llround(ratio * static_cast<double>(s.width)), s.min_keep, s.width);
  // The largest count <= k that leaves the budget reachable with every later
  // group at its minimum (cost grows with every width, so bisect).
  std::vector<int64_t> trial = keep_;
  for (size_t j = t_ + 1; j < steps_.size(); ++j) trial[j] = steps_[j].min_keep;
  auto fits = [&](int64_t count) {
    trial[t_] = count;
    return cost(trial) <= budget_;
  };
  if (!fits(k)) {
    int64_t lo = s.min_keep, hi = k;  // fits(lo) holds by induction; fits(hi) does not
    while (hi - lo > 1) {
      int64_t mid = (lo + hi) / 2;
      (fits(mid) ? lo : hi) = mid;
    }
    k = lo;
  }
  keep_[t_] = k;
  StepResult r;
  r.applied = static_cast<double>(k) / static_cast<double>(s.width);
  previous_action_ = r.applied;
  ++t_;
  r.done = t_ == steps_.size();
  if (r.done) {
    --t_;
    r.next_state = state();
    ++t_;
  } else {
    r.next_state = state();
  }
  return r;
}

std::map<std::string, double> PruningEnvironment::prune_ratios(const std::vector<int64_t>& keep) const {
  std::map<std::string, double> ratios;
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (keep[i] >= steps_[i].width) continue;
    // Half a channel above the exact fraction: the engine floors width *
    // ratio, so this removes exactly width - keep channels.
    ratios[steps_[i].name] = (static_cast<double>(steps_[i].width - keep[i]) + 0.5) / static_cast<double>(steps_[i].width);
  }
  return ratios;
}

std::vector<int64_t> PruningEnvironment::keep_for_prune_ratios(const std::map<std::string, double>& ratios,
                                                               const std::string& source) const {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < steps_.size(); ++i) index[steps_[i].name] = i;
  std::vector<int64_t> keep;
  for (const GroupStep& s : steps_) keep.push_back(s.width);
  for (const auto& [name, ratio] : ratios) {
    auto it = index.find(name);
    if (it == index.end()) bad_input(source + ": '" + name + "' is no prunable group of this model");
    if (!(ratio >= 0 && ratio < 1)) bad_input(source + ": the ratio of '" + name + "' must be in [0, 1)");
    const int64_t width = steps_[it->second].width;
    // The engine removes floor(width x ratio) channels and keeps at least one.
    keep[it->second] = std::max<int64_t>(1, width - static_cast<int64_t>(std::floor(static_cast<double>(width) * ratio)));
  }
  return keep;
}

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

Graph PruningEnvironment::pruned(const std::vector<int64_t>& keep, pruning::PruneResult* result) const {
  auto start = std::chrono::steady_clock::now();
  Graph g = graph_;
  pruning::PruneOptions o;
  o.ratios = prune_ratios(keep);
  o.criterion = pruning::Criterion::L1;
  if (!o.ratios.empty()) {
    pruning::PruneResult r = pruning::prune(g, o);
    if (result) *result = r;
  } else if (result) {
    *result = pruning::PruneResult{};
  }
  times_.prune += seconds_since(start);
  start = std::chrono::steady_clock::now();
  if (config_.recalibrate_batches > 0)
    pruning::recalibrate_batch_norm(g, *calibration_, config_.recalibrate_batches, config_.batch_size);
  times_.recalibrate += seconds_since(start);
  return g;
}

double PruningEnvironment::accuracy(const std::vector<int64_t>& keep) {
  auto it = accuracy_cache_.find(keep);
  if (it != accuracy_cache_.end()) return it->second;
  Graph g = pruned(keep);
  const auto start = std::chrono::steady_clock::now();
  torch::jit::Module m = export_module(g);
  m.eval();
  double top1 = train::evaluate(m, validation_, 500).top1;
  times_.evaluate += seconds_since(start);
  ++times_.scored;
  accuracy_cache_[keep] = top1;
  return top1;
}

double PruningEnvironment::activation_position(const std::vector<int64_t>& keep) const {
  return cost_->activation_position(keep);
}

double PruningEnvironment::accuracy_on(const std::vector<int64_t>& keep, const data::TensorDataset& data) const {
  torch::jit::Module m = export_module(pruned(keep));
  m.eval();
  return train::evaluate(m, data, 500).top1;
}

double PruningEnvironment::reward(double accuracy, int64_t macs) const {
  const double error = 1.0 - accuracy;
  return config_.log_macs_reward ? -error * std::log(std::max(1.0, static_cast<double>(macs))) : -error;
}

std::vector<int64_t> PruningEnvironment::filled(const std::vector<int64_t>& keep) const {
  auto widen = [&](double t) {
    std::vector<int64_t> k = keep;
    for (size_t i = 0; i < k.size(); ++i)
      k[i] += static_cast<int64_t>(std::floor(t * static_cast<double>(steps_[i].width - keep[i])));
    return k;
  };
  if (cost(widen(1)) <= budget_) return widen(1);
  double lo = 0, hi = 1;  // widen(lo) fits, widen(hi) does not; the cost grows with t
  for (int i = 0; i < 40; ++i) {
    const double mid = (lo + hi) / 2;
    (cost(widen(mid)) <= budget_ ? lo : hi) = mid;
  }
  return widen(lo);
}

double PruningEnvironment::finish() {
  if (t_ != steps_.size()) bad_input("finish() before the episode's last step");
  if (config_.fill_budget) keep_ = filled(keep_);
  last_ = EpisodeOutcome{};
  last_.keep = keep_;
  last_.cost = cost(keep_);
  last_.macs = macs(keep_);
  last_.cached = accuracy_cache_.count(keep_) > 0;
  last_.accuracy = accuracy(keep_);
  last_.reward = reward(last_.accuracy, last_.macs);
  return last_.reward;
}

SearchData split_search_data(const data::TensorDataset& train, int64_t val_size, int64_t recalibrate_batches,
                             uint64_t seed, const std::string& source, int64_t selection_size) {
  if (val_size <= 0) bad_input("the validation size must be positive: the search needs a validation set");
  if (train.size() == 0) bad_input(source + ": the dataset is empty, no validation set");
  if (val_size >= train.size())
    bad_input("a validation set of " + std::to_string(val_size) + " leaves no training data (" + source + " has " +
              std::to_string(train.size()) + " samples)");
  auto [rest, held] = data::train_val_split(train, static_cast<double>(val_size) / static_cast<double>(train.size()), seed);
  const int64_t calibration_size = std::min(rest.size(), std::max<int64_t>(1, recalibrate_batches) * 64);
  SearchData split{data::take(held, val_size), data::take(rest, calibration_size), {}};
  const int64_t selection = std::min(std::max<int64_t>(0, selection_size), rest.size() - calibration_size);
  split.selection = {rest.inputs.narrow(0, calibration_size, selection), rest.labels.narrow(0, calibration_size, selection),
                     rest.num_classes, rest.name};
  return split;
}

std::vector<size_t> best_distinct_episodes(const std::vector<EpisodeOutcome>& outcomes, int64_t count) {
  std::vector<size_t> order(outcomes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return outcomes[a].reward > outcomes[b].reward; });
  std::vector<size_t> best;
  std::set<std::vector<int64_t>> seen;  // a cached episode repeats an earlier one's widths
  for (size_t i : order) {
    if (static_cast<int64_t>(best.size()) >= count) break;
    if (seen.insert(outcomes[i].keep).second) best.push_back(i);
  }
  return best;
}

std::vector<RankedPolicy> rerank(const PruningEnvironment& env, const std::vector<EpisodeOutcome>& outcomes,
                                 const data::TensorDataset& selection, int64_t count) {
  std::vector<RankedPolicy> ranked;
  if (count <= 0 || selection.size() == 0) return ranked;
  for (size_t i : best_distinct_episodes(outcomes, count)) {
    RankedPolicy p;
    p.episode = static_cast<int64_t>(i);
    p.keep = outcomes[i].keep;
    p.validation = outcomes[i].accuracy;
    p.selection = env.accuracy_on(p.keep, selection);
    p.reward = env.reward(p.selection, outcomes[i].macs);
    ranked.push_back(std::move(p));
  }
  // Stable: equal selection rewards keep the validation order.
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const RankedPolicy& a, const RankedPolicy& b) { return a.reward > b.reward; });
  return ranked;
}

}  // namespace compress::amc
