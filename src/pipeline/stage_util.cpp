#include "stage_util.h"

#include <algorithm>

#include "compress/io.h"
#include "compress/ir/import.h"

namespace compress::pipeline {

void TrainingOptions::read(Fields& f, const models::Recipe& d) {
  recipe.epochs = f.integer("epochs", d.epochs, 0, 100000);
  recipe.batch_size = f.integer("batch_size", d.batch_size, 1, 1 << 20);
  recipe.optimizer = f.string("optimizer", d.optimizer, {"sgd", "adam", "adamw"});
  recipe.lr = f.number("lr", d.lr, 0, 100, /*lo_open=*/true);
  recipe.momentum = f.number("momentum", d.momentum, 0, 1, false, /*hi_open=*/true);
  recipe.nesterov = f.boolean("nesterov", recipe.optimizer == "sgd" && d.nesterov);
  recipe.weight_decay = f.number("weight_decay", d.weight_decay, 0, 1);
  recipe.schedule = f.string("schedule", d.schedule, {"constant", "step", "cosine"});
  recipe.warmup_epochs = f.number("warmup_epochs", d.warmup_epochs, 0, 1000);
  recipe.label_smoothing = f.number("label_smoothing", d.label_smoothing, 0, 1, false, true);
  recipe.grad_clip = f.number("grad_clip", d.grad_clip, 0);
  recipe.crop_padding = f.integer("crop_padding", d.crop_padding, 0, 64);
  recipe.horizontal_flip = f.boolean("flip", d.horizontal_flip);
  seed = uint64_t(f.integer("seed", 0, 0));
  checkpoint_steps = f.integer("checkpoint_steps", 0, 0);
}

nlohmann::json TrainingOptions::to_json() const {
  nlohmann::json j = {{"epochs", recipe.epochs},       {"batch_size", recipe.batch_size},
          {"optimizer", recipe.optimizer}, {"lr", recipe.lr},
          {"momentum", recipe.momentum},   {"nesterov", recipe.nesterov},
          {"weight_decay", recipe.weight_decay}, {"schedule", recipe.schedule},
          {"warmup_epochs", recipe.warmup_epochs}, {"label_smoothing", recipe.label_smoothing},
          {"grad_clip", recipe.grad_clip}, {"crop_padding", recipe.crop_padding},
          {"flip", recipe.horizontal_flip}, {"seed", seed}};
  // Only when set: how often checkpoints are written does not change the
  // result, and the keys of recipes written before the option stay the same.
  if (checkpoint_steps > 0) j["checkpoint_steps"] = checkpoint_steps;
  return j;
}

train::TrainConfig TrainingOptions::config(int64_t train_size, int threads, const std::string& work_dir,
                                           const std::string& fingerprint, bool quiet) const {
  train::TrainConfig cfg;
  cfg.epochs = recipe.epochs;
  cfg.batch_size = recipe.batch_size;
  cfg.seed = seed;
  cfg.optimizer.kind = recipe.optimizer;
  cfg.optimizer.lr = recipe.lr;
  cfg.optimizer.momentum = recipe.momentum;
  cfg.optimizer.nesterov = recipe.nesterov;
  cfg.optimizer.weight_decay = recipe.weight_decay;
  cfg.schedule.kind = recipe.schedule;
  const int64_t steps_per_epoch = std::max<int64_t>(1, train_size / recipe.batch_size);
  cfg.schedule.warmup_steps = int64_t(recipe.warmup_epochs * double(steps_per_epoch));
  cfg.schedule.step_size = std::max<int64_t>(1, 3 * steps_per_epoch);  // the CLI's --step-epochs default
  cfg.label_smoothing = recipe.label_smoothing;
  cfg.grad_clip = recipe.grad_clip;
  cfg.augment.crop_padding = recipe.crop_padding;
  cfg.augment.horizontal_flip = recipe.horizontal_flip;
  cfg.threads = threads;
  cfg.checkpoint_path = work_dir.empty() ? "" : work_dir + "/checkpoint.pt";
  cfg.checkpoint_every_steps = checkpoint_steps;
  cfg.resume = !work_dir.empty();
  cfg.fingerprint = fingerprint;
  cfg.quiet = quiet;
  return cfg;
}

models::Recipe default_training(Fields& f, const ParseInfo& info) {
  std::vector<std::string> names = models::zoo_names();
  const std::string name = f.string("recipe", info.arch, names);
  return name.empty() ? models::Recipe{} : models::default_recipe(name);
}

void LossCurve::after_step(train::StepContext& ctx) {
  // About 200 points whatever the run's length.
  const int64_t window = std::max<int64_t>(1, ctx.total_steps / 200);
  sum_ += ctx.loss.item<double>();
  if (++count_ >= window) {
    points_.emplace_back(ctx.step + 1, sum_ / double(count_));
    sum_ = 0;
    count_ = 0;
  }
}

nlohmann::json LossCurve::to_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : points_) out.push_back({p.first, p.second});
  return out;
}

Graph load_graph(const std::string& path, const std::vector<int64_t>& sample_shape, at::ScalarType dtype) {
  Graph g = import_module(load_module(path));
  Shape shape{1};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  g.set_example_inputs({InputSpec{shape, dtype}});
  return g;
}

std::string checkpoint_path(const StageContext& ctx) { return ctx.work_dir + "/checkpoint.pt"; }

TrainingOptions read_finetune(Fields& f) {
  models::Recipe tune;
  tune.epochs = 0;
  tune.lr = 0.01;
  tune.nesterov = false;
  TrainingOptions options;
  if (const nlohmann::json* ft = f.object("finetune")) {
    Fields g(*ft, f.path_of("finetune"), f.errors());
    options.read(g, tune);
    g.finish();
  } else {
    options.recipe = tune;
  }
  return options;
}

}  // namespace compress::pipeline
