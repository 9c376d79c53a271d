#pragma once
// Knowledge distillation: a frozen teacher (any saved model) guides the
// training of a student (a graph: a saved model, a zoo architecture at some
// width, a pruned copy of the teacher) through the toolkit's Trainer.
//
//   distillation::DistillOptions o;            // KD, T = 4, alpha = 0.9
//   o.losses = {Loss::KD, Loss::FitNet};
//   o.features = {{"features.6", "features.10"}};   // student value = teacher value
//   distillation::Distiller d(load_module("teacher.pt"), import_module(student), o, {1, 28, 28});
//   d.fit(train_set, train_config);
//   save_module(d.student_module(), "student.pt");
//
// Features are IR values addressed by name (`compress inspect --graph` lists
// them); both models are exported with taps on them (docs/ir.md). Hint
// adapters (FitNets) are trained with the student in a parameter group of
// their own ("distill_adapter_*") and are not part of the saved student.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/script.h>

#include "compress/data/dataset.h"
#include "compress/ir/graph.h"
#include "compress/train/trainer.h"

namespace compress::distillation {

enum class Loss {
  KD,         // logits: alpha * KL(teacher/T || student/T) * T^2 + (1 - alpha) * cross-entropy
  FitNet,     // hint_weight * MSE(adapter(student value), teacher value), per feature pair
  Attention,  // at_beta / 2 * attention_loss(student value, teacher value), per feature pair
};
// "kd" | "fitnet" | "at"; Error(BadInput) otherwise.
Loss parse_loss(const std::string& name);
const char* loss_name(Loss loss);

struct FeaturePair {
  std::string student, teacher;  // IR value names
};
// "STUDENT_VALUE=TEACHER_VALUE"; Error(BadInput) otherwise.
FeaturePair parse_feature_pair(const std::string& text);

// When the teacher's outputs for the whole training set are computed once,
// before training, and looked up per batch (valid only when the batches are
// not augmented or normalised by the loader: the teacher is deterministic in
// eval mode).
enum class TeacherCache { Auto, On, Off };

struct DistillOptions {
  std::vector<Loss> losses = {Loss::KD};
  double temperature = 4.0;  // > 0
  double alpha = 0.9;        // KD's weight against cross-entropy, in [0, 1]; without KD: cross-entropy alone
  std::vector<FeaturePair> features;  // the pairs FitNet and Attention compare
  double hint_weight = 1.0;  // >= 0
  double at_beta = 1000.0;   // >= 0; the authors' value for mean-reduced maps
  std::optional<double> adapter_lr;  // default: the student's learning rate
  TeacherCache cache = TeacherCache::Auto;
  int64_t cache_limit_bytes = int64_t(1) << 30;  // Auto caches only when the outputs fit in this

  // Error(BadInput) for T <= 0, alpha outside [0, 1], negative weights, a
  // feature loss without feature pairs, or pairs without a feature loss.
  void validate() const;
  // One line of every setting that changes what training computes (for checkpoints).
  std::string describe() const;
};

// Mean of each loss term over an epoch (0 for terms not in use).
struct EpochTerms {
  double cross_entropy = 0, kd = 0, hint = 0, attention = 0, extra = 0, total = 0;
};

struct DistillResult {
  train::TrainResult train;
  std::vector<EpochTerms> terms;  // per epoch
  bool teacher_cached = false;
  double teacher_seconds = 0;     // teacher forward passes: the cache fill, or during the steps
};

class Distiller {
 public:
  // `input_shape`: one sample without the batch dimension ({1, 28, 28}); the
  // models' output shapes and the feature shapes are checked on it here,
  // before any training. Error(BadInput) when the teacher's and the
  // student's outputs differ in shape, a feature name does not exist (the
  // closest name is suggested) or a pair's shapes cannot be adapted (FitNet:
  // same rank, 2-D to 4-D, equal sizes but the channel dim; Attention: 4-D,
  // equal spatial size).
  Distiller(torch::jit::Module teacher, Graph student, DistillOptions options, std::vector<int64_t> input_shape);

  // Trains the student under `config` (its epochs, optimizer, schedule,
  // checkpoints...; the adapters' group and the distillation settings are
  // added to it). The teacher stays in eval mode without gradients.
  DistillResult fit(const data::TensorDataset& train, train::TrainConfig config,
                    const data::TensorDataset* val = nullptr);

  // The student with the trained weights: its graph, and its export (no
  // taps, no adapters), in eval mode.
  const Graph& student() const { return student_; }
  torch::jit::Module student_module() const;
  // Hooks for methods built on distillation (PDD's channel gates): the
  // module that is trained (the student with taps and adapters: register
  // extra parameters on it; only the graph's own are saved), a parameter
  // group for them, a term added to the loss (reported as `extra`), and
  // trainer callbacks. Set before fit().
  torch::jit::Module& training_module() { return training_; }
  void add_param_group(train::ParamGroup group) { extra_groups_.push_back(std::move(group)); }
  void set_extra_loss(std::function<at::Tensor(train::StepContext&)> term) { extra_loss_ = std::move(term); }
  void add_callback(std::shared_ptr<train::Callback> cb) { callbacks_.push_back(std::move(cb)); }

  // The adapters' shapes, by parameter name (for tests and reports).
  std::vector<std::pair<std::string, std::vector<int64_t>>> adapter_shapes() const;

 private:
  struct Adapter {
    std::string weight, bias;  // parameter names on the training module
    int rank = 0;              // of the student feature: 4 -> 1x1 conv, 2 or 3 -> linear on the last dim
  };
  bool uses(Loss l) const;
  void check_shapes(const Graph& teacher_graph);
  at::Tensor adapt(size_t pair, const at::Tensor& feature) const;

  torch::jit::Module teacher_;   // eval mode, frozen; with taps when features are used
  Graph student_;
  torch::jit::Module training_;  // the student with taps and adapters
  DistillOptions options_;
  std::vector<Adapter> adapters_;  // per feature pair (FitNet only)
  std::vector<int64_t> adapter_out_channels_;  // per pair: the teacher value's channels (FitNet only)
  std::vector<size_t> student_tap_, teacher_tap_;  // per pair: index among the models' taps
  std::vector<train::ParamGroup> extra_groups_;
  std::function<at::Tensor(train::StepContext&)> extra_loss_;
  std::vector<std::shared_ptr<train::Callback>> callbacks_;
};

}  // namespace compress::distillation
