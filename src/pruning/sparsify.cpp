// The sparsify pass: layer selection, masks, optional fine-tuning (AGP or
// fixed masks) and the per-layer description, shared by `compress sparsify`
// and the pipeline's sparsify stage.
#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/pruning/sparsity.h"
#include "compress/train/evaluate.h"

namespace compress::sparsity {

nlohmann::json SparsifyOptions::to_json() const {
  return {{"sparsity", sparsity},
          {"pattern", pattern.name()},
          {"global", global},
          {"include_first_last", selection.include_first_last},
          {"exclude", selection.exclude},
          {"schedule", schedule == Schedule::Agp ? "agp" : "oneshot"},
          {"ramp", ramp},
          {"mask_updates", mask_updates}};
}

namespace {

void check_options(const SparsifyOptions& o, bool given_masks, bool finetuning) {
  if (!given_masks) check_sparsity(o.sparsity, o.pattern, o.global);
  if (o.schedule == Schedule::Agp) {
    if (!finetuning) bad_input("the agp schedule prunes gradually while fine-tuning: it needs data and fine-tuning epochs");
    if (given_masks) bad_input("the agp schedule computes its own masks: it does not apply to given masks");
  }
  if (!(o.ramp > 0 && o.ramp <= 1)) bad_input("the agp ramp must be in (0, 1], got " + std::to_string(o.ramp));
  if (o.mask_updates < 1) bad_input("the agp schedule needs at least 1 mask update");
}

// Per layer: its name, weight, shape and sparsity; totals of zeros and weights.
nlohmann::json describe(const std::vector<NamedWeight>& weights, const std::vector<SparseLayer>& layers, int64_t& zeros,
                        int64_t& numel) {
  nlohmann::json out = nlohmann::json::array();
  zeros = numel = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    WeightSparsity s = measure(weights[i].weight);
    nlohmann::json e = s.to_json();
    e["name"] = layers[i].module;
    e["weight"] = weights[i].name;
    e["shape"] = layers[i].shape;
    out.push_back(e);
    zeros += s.zeros;
    numel += s.numel;
  }
  return out;
}

}  // namespace

SparsifyResult sparsify(const torch::jit::Module& model, const SparsifyOptions& o, const Masks* given,
                        const train::TrainConfig* finetune, const data::TensorDataset* train_set,
                        const data::TensorDataset* test_set, const std::vector<std::shared_ptr<train::Callback>>& callbacks) {
  const bool finetuning = finetune && finetune->epochs > 0;
  check_options(o, given != nullptr, finetuning);
  if (finetuning && (!train_set || train_set->size() == 0)) bad_input("fine-tuning needs a non-empty training set");

  SparsifyResult res;
  Graph graph = import_module(model);
  LayerSelection sel = o.selection;
  // Given masks may name any conv/linear weight; layers without one stay dense.
  if (given) sel.include_first_last = true;
  res.layers = select_layers(graph, sel, &res.skipped);
  if (given) {
    check_masks(graph_weights(graph, res.layers), *given);
    std::vector<SparseLayer> masked;
    for (const SparseLayer& l : res.layers) {
      if (given->count(l.weight)) masked.push_back(l);
      else res.skipped.push_back({l.module, "no mask given"});
    }
    res.layers = masked;
  }
  if (res.layers.empty()) bad_input("no conv/linear layer left to sparsify (see include_first_last and exclude)");
  std::vector<NamedWeight> weights = graph_weights(graph, res.layers);

  Masks masks;
  if (given) {
    for (const auto& kv : *given) masks[kv.first] = kv.second.ne(0);
  } else if (o.schedule == Schedule::OneShot) {
    masks = magnitude_masks(weights, o.sparsity, o.pattern, o.global);
  }
  apply_masks(weights, masks);
  res.model = export_module(graph);
  if (test_set && !masks.empty()) {
    res.model.eval();
    res.report["accuracy_pruned"] = train::evaluate(res.model, *test_set).top1;  // before any fine-tuning
  }

  if (finetuning) {
    // The trainer's batches per epoch (it drops a short last batch).
    const int64_t n = train_set->size(), b = finetune->batch_size;
    const int64_t total_steps = finetune->epochs * (n > b ? n / b : 1);
    AgpSchedule schedule;
    if (o.schedule == Schedule::Agp) {
      schedule = agp_over(o.sparsity, total_steps, o.ramp, o.mask_updates);
      res.report["agp"] = {{"begin_step", schedule.begin_step}, {"end_step", schedule.end_step()},
                           {"frequency", schedule.frequency},   {"updates", schedule.updates},
                           {"total_steps", total_steps}};
    } else {
      schedule.initial_sparsity = schedule.final_sparsity = o.sparsity;
    }
    auto cb = std::make_shared<SparsityCallback>(res.layers, o.pattern, o.global, schedule);
    if (!masks.empty()) cb->set_masks(masks);
    res.model.train();
    train::Trainer trainer(res.model, *finetune);
    trainer.add_callback(cb);
    for (const auto& extra : callbacks) trainer.add_callback(extra);
    trainer.fit(*train_set);
    masks = cb->masks();
    res.mask_updates = cb->mask_updates();
    res.report["mask_updates"] = res.mask_updates;
    if (o.schedule == Schedule::Agp && cb->current_sparsity() != o.sparsity)
      failure("the AGP ramp ended before the target sparsity (fewer fine-tuning steps than planned)");
  }
  res.model.eval();
  res.masks = std::move(masks);

  int64_t zeros = 0, numel = 0;
  res.report["layers"] = describe(module_weights(res.model, res.layers), res.layers, zeros, numel);
  res.report["skipped"] = nlohmann::json::array();
  for (const auto& s : res.skipped) res.report["skipped"].push_back({{"name", s.first}, {"reason", s.second}});
  int64_t params = 0, param_zeros = 0;
  for (const auto& p : res.model.named_parameters(/*recurse=*/true)) {
    params += p.value.numel();
    param_zeros += p.value.numel() - p.value.ne(0).sum().item<int64_t>();
  }
  res.report["selected_sparsity"] = numel ? double(zeros) / double(numel) : 0.0;
  res.report["model_sparsity"] = params ? double(param_zeros) / double(params) : 0.0;
  return res;
}

}  // namespace compress::sparsity
