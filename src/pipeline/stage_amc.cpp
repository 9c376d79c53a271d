// amc: a DDPG agent learns a keep ratio per channel group under a MACs
// budget (docs/amc.md); the best episode's pruning (the best few on
// validation re-scored on a second held-out set) is the stage's model,
// optionally fine-tuned as the prune stage does. The validation images are
// held out of the training split; the test set stays unseen.
#include <ATen/Parallel.h>

#include "compress/amc/environment.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/threads.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class AmcStage : public Stage {
 public:
  double target_macs = 0.5;
  int64_t episodes = 300, warmup = 100, val_size = 2000, recalibrate_bn = 4, rerank = 10, rerank_size = 5000;
  double min_keep = 0.2;
  bool log_macs_reward = false;
  uint64_t seed = 0;
  TrainingOptions finetune;  // epochs 0: no fine-tuning

  nlohmann::json options() const override {
    return {{"target_macs", target_macs}, {"episodes", episodes},       {"warmup", warmup},
            {"val_size", val_size},       {"recalibrate_bn", recalibrate_bn}, {"rerank", rerank},
            {"rerank_size", rerank_size}, {"min_keep", min_keep},
            {"log_macs_reward", log_macs_reward}, {"seed", seed},        {"finetune", finetune.to_json()}};
  }
  bool needs_data() const override { return true; }

  void run(StageContext& ctx) override {
    compress::set_num_threads(ctx.recipe.threads);
    Graph graph = load_graph(ctx.input_model, ctx.sample_shape);
    const data::TensorDataset& train_set = ctx.data.train();
    amc::SearchData split =
        amc::split_search_data(train_set, val_size, recalibrate_bn, seed, "the recipe's data", rerank > 0 ? rerank_size : 0);
    amc::PruningEnvConfig ec;
    ec.target_macs = target_macs;
    ec.min_keep = min_keep;
    ec.recalibrate_batches = recalibrate_bn;
    ec.log_macs_reward = log_macs_reward;
    amc::PruningEnvironment env(graph, split.validation, &split.calibration, ec);

    amc::DdpgConfig dc;
    dc.seed = seed;
    dc.action_low = ec.min_keep;
    dc.action_high = ec.max_keep;
    std::vector<amc::EpisodeOutcome> outcomes;
    nlohmann::json rewards = nlohmann::json::array();
    amc::SearchResult search = amc::search(env, dc, episodes, warmup, [&](const amc::EpisodeLog& e) {
      outcomes.push_back(env.last_outcome());
      rewards.push_back({e.episode, e.reward, env.last_outcome().accuracy});
    });
    // The best few on validation re-scored on the selection set (as compress amc does).
    const std::vector<amc::RankedPolicy> ranked = amc::rerank(env, outcomes, split.selection, rerank);
    const int64_t chosen = ranked.empty() ? search.best_episode : ranked.front().episode;
    const std::vector<int64_t>& keep = outcomes.at(static_cast<size_t>(chosen)).keep;
    pruning::PruneResult result;
    torch::jit::Module pruned = export_module(env.pruned(keep, &result));

    ctx.details["result"] = result.to_json();
    ctx.details["ratios"] = env.prune_ratios(keep);
    ctx.details["best_episode"] = chosen;
    ctx.details["best_val_accuracy"] = rewards.at(static_cast<size_t>(chosen))[2];
    if (!ranked.empty()) ctx.details["best_selection_accuracy"] = ranked.front().selection;
    ctx.details["policy_val_accuracy"] = env.last_outcome().accuracy;  // the noise-free episode after the search
    ctx.details["episodes"] = rewards;  // [episode, reward, validation top-1]
    if (finetune.recipe.epochs > 0) {
      train::TrainConfig cfg = finetune.config(train_set.size(), ctx.recipe.threads, ctx.work_dir, ctx.key, ctx.quiet);
      pruned.train();
      train::Trainer trainer(pruned, cfg);
      auto curve = std::make_shared<LossCurve>();
      trainer.add_callback(curve);
      ctx.details["train_seconds"] = trainer.fit(train_set).seconds;
      ctx.details["loss_curve"] = curve->to_json();
    }
    pruned.eval();
    save_module(pruned, ctx.output_model);
  }
};

}  // namespace

std::unique_ptr<Stage> parse_amc_stage(Fields& f, const ParseInfo&) {
  auto s = std::make_unique<AmcStage>();
  if (!f.has("target_macs")) f.error("", "missing \"target_macs\" (the fraction of the MACs to keep, in (0, 1))");
  s->target_macs = f.number("target_macs", 0.5, 0, 1, true, true);
  s->episodes = f.integer("episodes", 300, 1, 1 << 20);
  s->warmup = f.integer("warmup", std::min<int64_t>(100, s->episodes / 3), 0, 1 << 20);
  if (s->warmup >= s->episodes)
    f.error("warmup", std::to_string(s->warmup) + " random episodes leave none of the " + std::to_string(s->episodes) +
                          " for the learned policy");
  s->val_size = f.integer("val_size", 2000, 1, 1 << 30);
  s->recalibrate_bn = f.integer("recalibrate_bn", 4, 0, 100000);
  s->rerank = f.integer("rerank", 10, 0, 1 << 20);
  s->rerank_size = f.integer("rerank_size", 5000, 1, 1 << 30);
  s->min_keep = f.number("min_keep", 0.2, 0, 1, true, false);
  s->log_macs_reward = f.boolean("log_macs_reward", false);
  s->seed = uint64_t(f.integer("seed", 0, 0));
  s->finetune = read_finetune(f);
  return s;
}

}  // namespace compress::pipeline
