#pragma once
// Trains a TorchScript module with LibTorch's autograd. The same trainer runs
// every fine-tuning in the toolkit; passes attach to it through callbacks.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/script.h>

#include "compress/data/dataset.h"
#include "compress/data/loader.h"
#include "compress/train/distributed.h"
#include "compress/train/evaluate.h"
#include "compress/train/optim.h"

namespace compress::train {

struct TrainConfig {
  int64_t epochs = 1;
  int64_t batch_size = 128;
  uint64_t seed = 0;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  double grad_clip = 0;        // max global L2 norm of the gradients; 0 = off
  double label_smoothing = 0;  // cross-entropy target smoothing in [0, 1)
  data::Augment augment;
  at::Tensor mean, std;        // optional per-channel input normalisation
  int threads = 2;             // intra-op threads while training (0 = leave as is)

  std::string checkpoint_path;       // empty = no checkpoints
  int64_t checkpoint_every_steps = 0;  // also at every epoch end; 0 = epoch ends only
  bool resume = false;               // continue from checkpoint_path when it exists
  int64_t stop_after_steps = -1;     // stop (with a checkpoint) after this many steps in total; for tests

  // Data-parallel training over the ranks of `group` (docs/distributed.md);
  // null: this process alone. batch_size is the global batch: each rank takes
  // batch_size / world_size samples of it, so the steps, the learning-rate
  // schedule and a checkpoint mean the same for any number of ranks. Rank 0
  // alone writes checkpoints and prints progress.
  std::shared_ptr<ProcessGroup> group;
  int64_t bucket_bytes = 1 << 20;  // gradients are all-reduced in buckets of about this size
  bool overlap = true;             // start a bucket's all-reduce from gradient hooks, during backward
  // Batch norm while training: "local" (PyTorch's default: each rank's batch
  // statistics; rank 0's running statistics copied to every rank before each
  // step, as DDP's broadcast_buffers does) or "frozen" (the BatchNorm
  // submodules stay in eval mode: running statistics used, never updated;
  // results independent of the number of ranks) or "sync" (the statistics
  // of the global batch, all ranks together: W ranks train as one process
  // with the whole batch; train/sync_batch_norm.h).
  std::string batch_norm = "local";

  bool quiet = false;
  double log_every_s = 15;  // when stderr is not a terminal: a plain line this often
  // Describes the model/data; a checkpoint of another run is refused. The
  // training settings above are compared on resume as well (each by name).
  std::string fingerprint;
};

// What a callback sees at each step. `loss` may be replaced by on_loss (add a
// penalty); gradients may be edited in after_backward (masks, L1 on BN).
struct StepContext {
  torch::jit::Module* module = nullptr;
  Optimizer* optimizer = nullptr;
  int64_t epoch = 0, batch = 0, step = 0, total_steps = 0;
  double lr = 0;
  at::Tensor inputs, labels, logits, loss;
  // Which samples of the training set the batch holds (int64 [B]): lets a
  // loss look up per-sample data computed before training (cached teacher outputs).
  at::Tensor indices;
  // When the module's forward returns a tuple (logits, features...), e.g. an
  // export with taps: the tensors after the logits, in order.
  std::vector<at::Tensor> features;
  // The data-parallel job (null: this process alone): a callback that keeps
  // statistics of the batch reduces them over the ranks, so every rank holds
  // what one process with the whole global batch would.
  ProcessGroup* group = nullptr;
};

struct EpochStats {
  int64_t epoch = 0;
  double train_loss = 0, train_acc = 0;
  double seconds = 0, samples_per_s = 0;
  std::optional<EvalResult> val;
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_loss(StepContext&) {}         // before backward
  virtual void after_backward(StepContext&) {}  // gradients exist, before clipping and the update
  virtual void after_step(StepContext&) {}      // after the optimizer update
  virtual void on_epoch_end(const EpochStats&) {}
};

struct TrainResult {
  std::vector<EpochStats> history;
  int64_t steps = 0;
  double seconds = 0;   // wall time of the steps run in this call
  // CPU time of this process (all its threads) over the same span: with the
  // wall time, how much of the machine the steps took; a load-independent
  // cost per sample (docs/distributed.md).
  double cpu_seconds = 0;
  bool stopped_early = false;
};

class Trainer {
 public:
  Trainer(torch::jit::Module module, TrainConfig cfg);

  void add_callback(std::shared_ptr<Callback> cb) { callbacks_.push_back(std::move(cb)); }
  // Replaces the cross-entropy loss (e.g. distillation, feature losses); gets
  // the context with logits (and features) set.
  void set_loss(std::function<at::Tensor(StepContext&)> fn) { loss_fn_ = std::move(fn); }

  TrainResult fit(const data::TensorDataset& train, const data::TensorDataset* val = nullptr);

  torch::jit::Module& module() { return module_; }

 private:
  void save_checkpoint(int64_t epoch, int64_t next_batch, int64_t step, double loss_sum, int64_t correct,
                       int64_t seen);
  bool load_checkpoint(int64_t& epoch, int64_t& next_batch, int64_t& step, double& loss_sum, int64_t& correct,
                       int64_t& seen);
  // Rank 0 reads the checkpoint and sends what it restored to the others.
  bool resume_distributed(int64_t& epoch, int64_t& next_batch, int64_t& step, double& loss_sum, int64_t& correct,
                          int64_t& seen);
  void set_training_mode();  // train mode, batch norms frozen when asked

  torch::jit::Module module_;
  // With batch_norm "sync" over a group: module_'s twin whose batch norms
  // reduce over the ranks (same tensors); training steps run its forward.
  std::optional<torch::jit::Module> sync_twin_;
  TrainConfig cfg_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  std::function<at::Tensor(StepContext&)> loss_fn_;
  int64_t batches_ = 0, samples_ = 0;  // of the data fit() runs on
};

// Parameters and buffers of a module under their state_dict names.
std::vector<NamedTensor> named_parameters(const torch::jit::Module& m);
std::vector<NamedTensor> named_buffers(const torch::jit::Module& m);

// Seeds LibTorch's default CPU generator (dropout, random init) for one step.
void seed_torch(uint64_t seed);

}  // namespace compress::train
