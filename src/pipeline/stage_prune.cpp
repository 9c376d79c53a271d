// prune: structured pruning under a MACs or ratio budget, optionally
// followed by batch-norm recalibration and fine-tuning; with
// "iterative_steps" N, N rounds of them (pruning::prune_iteratively).
#include <ATen/Parallel.h>

#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/pruning/iterative.h"
#include "compress/pruning/prune.h"
#include "compress/threads.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class PruneStage : public Stage {
 public:
  pruning::PruneOptions prune;
  int64_t recalibrate_bn = 0;
  int64_t iterative_steps = 1;
  TrainingOptions finetune;  // epochs 0: no fine-tuning (in all: epochs / iterative_steps per step)

  nlohmann::json options() const override {
    nlohmann::json j = prune.to_json();
    j["recalibrate_bn"] = recalibrate_bn;
    // Only when set: the keys of recipes written before the option stay the same.
    if (iterative_steps > 1) j["iterative_steps"] = iterative_steps;
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
    compress::set_num_threads(ctx.recipe.threads);
    Graph graph = load_graph(ctx.input_model, ctx.sample_shape, ctx.sample_dtype);
    pruning::PruneOptions o = prune;
    if (scores_on_data()) o.data = &ctx.data.train();
    pruning::IterativeOptions iterative;
    iterative.steps = iterative_steps;
    if (recalibrate_bn > 0) {
      iterative.recalibrate_batches = recalibrate_bn;
      iterative.recalibration_data = &ctx.data.train();
    }
    torch::jit::Module pruned;
    nlohmann::json loss_curve = nlohmann::json::array();  // the rounds' curves end to end
    double train_seconds = 0;
    if (finetune.recipe.epochs > 0) {
      iterative.fine_tune = [&](Graph& g, int64_t step, int64_t steps) {
        const data::TensorDataset& train_set = ctx.data.train();
        TrainingOptions per_step = finetune;
        per_step.recipe.epochs = finetune.recipe.epochs / steps;
        // One checkpoint per step: a rerun resumes each step's own training.
        const std::string suffix = steps > 1 ? ":step" + std::to_string(step) : "";
        train::TrainConfig cfg = per_step.config(train_set.size(), ctx.recipe.threads, ctx.work_dir, ctx.key + suffix, ctx.quiet);
        if (steps > 1 && !cfg.checkpoint_path.empty())
          cfg.checkpoint_path = ctx.work_dir + "/checkpoint.step" + std::to_string(step) + ".pt";
        pruned = export_module(g);
        pruned.train();
        train::Trainer trainer(pruned, cfg);
        auto curve = std::make_shared<LossCurve>();
        trainer.add_callback(curve);
        train::TrainResult res = trainer.fit(train_set);
        const int64_t offset = loss_curve.empty() ? 0 : loss_curve.back()[0].get<int64_t>();
        for (nlohmann::json point : curve->to_json()) {
          point[0] = point[0].get<int64_t>() + offset;
          loss_curve.push_back(point);
        }
        train_seconds += res.seconds;
        if (step < steps) update_from_module(g, pruned);  // the next step scores and prunes the fine-tuned weights
      };
    }
    const pruning::IterativeResult run = pruning::prune_iteratively(graph, o, iterative);
    if (recalibrate_bn > 0) ctx.details["batch_norms_recalibrated"] = run.batch_norms_recalibrated;
    if (finetune.recipe.epochs > 0) {
      ctx.details["loss_curve"] = loss_curve;
      ctx.details["train_seconds"] = train_seconds;
    } else {
      pruned = export_module(graph);
    }
    if (iterative_steps > 1)
      for (const pruning::IterativeStep& s : run.steps) ctx.details["iterative_steps"].push_back(s.to_json());
    pruned.eval();
    save_module(pruned, ctx.output_model);
    ctx.details["result"] = run.result.to_json();
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
  s->iterative_steps = f.integer("iterative_steps", 1, 1, 1000);
  s->finetune = read_finetune(f);
  if (s->iterative_steps > 1) {
    if (!f.has("target_macs"))
      f.error("iterative_steps", "splits a \"target_macs\" budget into steps: give target_macs, not ratio");
    const int64_t epochs = s->finetune.recipe.epochs;
    if (epochs == 0 || epochs % s->iterative_steps != 0)
      f.error("iterative_steps", "fine-tunes after every step: finetune.epochs must be a positive multiple of " +
                                     std::to_string(s->iterative_steps) + ", got " + std::to_string(epochs));
  }
  return s;
}

}  // namespace compress::pipeline
