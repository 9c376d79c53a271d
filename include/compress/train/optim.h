#pragma once
// Optimisers and learning-rate schedules over plain tensors. Written here
// rather than taken from torch::optim so the toolkit only needs
// <torch/script.h>; the update rules follow PyTorch's documented ones.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace compress::train {

// Parameters with settings of their own, chosen by state_dict name. A
// pattern is an exact name or a glob with '*' ("layer1.*", "*.scale").
// A parameter belongs to the first group with a matching pattern, else to
// the default group (the config's own lr and weight_decay).
struct ParamGroup {
  std::string name;                  // for messages
  std::vector<std::string> match;    // patterns
  bool frozen = false;               // not trained: no gradient, no update
  std::optional<double> lr;          // base learning rate; the schedule scales it like the default
  std::optional<double> weight_decay;
};

// Whether `name` matches a group pattern (exact, or '*' globs).
bool matches_pattern(const std::string& pattern, const std::string& name);

struct OptimizerConfig {
  std::string kind = "sgd";  // sgd | adam | adamw
  double lr = 0.1;
  double momentum = 0.9;      // sgd
  bool nesterov = false;      // sgd
  double weight_decay = 0.0;  // sgd/adam: L2 added to the gradient; adamw: decoupled
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw
  // Weight decay on 1-D tensors (biases, norm scales) usually hurts and is
  // off unless asked for.
  bool decay_1d = false;
  std::vector<ParamGroup> groups;  // empty: every parameter in the default group
};

struct NamedTensor {
  std::string name;
  at::Tensor value;
};

class Optimizer {
 public:
  // Frozen parameters (see ParamGroup) are set to requires_grad=false and
  // left out. Error(BadInput) when a group matches no parameter.
  Optimizer(std::vector<NamedTensor> params, OptimizerConfig cfg);

  // One update with learning rate `lr`; parameters without a gradient are skipped.
  void step(double lr);
  // Drops every gradient (cheaper and more exact than filling with zeros).
  void zero_grad();

  const std::vector<NamedTensor>& params() const { return params_; }
  const OptimizerConfig& config() const { return cfg_; }
  int64_t steps_taken() const { return steps_; }

  // Momentum / moment buffers keyed "<param>.<buffer>", plus the step count:
  // all a checkpoint needs to continue bit-identically.
  std::vector<NamedTensor> state() const;
  void load_state(const std::vector<NamedTensor>& state, int64_t steps);

 private:
  std::vector<NamedTensor> params_;
  OptimizerConfig cfg_;
  std::vector<at::Tensor> buf1_, buf2_;  // sgd: momentum; adam: first and second moments
  std::vector<double> lr_scale_, weight_decay_;  // per parameter, from its group
  int64_t steps_ = 0;
};

// Global L2 norm of all gradients, scaled down to `max_norm` when above it.
// Returns the norm before clipping.
double clip_grad_norm(const std::vector<NamedTensor>& params, double max_norm);

struct ScheduleConfig {
  std::string kind = "cosine";  // constant | step | cosine
  int64_t warmup_steps = 0;
  double warmup_start_factor = 0.1;  // lr at step 0 = base * this, rising linearly
  int64_t step_size = 1;             // step: multiply by gamma every step_size steps
  double gamma = 0.1;
  double min_lr = 0.0;               // cosine: floor reached at the last step
};

// Learning rate for optimizer step `step` (0-based) of `total_steps`.
double lr_at(const ScheduleConfig& s, double base_lr, int64_t step, int64_t total_steps);

}  // namespace compress::train
