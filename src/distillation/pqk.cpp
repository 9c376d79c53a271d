#include "compress/distillation/pqk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/pruning/groups.h"

namespace compress::distillation {

namespace {

using TensorMap = std::map<std::string, at::Tensor>;

TensorMap module_tensors(const torch::jit::Module& m) {
  TensorMap t;
  for (auto& p : train::named_parameters(m)) t[p.name] = p.value;
  for (auto& b : train::named_buffers(m)) t[b.name] = b.value;
  return t;
}

// `base` with the values the training module holds now (copies).
Graph with_trained_values(const Graph& base, const TensorMap& trained) {
  torch::NoGradGuard no_grad;
  Graph g = base;
  for (const auto& name : g.param_order) {
    auto it = trained.find(name);
    if (it != trained.end()) g.set_param(name, it->second.detach().clone().contiguous());
  }
  return g;
}

// The kept MACs fraction of masking step k (0-based) of n: Zhu & Gupta's
// cubic schedule, steep first while the network has redundancy to spare.
double step_target(double target, int64_t k, int64_t n) {
  const double progress = double(k + 1) / double(n);
  return target + (1 - target) * std::pow(1 - progress, 3);
}

// Phase 1's channel masks over the training module's parameters: every
// entry a masked channel occupies in any member of its group (the producer's
// output rows and bias, the readers' input columns), with the value it had
// when it was masked.
class ChannelMasker : public train::Callback {
 public:
  ChannelMasker(const Graph& base, const PqkOptions& options, const data::TensorDataset& train, PqkResult& result)
      : base_(base), options_(options), train_(train), result_(result) {}

  // Masking steps happen before training (k = 0) and after the optimizer
  // steps the schedule gives the others.
  int64_t step_of(int64_t k, int64_t total_steps) const {
    return std::llround(double(k) * options_.prune_end * double(total_steps) / double(options_.prune_steps));
  }

  void mask_step(torch::jit::Module& module, int64_t steps_done) {
    torch::NoGradGuard no_grad;
    TensorMap tensors = module_tensors(module);
    Graph work = with_trained_values(base_, tensors);
    const double target = step_target(options_.target_macs, next_, options_.prune_steps);
    ++next_;

    pruning::PruneOptions po;
    po.target_macs = target;
    po.criterion = options_.criterion;
    po.data = &train_;
    Graph probe = work;
    const pruning::PruneResult widths = pruning::prune(probe, po);  // only the widths are used
    const pruning::GroupAnalysis analysis = pruning::analyze_groups(work);
    const std::vector<std::vector<double>> scores = pruning::channel_importance(work, analysis, po);

    for (const pruning::GroupChange& change : widths.changes) {
      const int gi = analysis.find(change.name);
      if (gi < 0) continue;
      const pruning::Group& grp = analysis.groups[size_t(gi)];
      std::set<int64_t>& masked = masked_[grp.name];
      std::vector<double> s = scores[size_t(gi)];
      for (int64_t c : masked) s[size_t(c)] = -std::numeric_limits<double>::infinity();  // masked stays masked
      std::vector<int64_t> order(size_t(grp.width));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[size_t(a)] > s[size_t(b)]; });
      for (size_t r = size_t(change.after); r < order.size(); ++r) {
        const int64_t c = order[r];
        if (!masked.insert(c).second) continue;
        for (const pruning::ChannelSlice& sl : grp.slices) {
          at::Tensor& m = mask_[sl.param];
          if (!m.defined()) {
            const at::Tensor& p = tensors.at(sl.param);
            m = at::zeros(p.sizes(), p.options().dtype(at::kBool));
            kept_[sl.param] = at::zeros_like(p);
          }
          at::Tensor newly = at::zeros_like(m);
          newly.narrow(sl.dim, sl.offset + c * sl.stride, sl.stride).fill_(true);
          newly.logical_and_(m.logical_not());
          kept_[sl.param] = at::where(newly, tensors.at(sl.param), kept_[sl.param]);
          m.logical_or_(newly);
        }
      }
    }
    apply(module);
    result_.prune_steps.push_back(
        {steps_done, target, double(widths.macs_after) / double(std::max<int64_t>(1, widths.macs_before))});
  }

  // Masked entries back to zero (the optimizer moved them).
  void apply(torch::jit::Module& module) const {
    torch::NoGradGuard no_grad;
    TensorMap tensors = module_tensors(module);
    for (const auto& [name, m] : mask_) tensors.at(name).masked_fill_(m, 0);
  }

  void after_step(train::StepContext& ctx) override {
    apply(*ctx.module);
    while (next_ < options_.prune_steps && ctx.step + 1 >= step_of(next_, ctx.total_steps)) {
      mask_step(*ctx.module, ctx.step + 1);
    }
  }

  // Kept channels of every group that lost some (indices into the unpruned group).
  std::map<std::string, std::vector<int64_t>> kept_channels() const {
    const pruning::GroupAnalysis analysis = pruning::analyze_groups(base_);
    std::map<std::string, std::vector<int64_t>> keep;
    for (const auto& [name, masked] : masked_) {
      if (masked.empty()) continue;
      const pruning::Group& grp = analysis.groups[size_t(analysis.find(name))];
      std::vector<int64_t>& k = keep[name];
      for (int64_t c = 0; c < grp.width; ++c)
        if (!masked.count(c)) k.push_back(c);
    }
    return keep;
  }

  // The unpruned network: trained values where kept, the values at masking time where masked.
  Graph restored(const Graph& trained) const {
    torch::NoGradGuard no_grad;
    Graph g = trained;
    for (const auto& [name, m] : mask_) g.set_param(name, at::where(m, kept_.at(name), g.param(name)).contiguous());
    return g;
  }

 private:
  const Graph& base_;
  const PqkOptions& options_;
  const data::TensorDataset& train_;
  PqkResult& result_;
  int64_t next_ = 0;                              // the next masking step
  std::map<std::string, std::set<int64_t>> masked_;  // per group
  TensorMap mask_, kept_;                         // per parameter
};

// Phase 2's fake quantizers start from what phase 1 learned where the
// shapes allow it: activation ranges by name, weight scales of the kept
// output channels (a layer whose output rows are one whole group).
void carry_scales(quant::QatModel& to, const quant::QatModel& from, const std::map<std::string, std::vector<int64_t>>& keep,
                  const Graph& unpruned) {
  torch::NoGradGuard no_grad;
  const pruning::GroupAnalysis analysis = pruning::analyze_groups(unpruned);
  auto copy = [&](const std::string& name) {
    if (!from.graph.has_param(name) || !to.graph.has_param(name)) return;
    const at::Tensor& src = from.graph.param(name);
    if (src.sizes() == to.graph.param(name).sizes()) to.graph.set_param(name, src.clone());
  };
  for (const auto& a : to.activations) {
    copy(a.scale);
    copy(a.zero_point);
  }
  for (const auto& w : to.weights) {
    if (!from.graph.has_param(w.scale)) continue;
    const at::Tensor& src = from.graph.param(w.scale);
    if (src.sizes() == to.graph.param(w.scale).sizes()) {
      to.graph.set_param(w.scale, src.clone());
      continue;
    }
    for (const pruning::Group& grp : analysis.groups) {
      auto k = keep.find(grp.name);
      if (k == keep.end()) continue;
      for (const pruning::ChannelSlice& s : grp.slices) {
        if (s.param != w.weight || s.dim != 0 || s.offset != 0 || s.stride != 1 || grp.width != src.size(0)) continue;
        at::Tensor picked = src.index_select(0, at::tensor(k->second, at::kLong));
        if (picked.sizes() == to.graph.param(w.scale).sizes()) to.graph.set_param(w.scale, picked.contiguous());
      }
    }
  }
}

}  // namespace

void PqkOptions::validate() const {
  if (!(target_macs > 0 && target_macs < 1)) {
    bad_input("--target-macs must be in (0, 1), got " + std::to_string(target_macs));
  }
  if (prune_steps < 1) bad_input("PQK needs at least one prune step, got " + std::to_string(prune_steps));
  if (!(prune_end >= 0 && prune_end <= 1)) bad_input("--prune-end must be in [0, 1], got " + std::to_string(prune_end));
  distill.validate();
  if (!distill.features.empty()) bad_input("PQK distils logits only: feature pairs are not supported");
  if (qat.method != quant::QatMethod::Lsq) bad_input("PQK trains with lsq fake quantization (ste is not supported)");
  if (!(scale_lr > 0) || !std::isfinite(scale_lr)) bad_input("the scales' learning rate must be positive");
}

PqkResult pqk(const Graph& model, const PqkOptions& options, std::vector<int64_t> input_shape,
              const quant::CalibrationData& calibration, const data::TensorDataset& train,
              const train::TrainConfig& phase1, const train::TrainConfig& phase2) {
  options.validate();
  if (input_shape.empty()) bad_input("PQK needs the shape of one input sample");
  Graph g = model;
  std::vector<int64_t> one = input_shape;
  one.insert(one.begin(), 1);
  g.set_example_inputs({InputSpec{one}});

  // Phase 1: QAT of the whole folded network under growing channel masks.
  PqkResult result;
  quant::QatModel qat = quant::prepare_qat(g, calibration, options.qat);
  auto masker = std::make_shared<ChannelMasker>(qat.base, options, train, result);
  train::TrainConfig cfg1 = phase1;
  cfg1.optimizer.groups.push_back(qat.scale_group(options.scale_lr));
  cfg1.fingerprint += " | pqk phase 1 target_macs=" + std::to_string(options.target_macs);
  train::Trainer trainer(export_module(qat.graph, quant::qat_export_options(qat)), cfg1);
  trainer.add_callback(quant::qat_callback(qat));
  trainer.add_callback(masker);
  masker->mask_step(trainer.module(), 0);
  result.phase1 = trainer.fit(train);
  quant::load_trained(qat, trainer.module());

  const Graph trained = with_trained_values(qat.base, module_tensors(trainer.module()));
  result.teacher = masker->restored(trained);
  result.kept_channels = masker->kept_channels();
  result.phase1_student = trained;
  result.prune = pruning::prune_channels(result.phase1_student, result.kept_channels);

  // Phase 2: the pruned student, fake-quantized on its new shapes, learns
  // from the restored network.
  quant::QatModel student = quant::prepare_qat(result.phase1_student, calibration, options.qat);
  carry_scales(student, qat, result.kept_channels, qat.base);
  if (phase2.epochs > 0) {
    torch::jit::Module teacher = export_module(result.teacher);
    teacher.eval();
    Distiller d(teacher, student.graph, options.distill, input_shape);
    d.add_callback(quant::qat_callback(student));
    train::TrainConfig cfg2 = phase2;
    cfg2.optimizer.groups.push_back(student.scale_group(options.scale_lr));
    cfg2.fingerprint += " | pqk phase 2";
    result.phase2 = d.fit(train, cfg2);
    for (const auto& name : student.graph.param_order) student.graph.set_param(name, d.student().param(name));
  }
  result.student = std::move(student);
  return result;
}

}  // namespace compress::distillation
