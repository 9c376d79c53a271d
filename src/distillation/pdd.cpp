#include "compress/distillation/pdd.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ir/builder.h"
#include "compress/pruning/groups.h"
#include "compress/train/distributed.h"
#include "compress/train/optim.h"

namespace compress::distillation {

namespace {

constexpr const char* kGatePrefix = "pdd_gate_";
constexpr const char* kMaskPrefix = "pdd_mask_";

// A group under gates: its gate (a parameter of the training module) and the
// mask buffer (in the graph) that multiplies each of its producers' outputs.
struct GatedGroup {
  std::string name;
  int64_t width = 0;
  int64_t floor = 1;  // channels that stay open whatever the gates say
  std::string gate, mask;
};

// MACs as a function of the groups' kept fractions: each convolution or
// linear layer scales with the fraction kept of the group it writes (out)
// and of the group it reads (in); -1 = not gated.
struct MacModel {
  struct Term {
    double macs = 0;
    int out = -1, in = -1;
  };
  std::vector<Term> terms;
  double fixed = 0, total = 0;

  template <class Fraction>
  auto ratio(const Fraction& kept) const {
    auto sum = kept(-1) * fixed;  // kept(-1) is 1 in the fraction's type
    for (const Term& t : terms) sum = sum + kept(t.out) * kept(t.in) * t.macs;
    return sum / total;
  }
};

MacModel mac_model(const Graph& g, const pruning::GroupAnalysis& a, const std::map<std::string, int>& gated) {
  MacModel m;
  for (const NodeProfile& np : profile_model(g).nodes) {
    if (np.macs <= 0) continue;
    m.total += double(np.macs);
    MacModel::Term t;
    t.macs = double(np.macs);
    for (const pruning::Group& grp : a.groups) {
      auto it = gated.find(grp.name);
      if (it == gated.end()) continue;
      for (const pruning::ChannelSlice& s : grp.slices) {
        if (s.leaf != np.node) continue;
        if (s.role == pruning::ChannelSlice::Role::In) t.in = it->second;
        else t.out = it->second;  // Out, or Through for a depthwise convolution
      }
    }
    if (t.in == t.out) t.in = -1;  // depthwise: one group, counted once
    if (t.out < 0 && t.in < 0) m.fixed += t.macs;
    else m.terms.push_back(t);
  }
  return m;
}

// The value a group's channels are gated at for one producer: its output,
// or the output of the batch norm that alone reads it (a gate before a batch
// norm in training mode would be normalised away).
ValueId gate_point(const Graph& g, const Node* producer) {
  ValueId v = producer->output();
  auto users = g.users(v);
  if (users.size() == 1 && (users[0]->is_leaf(LeafKind::BatchNorm2d) || users[0]->is_leaf(LeafKind::BatchNorm1d))) {
    v = users[0]->output();
  }
  return v;
}

// Inserts `value * mask` after each producer of every prunable group of two
// or more channels whose gate points are [N, C] or [N, C, H, W].
std::vector<GatedGroup> insert_gates(Graph& g, const pruning::GroupAnalysis& a, double min_keep) {
  std::vector<GatedGroup> out;
  for (const pruning::Group& grp : a.groups) {
    if (grp.frozen || grp.width < 2 || grp.producers.empty()) continue;
    std::vector<ValueId> points;
    for (const Node* p : grp.producers) points.push_back(gate_point(g, p));
    const size_t rank = g.shape(points[0]).size();
    const bool ok = std::all_of(points.begin(), points.end(), [&](ValueId v) {
      const Shape& s = g.shape(v);
      return s.size() == rank && (rank == 2 || rank == 4) && s[1] == grp.width;
    });
    if (!ok) continue;
    GatedGroup gg;
    gg.name = grp.name;
    gg.width = grp.width;
    gg.floor = std::clamp<int64_t>(int64_t(std::ceil(min_keep * double(grp.width) - 1e-9)), 1, grp.width);
    gg.gate = kGatePrefix + std::to_string(out.size());
    gg.mask = kMaskPrefix + std::to_string(out.size());
    Shape mask_shape = rank == 4 ? Shape{1, grp.width, 1, 1} : Shape{1, grp.width};
    g.add_param(gg.mask, at::ones(mask_shape), /*is_buffer=*/true);
    for (ValueId v : points) {
      auto at = g.inserting_after(g.producer(v));
      ValueId y = add_op(g, "aten::mul", {Arg::of_value(v), Arg::of_param(gg.mask)});
      g.replace_uses_if(v, Arg::of_value(y), [&](const Node& n) { return &n != g.producer(y); });
    }
    out.push_back(gg);
  }
  return out;
}

// Undoes insert_gates: each multiply's readers read its input again.
void remove_gates(Graph& g, const std::vector<GatedGroup>& groups) {
  for (const GatedGroup& gg : groups) {
    for (Node* n : g.node_list()) {
      if (n->erased() || n->inputs().size() != 2 || n->inputs()[1].kind != Arg::Kind::Param ||
          n->inputs()[1].param != gg.mask) {
        continue;
      }
      g.replace_all_uses(n->output(), n->inputs()[0]);
      g.erase(n);
    }
    g.remove_param(gg.mask);
  }
}

// The binary mask of one group: open where the gate is > 0, and the
// group's `floor` largest gates open in any case.
at::Tensor binary(const at::Tensor& gate, int64_t floor) {
  at::Tensor open = gate.detach().gt(0);
  open.index_fill_(0, std::get<1>(gate.detach().topk(floor)), true);
  return open.to(at::kFloat);
}

// ApproxSign (Liu et al., Bi-Real Net) halved for a {0, 1} gate: the
// forward value is binary(gate); the gradient is 1 - |gate| inside (-1, 1),
// 0 outside, times `scale` (per channel: how hard the budget pushes it).
at::Tensor gate_with_surrogate(const at::Tensor& gate, int64_t floor, const at::Tensor& scale) {
  at::Tensor s = gate.clamp(-1, 1);
  at::Tensor smooth = s - s * s.abs() / 2;
  return binary(gate, floor) + (smooth - smooth.detach()) * scale;
}

// Bound of the budget's push factors with importance weighting (push_factors):
// a channel that carries nothing is not pushed without bound, nor one that
// carries much spared entirely.
constexpr double kMaxPushFactor = 8.0;

// Masks follow the gates before every step; the masks' gradients reach the
// gates through the surrogate; the gated MACs are recorded per epoch.
class GateTrainer : public train::Callback {
 public:
  GateTrainer(torch::jit::Module m, const std::vector<GatedGroup>& groups, const MacModel& macs, double limit,
              std::vector<double>* gated_macs)
      : m_(std::move(m)), groups_(groups), macs_(macs), limit_(limit), gated_macs_(gated_macs),
        importance_(groups.size()) {}

  at::Tensor gate(size_t i) const { return m_.attr(groups_[i].gate).toTensor(); }
  at::Tensor mask(size_t i) const { return m_.attr(groups_[i].mask).toTensor(); }

  void refresh() {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < groups_.size(); ++i) {
      at::Tensor m = mask(i);
      m.copy_(binary(gate(i), groups_[i].floor).reshape(m.sizes()));
      m.requires_grad_(true);
    }
  }
  double hard_ratio() const {
    return macs_.ratio([&](int i) {
      return i < 0 ? 1.0 : binary(gate(size_t(i)), groups_[size_t(i)].floor).mean().item<double>();
    });
  }
  // Per group, per channel, the factor on the budget's push: 1 for every
  // channel, or with `by_importance` the mean importance of all gated
  // channels over the channel's own (clamped to [1/8, 8]), so the budget is
  // paid by the channels that carry least rather than by the layer whose
  // gates are cheapest to close. 1 until importances have been measured.
  std::vector<at::Tensor> push_factors(bool by_importance) const {
    std::vector<at::Tensor> ones;
    for (const GatedGroup& g : groups_) ones.push_back(at::ones({g.width}, at::kFloat));
    if (!by_importance) return ones;
    double sum = 0;
    int64_t count = 0;
    for (const at::Tensor& t : importance_) {
      if (!t.defined()) return ones;
      sum += t.sum().item<double>();
      count += t.numel();
    }
    const double mean = sum / double(std::max<int64_t>(1, count));
    if (!(mean > 0)) return ones;
    std::vector<at::Tensor> factors;
    for (const at::Tensor& t : importance_)
      factors.push_back((mean / t.clamp_min(mean / kMaxPushFactor)).clamp(1 / kMaxPushFactor, kMaxPushFactor));
    return factors;
  }

  void after_backward(train::StepContext& ctx) override {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < groups_.size(); ++i) {
      at::Tensor m = mask(i), g = gate(i);
      if (!m.grad().defined()) continue;
      at::Tensor task = m.grad().reshape({-1}).clone();
      // The masks are buffers, outside the trainer's gradient averaging
      // (done before this callback): average their part over the ranks here.
      if (ctx.group && ctx.group->world_size() > 1) {
        ctx.group->all_reduce_sum(task, "pdd gate gradients");
        task.div_(ctx.group->world_size());
      }
      at::Tensor& imp = importance_[i];
      imp = imp.defined() ? imp.mul(0.95).add(task.abs(), 0.05) : task.abs();
      at::Tensor grad = task * (1 - g.abs()).clamp_min(0);
      if (g.grad().defined()) g.mutable_grad().add_(grad);
      else g.mutable_grad() = grad;
      m.mutable_grad().reset();
    }
  }
  // Clipping keeps every gate where the surrogate still passes a gradient.
  void after_step(train::StepContext&) override {
    {
      at::NoGradGuard no_grad;
      for (size_t i = 0; i < groups_.size(); ++i) gate(i).clamp_(-limit_, limit_);
    }
    refresh();
  }
  void on_epoch_end(const train::EpochStats&) override { gated_macs_->push_back(hard_ratio()); }

 private:
  torch::jit::Module m_;
  const std::vector<GatedGroup>& groups_;
  const MacModel& macs_;
  double limit_;
  std::vector<double>* gated_macs_;
  // Per group, each channel's importance: a running mean (over about 20
  // steps) of |d task loss / d mask|, the first-order (Taylor) estimate of
  // what closing an open channel, or opening a closed one, changes in the
  // loss; undefined before the first step.
  std::vector<at::Tensor> importance_;
};

// Sets and records the learning rate of one phase. With a span (one
// schedule over both phases), each step takes the rate of its place in the
// span: the phase's first step is step `first_epoch * steps per epoch` of a
// schedule `span_epochs` long, at `base_lr`. The trainer updates with ctx.lr
// after the on_loss callbacks, so setting it here sets the step's rate. The
// rate of each epoch's first step is recorded either way.
class PhaseSchedule : public train::Callback {
 public:
  PhaseSchedule(train::ScheduleConfig schedule, double base_lr, int64_t epochs, int64_t first_epoch,
                int64_t span_epochs, std::vector<double>* epoch_lr)
      : schedule_(std::move(schedule)), base_lr_(base_lr), epochs_(epochs), first_epoch_(first_epoch),
        span_epochs_(span_epochs), epoch_lr_(epoch_lr) {}

  void on_loss(train::StepContext& ctx) override {
    const int64_t per_epoch = std::max<int64_t>(1, ctx.total_steps / std::max<int64_t>(1, epochs_));
    if (span_epochs_ > 0) {
      ctx.lr = train::lr_at(schedule_, base_lr_, first_epoch_ * per_epoch + ctx.step, span_epochs_ * per_epoch);
    }
    if (ctx.step % per_epoch == 0) epoch_lr_->push_back(ctx.lr);
  }

 private:
  train::ScheduleConfig schedule_;
  double base_lr_;
  int64_t epochs_, first_epoch_, span_epochs_;
  std::vector<double>* epoch_lr_;
};

// Open channels per group from the final gates: the smallest open gates
// close while the MACs exceed the budget, then the largest closed gates
// reopen while the budget holds; every group keeps its floor.
std::vector<std::vector<bool>> final_channels(const GateTrainer& gates, const std::vector<GatedGroup>& groups,
                                              const MacModel& macs, double target) {
  std::vector<std::vector<bool>> open(groups.size());
  std::vector<at::Tensor> values;
  for (size_t i = 0; i < groups.size(); ++i) {
    values.push_back(gates.gate(i).detach().to(at::kDouble).contiguous());
    const at::Tensor mask = binary(values[i], groups[i].floor).contiguous();
    const float* m = mask.data_ptr<float>();
    for (int64_t c = 0; c < groups[i].width; ++c) open[i].push_back(m[c] > 0);
  }
  auto count = [&](size_t i) { return int64_t(std::count(open[i].begin(), open[i].end(), true)); };
  auto ratio = [&] {
    return macs.ratio([&](int i) {
      if (i < 0) return 1.0;
      return double(count(size_t(i))) / double(groups[size_t(i)].width);
    });
  };
  while (ratio() > target) {
    int best_group = -1;
    int64_t best_channel = -1;
    double best = 0;
    for (size_t i = 0; i < groups.size(); ++i) {
      if (count(i) <= groups[i].floor) continue;
      const double* v = values[i].data_ptr<double>();
      for (int64_t c = 0; c < groups[i].width; ++c) {
        if (open[i][size_t(c)] && (best_group < 0 || v[c] < best)) {
          best_group = int(i);
          best_channel = c;
          best = v[c];
        }
      }
    }
    if (best_group < 0) break;  // every group at its floor (pdd() checked that this meets the budget)
    open[size_t(best_group)][size_t(best_channel)] = false;
  }
  // Reopen the most promising closed channels that still fit: the result
  // lands just under the target instead of wherever the gates stopped.
  std::vector<std::vector<bool>> tried = open;
  for (;;) {
    int best_group = -1;
    int64_t best_channel = -1;
    double best = 0;
    for (size_t i = 0; i < groups.size(); ++i) {
      const double* v = values[i].data_ptr<double>();
      for (int64_t c = 0; c < groups[i].width; ++c) {
        if (!tried[i][size_t(c)] && (best_group < 0 || v[c] > best)) {
          best_group = int(i);
          best_channel = c;
          best = v[c];
        }
      }
    }
    if (best_group < 0) break;
    tried[size_t(best_group)][size_t(best_channel)] = true;
    open[size_t(best_group)][size_t(best_channel)] = true;
    if (ratio() > target) open[size_t(best_group)][size_t(best_channel)] = false;
  }
  return open;
}

}  // namespace

void PddOptions::validate() const {
  distill.validate();
  if (!(target_macs > 0 && target_macs < 1)) {
    bad_input("--target-macs must be in (0, 1), got " + std::to_string(target_macs));
  }
  if (!(budget_weight > 0) || !std::isfinite(budget_weight)) bad_input("the MACs budget weight must be positive");
  if (!(budget_tolerance >= 0 && budget_tolerance < target_macs)) {
    bad_input("--budget-tolerance must be in [0, --target-macs), got " + std::to_string(budget_tolerance));
  }
  if (!(gate_lr > 0) || !std::isfinite(gate_lr)) bad_input("the gates' learning rate must be positive");
  if (!(gate_init > -1 && gate_init < 1 && gate_init != 0)) bad_input("the gates' initial value must be in (-1, 0) or (0, 1)");
  if (!(min_group_keep > 0 && min_group_keep <= 1)) {
    bad_input("--min-group-keep must be in (0, 1], got " + std::to_string(min_group_keep));
  }
  if (!distill.features.empty()) bad_input("PDD distils logits only: feature pairs are not supported");
}

PddResult pdd(torch::jit::Module teacher, Graph& student, const PddOptions& options, std::vector<int64_t> input_shape,
              const data::TensorDataset& train, const train::TrainConfig& search, const train::TrainConfig& finetune) {
  options.validate();
  if (input_shape.empty()) bad_input("PDD needs the shape of one input sample");
  std::vector<int64_t> one = input_shape;
  one.insert(one.begin(), 1);
  student.set_example_inputs({InputSpec{one}});

  // Each graph's own analysis: groups point at that graph's nodes.
  Graph gated = student;
  std::vector<GatedGroup> groups = insert_gates(gated, pruning::analyze_groups(gated), options.min_group_keep);
  if (groups.empty()) bad_input("the student has no prunable channel group to gate (compress inspect --groups)");
  std::map<std::string, int> index;
  for (size_t i = 0; i < groups.size(); ++i) index[groups[i].name] = int(i);
  const MacModel macs = mac_model(student, pruning::analyze_groups(student), index);
  const double floor_ratio = macs.ratio([&](int i) {
    return i < 0 ? 1.0 : double(groups[size_t(i)].floor) / double(groups[size_t(i)].width);
  });
  if (floor_ratio > options.target_macs) {
    bad_input("--target-macs " + std::to_string(options.target_macs) + " is below the " + std::to_string(floor_ratio) +
              " of the MACs that the per-group floor (--min-group-keep " + std::to_string(options.min_group_keep) +
              ") keeps");
  }

  PddResult result;
  Distiller search_run(teacher, std::move(gated), options.distill, input_shape);
  torch::jit::Module& m = search_run.training_module();
  for (const GatedGroup& gg : groups) {
    m.register_parameter(gg.gate, at::full({gg.width}, options.gate_init), /*is_buffer=*/false);
  }
  train::ParamGroup gate_group;
  gate_group.name = "pdd gates";
  gate_group.match = {std::string(kGatePrefix) + "*"};
  gate_group.lr = options.gate_lr;
  gate_group.weight_decay = 0.0;
  search_run.add_param_group(gate_group);
  auto gates = std::make_shared<GateTrainer>(m, groups, macs, std::abs(options.gate_init), &result.gated_macs);
  gates->refresh();
  search_run.add_callback(gates);
  const double target = options.target_macs, weight = options.budget_weight, band = options.budget_tolerance;
  const bool by_importance = options.budget_by_importance;
  search_run.set_extra_loss([&, target, weight, band, by_importance](train::StepContext&) {
    at::Tensor one_t = at::ones({}, at::kFloat);
    // With importance weighting the same gated MACs ratio twice, differing
    // only in how the gradient is split over the gates: closing pushes the
    // least important channels hardest, reopening the most important ones.
    // With an even split both are the plain ratio: computed once.
    const std::vector<at::Tensor> push = gates->push_factors(by_importance);
    auto gated_ratio = [&](bool closing) {
      return macs.ratio([&](int i) {
        if (i < 0) return one_t;
        const size_t g = size_t(i);
        return gate_with_surrogate(gates->gate(g), groups[g].floor, closing ? push[g] : push[g].reciprocal()).mean();
      });
    };
    // Down while over the target, up while below the dead band.
    const at::Tensor closing = gated_ratio(true);
    const at::Tensor opening = by_importance ? gated_ratio(false) : closing;
    return weight * (at::relu(closing - target) + at::relu(target - band - opening));
  });
  // One schedule: the search runs the first search.epochs of a schedule as
  // long as both phases; 0 = each phase its own.
  const int64_t span = options.one_schedule ? search.epochs + std::max<int64_t>(0, finetune.epochs) : 0;
  search_run.add_callback(std::make_shared<PhaseSchedule>(search.schedule, search.optimizer.lr, search.epochs, 0, span,
                                                          &result.epoch_lr));
  train::TrainConfig search_cfg = search;
  search_cfg.fingerprint += " | pdd target_macs=" + std::to_string(target);
  if (span) search_cfg.fingerprint += " | one schedule over " + std::to_string(span) + " epochs";
  result.search = search_run.fit(train, search_cfg);

  const std::vector<std::vector<bool>> open = final_channels(*gates, groups, macs, target);
  Graph pruned = search_run.student();
  remove_gates(pruned, groups);
  std::map<std::string, std::vector<int64_t>> keep;
  for (size_t i = 0; i < groups.size(); ++i) {
    std::vector<int64_t> channels;
    for (int64_t c = 0; c < groups[i].width; ++c) {
      if (open[i][size_t(c)]) channels.push_back(c);
    }
    result.groups.push_back({groups[i].name, groups[i].width, int64_t(channels.size())});
    keep[groups[i].name] = channels;
  }
  result.prune = pruning::prune_channels(pruned, keep);

  if (finetune.epochs > 0) {
    Distiller tune(teacher, std::move(pruned), options.distill, input_shape);
    train::TrainConfig tune_cfg = finetune;
    tune_cfg.fingerprint += " | pdd fine-tuning";
    if (span) {
      tune_cfg.optimizer.lr = search.optimizer.lr;
      tune_cfg.schedule = search.schedule;
      tune_cfg.fingerprint += " | one schedule over " + std::to_string(span) + " epochs";
    }
    tune.add_callback(std::make_shared<PhaseSchedule>(search.schedule, search.optimizer.lr, finetune.epochs,
                                                      search.epochs, span, &result.epoch_lr));
    result.finetune = tune.fit(train, tune_cfg);
    student = tune.student();
  } else {
    student = std::move(pruned);
  }
  return result;
}

}  // namespace compress::distillation
