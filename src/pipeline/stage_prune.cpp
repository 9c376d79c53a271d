// prune: structured pruning under a MACs or ratio budget, optionally
// followed by batch-norm recalibration and fine-tuning.
#include <ATen/Parallel.h>

#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/pruning/prune.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class PruneStage : public Stage {
 public:
  pruning::PruneOptions prune;
  int64_t recalibrate_bn = 0;
  TrainingOptions finetune;  // epochs 0: no fine-tuning

  nlohmann::json options() const override {
    nlohmann::json j = prune.to_json();
    j["recalibrate_bn"] = recalibrate_bn;
    j["finetune"] = finetune.to_json();
    return j;
  }
  bool needs_data() const override {
    return recalibrate_bn > 0 || finetune.recipe.epochs > 0 || scores_on_data();
  }

  bool scores_on_data() const {
    return prune.criterion == pruning::Criterion::Taylor || prune.criterion == pruning::Criterion::Attention;
  }

  void run(StageContext& ctx) override {
    at::set_num_threads(ctx.recipe.threads);
    Graph graph = load_graph(ctx.input_model, ctx.sample_shape, ctx.sample_dtype);
    pruning::PruneOptions o = prune;
    if (scores_on_data()) o.data = &ctx.data.train();
    pruning::PruneResult result = pruning::prune(graph, o);
    if (recalibrate_bn > 0)
      ctx.details["batch_norms_recalibrated"] = pruning::recalibrate_batch_norm(graph, ctx.data.train(), recalibrate_bn);
    torch::jit::Module pruned = export_module(graph);
    if (finetune.recipe.epochs > 0) {
      const data::TensorDataset& train_set = ctx.data.train();
      train::TrainConfig cfg = finetune.config(train_set.size(), ctx.recipe.threads, ctx.work_dir,
                                               ctx.key, ctx.quiet);
      pruned.train();
      train::Trainer trainer(pruned, cfg);
      auto curve = std::make_shared<LossCurve>();
      trainer.add_callback(curve);
      train::TrainResult res = trainer.fit(train_set);
      ctx.details["loss_curve"] = curve->to_json();
      ctx.details["train_seconds"] = res.seconds;
    }
    pruned.eval();
    save_module(pruned, ctx.output_model);
    ctx.details["result"] = result.to_json();
  }
};

}  // namespace

std::unique_ptr<Stage> parse_prune_stage(Fields& f, const ParseInfo&) {
  auto s = std::make_unique<PruneStage>();
  auto& o = s->prune;
  if (f.has("target_macs")) o.target_macs = f.optional_number("target_macs", 0, 1, true, true);
  if (f.has("ratio")) o.ratio = f.optional_number("ratio", 0, 1, true, true);
  if (f.has("target_macs") && f.has("ratio")) f.error("ratio", "give one budget: target_macs or ratio, not both");
  if (!f.has("target_macs") && !f.has("ratio"))
    f.error("", "missing a budget: \"target_macs\" (fraction of the MACs to keep) or \"ratio\" (of channels to remove)");
  const std::string criterion = f.string("criterion", "l1", {"l1", "l2", "bn", "fpgm", "taylor", "attention", "random"});
  o.criterion = pruning::parse_criterion(criterion);
  o.global = f.boolean("global", false);
  o.round_to = f.integer("round_to", 1, 1, 4096);
  o.min_channels = f.integer("min_channels", 1, 1, 1 << 20);
  o.ignore = f.strings("ignore");
  o.seed = uint64_t(f.integer("seed", 0, 0));
  s->recalibrate_bn = f.integer("recalibrate_bn", 0, 0, 100000);
  s->finetune = read_finetune(f);
  return s;
}

}  // namespace compress::pipeline
