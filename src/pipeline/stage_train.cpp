// train: trains the current model (a new zoo model, or fine-tunes a saved one).
#include <filesystem>

#include <ATen/Parallel.h>

#include "compress/io.h"
#include "compress/threads.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class TrainStage : public Stage {
 public:
  TrainingOptions training;
  std::string cache;  // train once: the result is kept here and reused while the file exists

  nlohmann::json options() const override {
    nlohmann::json j = training.to_json();
    j["cache"] = cache;
    return j;
  }
  bool needs_data() const override { return true; }
  // The cache, once it exists, is an input: replacing it reruns the stage.
  std::vector<ModelRef> model_refs() const override {
    if (cache.empty() || !std::filesystem::exists(cache)) return {};
    ModelRef ref;
    ref.file = cache;
    return {ref};
  }

  void run(StageContext& ctx) override {
    if (!cache.empty() && std::filesystem::exists(cache)) {
      copy_model(cache, ctx.output_model);
      ctx.details["reused"] = cache;
      return;
    }
    const data::TensorDataset& train_set = ctx.data.train();
    torch::jit::Module module = load_module(ctx.input_model);
    train::TrainConfig cfg = training.config(train_set.size(), ctx.recipe.threads, ctx.work_dir,
                                             ctx.key, ctx.quiet);
    compress::set_num_threads(cfg.threads);
    train::Trainer trainer(module, cfg);
    auto curve = std::make_shared<LossCurve>();
    trainer.add_callback(curve);
    train::TrainResult res = trainer.fit(train_set);
    module.eval();
    save_module(module, ctx.output_model);
    if (!cache.empty()) copy_model(ctx.output_model, cache);
    ctx.details["steps"] = res.steps;
    ctx.details["train_seconds"] = res.seconds;
    ctx.details["loss_curve"] = curve->to_json();
    nlohmann::json epochs = nlohmann::json::array();
    for (const auto& e : res.history) epochs.push_back({{"epoch", e.epoch}, {"loss", e.train_loss}, {"accuracy", e.train_acc}});
    ctx.details["epochs"] = epochs;
  }

  static void copy_model(const std::string& from, const std::string& to) {
    write_atomically(to, [&](const std::string& tmp) {
      std::filesystem::copy_file(from, tmp, std::filesystem::copy_options::overwrite_existing);
    });
  }
};

}  // namespace

std::unique_ptr<Stage> parse_train_stage(Fields& f, const ParseInfo& info) {
  auto s = std::make_unique<TrainStage>();
  s->training.read(f, default_training(f, info));
  s->cache = f.string("cache", "");
  if (!s->cache.empty() && !std::filesystem::path(s->cache).is_absolute() && !info.base_dir.empty())
    s->cache = (std::filesystem::path(info.base_dir) / s->cache).lexically_normal().string();
  return s;
}

}  // namespace compress::pipeline
