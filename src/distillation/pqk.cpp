#include "compress/distillation/pqk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <set>

#include <ATen/CPUGeneratorImpl.h>

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

  // Per parameter, the entries of masked channels (true).
  const TensorMap& masks() const { return mask_; }

 private:
  const Graph& base_;
  const PqkOptions& options_;
  const data::TensorDataset& train_;
  PqkResult& result_;
  int64_t next_ = 0;                              // the next masking step
  std::map<std::string, std::set<int64_t>> masked_;  // per group
  TensorMap mask_, kept_;                         // per parameter
};

// The teacher repair's constraint: after every optimizer step, every entry
// outside the masks goes back to its value at the start, so only the
// restored weights learn and the teacher keeps containing the student.
class KeptEntriesFrozen : public train::Callback {
 public:
  KeptEntriesFrozen(const torch::jit::Module& module, TensorMap masks) : masks_(std::move(masks)) {
    torch::NoGradGuard no_grad;
    for (const auto& [name, t] : module_tensors(module)) start_[name] = t.detach().clone();
  }

  void after_step(train::StepContext& ctx) override {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : module_tensors(*ctx.module)) {
      const at::Tensor& start = start_.at(name);
      auto m = masks_.find(name);
      if (m == masks_.end()) {
        t.copy_(start);
      } else {
        t.copy_(at::where(m->second, t, start));
      }
    }
  }

 private:
  TensorMap masks_, start_;
};

data::TensorDataset subset(const data::TensorDataset& ds, const at::Tensor& indices, const std::string& what) {
  return {ds.inputs.index_select(0, indices), ds.labels.index_select(0, indices), ds.num_classes,
          ds.name + " (" + what + ")"};
}

double top1(torch::jit::Module module, const data::TensorDataset& ds) {
  module.eval();
  return train::evaluate(module, ds).top1;
}

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

PqkTeacher parse_pqk_teacher(const std::string& name) {
  if (name == "restored") return PqkTeacher::Restored;
  if (name == "input") return PqkTeacher::Input;
  bad_input("--teacher must be restored or input, got '" + name + "'");
}

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
  if (!(repair_fraction >= 0 && repair_fraction <= 1))
    bad_input("--repair-fraction must be in [0, 1], got " + std::to_string(repair_fraction));
  if (check_samples < 0) bad_input("--check-samples must not be negative, got " + std::to_string(check_samples));
  if (recalibrate_batches < 0)
    bad_input("--recalibrate-bn must not be negative, got " + std::to_string(recalibrate_batches));
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

  // Phase 1: QAT of the whole folded network under growing channel masks,
  // or, with phase1_float, float training of the network as given (batch
  // norms training too) under the same masks.
  PqkResult result;
  std::optional<quant::QatModel> qat;
  if (!options.phase1_float) qat = quant::prepare_qat(g, calibration, options.qat);
  const Graph& phase1_graph = qat ? qat->base : g;  // the graph the masks index
  auto masker = std::make_shared<ChannelMasker>(phase1_graph, options, train, result);
  train::TrainConfig cfg1 = phase1;
  if (qat) cfg1.optimizer.groups.push_back(qat->scale_group(options.scale_lr));
  cfg1.fingerprint += " | pqk phase 1 target_macs=" + std::to_string(options.target_macs) +
                      (options.phase1_float ? " float" : "");
  torch::jit::Module phase1_module;
  if (options.phase1_kd) {
    // The input model is the only teacher that exists before phase 1.
    torch::jit::Module input_teacher = export_module(g);
    input_teacher.eval();
    Distiller d(input_teacher, qat ? qat->graph : g, options.distill, input_shape);
    if (qat) d.add_callback(quant::qat_callback(*qat));
    d.add_callback(masker);
    masker->mask_step(d.training_module(), 0);
    DistillResult kd1 = d.fit(train, cfg1);
    result.phase1 = kd1.train;
    result.phase1_terms = kd1.terms;
    phase1_module = d.training_module();
  } else {
    train::Trainer trainer(qat ? export_module(qat->graph, quant::qat_export_options(*qat)) : export_module(g), cfg1);
    if (qat) trainer.add_callback(quant::qat_callback(*qat));
    trainer.add_callback(masker);
    masker->mask_step(trainer.module(), 0);
    result.phase1 = trainer.fit(train);
    phase1_module = trainer.module();
  }
  if (qat) quant::load_trained(*qat, phase1_module);

  const Graph trained = with_trained_values(phase1_graph, module_tensors(phase1_module));
  result.stale_teacher = masker->restored(trained);
  result.kept_channels = masker->kept_channels();
  result.phase1_student = trained;
  result.prune = pruning::prune_channels(result.phase1_student, result.kept_channels);
  // Removing masked channels changes nothing the kept ones compute, but the
  // running statistics are momentum averages over weights that kept moving:
  // exact ones for the final weights before prepare_qat folds them.
  if (options.phase1_float && options.recalibrate_batches > 0) {
    result.batch_norms_recalibrated =
        pruning::recalibrate_batch_norm(result.phase1_student, train, options.recalibrate_batches);
  }

  // Phase 2's fake quantizers: calibrated afresh on the pruned shapes, then
  // phase 1's learned scales where it had some.
  quant::QatModel student = quant::prepare_qat(result.phase1_student, calibration, options.qat);
  if (qat) carry_scales(student, *qat, result.kept_channels, qat->base);

  // The check samples first, the repair's subset from the rest: the same
  // random split on every rank (seeded by phase 2's seed).
  const int64_t n = train.size();
  at::Tensor order = at::randperm(n, at::detail::createCPUGenerator(phase2.seed), at::TensorOptions(at::kLong));
  const int64_t check_n = result.check_samples = std::min(options.check_samples, n / 2);
  const int64_t repair_n = std::llround(options.repair_fraction * double(n - check_n));
  const data::TensorDataset check = subset(train, order.narrow(0, 0, check_n), "PQK check samples");

  // Teacher repair: the restored entries train, in float, everything else
  // frozen (only when phase 2 runs: nothing else uses the teacher).
  torch::jit::Module teacher = export_module(result.stale_teacher);
  if (check_n > 0) result.stale_teacher_check_top1 = top1(teacher, check);
  if (options.teacher == PqkTeacher::Input) {
    result.teacher = g;
    teacher = export_module(result.teacher);
  } else if (repair_n > 0 && phase2.epochs > 0) {
    const data::TensorDataset repair_set = subset(train, order.narrow(0, check_n, repair_n), "PQK teacher repair");
    train::TrainConfig cfg = phase2;
    cfg.epochs = 1;
    cfg.checkpoint_path.clear();
    cfg.fingerprint += " | pqk teacher repair";
    train::Trainer repair(teacher, cfg);
    repair.add_callback(std::make_shared<KeptEntriesFrozen>(teacher, masker->masks()));
    result.repair = repair.fit(repair_set);
    result.teacher = with_trained_values(result.stale_teacher, module_tensors(repair.module()));
    teacher = export_module(result.teacher);
  } else {
    result.teacher = result.stale_teacher;
  }
  teacher.eval();

  // Phase 2: the pruned student, fake-quantized on its new shapes, learns
  // from the teacher (or from the labels alone when the gate finds the
  // teacher no better than the student).
  if (check_n > 0) {
    result.teacher_check_top1 = top1(teacher, check);
    result.student_check_top1 = top1(export_module(student.graph), check);
  }
  if (phase2.epochs > 0) {
    DistillOptions kd = options.distill;
    const bool gate_closed = options.kd_gate && check_n > 0 && result.teacher_check_top1 <= result.student_check_top1;
    if (gate_closed) kd.alpha = 0;
    result.kd_used = kd.alpha > 0;  // false also when the caller asked for alpha = 0
    Distiller d(teacher, student.graph, kd, input_shape);
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
