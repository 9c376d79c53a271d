// pdd: pruning during distillation (learned channel gates under a MACs
// budget, then physical removal and a KD fine-tune).
#include <ATen/Parallel.h>

#include "compress/distillation/pdd.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/threads.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class PddStage : public Stage {
 public:
  ModelRef teacher;
  distillation::PddOptions pdd;
  TrainingOptions training;
  int64_t finetune_epochs = 0;
  double finetune_lr = 0;  // 0: the search's lr / 5 (the CLI's default)

  nlohmann::json options() const override {
    nlohmann::json j = training.to_json();
    j["teacher"] = teacher.text();
    j["target_macs"] = pdd.target_macs;
    j["budget_weight"] = pdd.budget_weight;
    j["gate_lr"] = pdd.gate_lr;
    j["budget_tolerance"] = pdd.budget_tolerance;
    j["min_group_keep"] = pdd.min_group_keep;
    j["temperature"] = pdd.distill.temperature;
    j["alpha"] = pdd.distill.alpha;
    j["finetune_epochs"] = finetune_epochs;
    j["finetune_lr"] = finetune_lr;
    j["one_schedule"] = pdd.one_schedule;
    j["budget_by_importance"] = pdd.budget_by_importance;
    return j;
  }
  std::vector<ModelRef> model_refs() const override { return {teacher}; }
  bool needs_data() const override { return true; }

  void run(StageContext& ctx) override {
    const data::TensorDataset& train_set = ctx.data.train();
    compress::set_num_threads(ctx.recipe.threads);
    Graph student = load_graph(ctx.input_model, ctx.sample_shape);
    train::TrainConfig search = training.config(train_set.size(), ctx.recipe.threads, ctx.work_dir,
                                                ctx.key, ctx.quiet);
    train::TrainConfig finetune = search;
    finetune.epochs = finetune_epochs;
    finetune.optimizer.lr = finetune_lr > 0 ? finetune_lr : search.optimizer.lr / 5;
    finetune.schedule.warmup_steps = 0;
    finetune.checkpoint_path += ".finetune";
    distillation::PddResult res = distillation::pdd(load_module(ctx.ref_models.at(0)), student, pdd, ctx.sample_shape,
                                                    train_set, search, finetune);
    torch::jit::Module out = export_module(student);
    out.eval();
    save_module(out, ctx.output_model);
    ctx.details["result"] = res.prune.to_json();
    nlohmann::json groups = nlohmann::json::array();
    for (const auto& g : res.groups) groups.push_back({{"name", g.name}, {"before", g.before}, {"after", g.after}});
    ctx.details["result"]["groups"] = groups;  // every gated group, shrunk or not
    ctx.details["gated_macs_per_epoch"] = res.gated_macs;
    nlohmann::json epochs = nlohmann::json::array();
    for (const auto& t : res.search.terms) epochs.push_back({{"total", t.total}, {"kd", t.kd}, {"budget", t.extra}});
    ctx.details["epochs"] = epochs;
    ctx.details["train_seconds"] = res.search.train.seconds + res.finetune.train.seconds;
  }
};

}  // namespace

std::unique_ptr<Stage> parse_pdd_stage(Fields& f, const ParseInfo& info) {
  auto s = std::make_unique<PddStage>();
  if (auto ref = parse_model_ref(f, "teacher", info.index, info.base_dir)) s->teacher = *ref;
  s->pdd.target_macs = f.number("target_macs", 0.6, 0, 1, true, true);
  s->pdd.budget_weight = f.number("budget_weight", 5.0, 0, 1e6, true);
  s->pdd.gate_lr = f.number("gate_lr", distillation::PddOptions{}.gate_lr, 0, 100, true);
  s->pdd.budget_tolerance = f.number("budget_tolerance", distillation::PddOptions{}.budget_tolerance, 0, 1, false, true);
  s->pdd.min_group_keep = f.number("min_group_keep", distillation::PddOptions{}.min_group_keep, 0, 1, true);
  s->pdd.distill.temperature = f.number("temperature", 4.0, 0, 1000, true);
  s->pdd.distill.alpha = f.number("alpha", 0.9, 0, 1);
  s->finetune_epochs = f.integer("finetune_epochs", 0, 0, 100000);
  s->finetune_lr = f.number("finetune_lr", 0, 0, 100);
  s->pdd.one_schedule = f.boolean("one_schedule", false);
  s->pdd.budget_by_importance = f.boolean("budget_by_importance", false);
  if (s->pdd.one_schedule && s->finetune_lr > 0) {
    f.error("finetune_lr", "sets a restarted fine-tuning's rate; one_schedule continues the search's schedule");
  }
  s->training.read(f, default_training(f, info));
  return s;
}

}  // namespace compress::pipeline
