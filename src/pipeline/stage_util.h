#pragma once
// Pieces the stages share: the training options (the same names as the
// CLI's --epochs, --lr, ...), a loss-curve recorder, and loading a model's graph.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/ir/graph.h"
#include "compress/models/zoo.h"
#include "compress/pipeline/recipe.h"
#include "compress/train/trainer.h"

namespace compress::pipeline {

// Training settings; unset ones take the zoo architecture's recipe
// (models::default_recipe), or models::Recipe{} for a saved model.
struct TrainingOptions {
  models::Recipe recipe;
  uint64_t seed = 0;
  int64_t checkpoint_steps = 0;  // also checkpoint every N steps (0: at epoch ends only)
  // Reads epochs, batch_size, optimizer, lr, momentum, nesterov, weight_decay,
  // schedule, warmup_epochs, label_smoothing, crop_padding, flip, seed,
  // checkpoint_steps.
  // `defaults` fills what the JSON leaves out.
  void read(Fields& f, const models::Recipe& defaults);
  nlohmann::json to_json() const;
  // The trainer's configuration; checkpoints in `work_dir` (resumed when a
  // run of the same stage was interrupted), `fingerprint` guards them.
  train::TrainConfig config(int64_t train_size, int threads, const std::string& work_dir,
                            const std::string& fingerprint, bool quiet) const;
};

// The optional "finetune" object of a stage (prune, sparsify): training
// options over the CLI's fine-tuning defaults (SGD, cosine, lr 0.01, weight
// decay 5e-4, 0 epochs: none).
TrainingOptions read_finetune(Fields& f);

// The default training recipe for a stage of a recipe whose model is `arch`
// ("" for a saved model), or the one named by the stage's "recipe" key.
models::Recipe default_training(Fields& f, const ParseInfo& info);

// Mean training loss over windows of steps (about 200 points a run), for the report's loss curves.
class LossCurve : public train::Callback {
 public:
  void after_step(train::StepContext& ctx) override;
  nlohmann::json to_json() const;  // [[step, loss], ...]

 private:
  std::vector<std::pair<int64_t, double>> points_;
  double sum_ = 0;
  int64_t count_ = 0;
};

// The model's graph with example inputs [1, sample...].
Graph load_graph(const std::string& path, const std::vector<int64_t>& sample_shape,
                 at::ScalarType dtype = at::kFloat);

// The stage's checkpoint file (in its folder), removed after a successful run.
std::string checkpoint_path(const StageContext& ctx);

}  // namespace compress::pipeline
