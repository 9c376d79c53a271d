#pragma once
// Synchronised batch norm for data-parallel training (`--batch-norm sync`):
// the batch statistics of a training step are those of the global batch, all
// ranks together, so W ranks with batch B / W each compute what one process
// computes with batch B (running statistics included).
//
// A model's batch norms run inside its TorchScript graph as aten::batch_norm.
// with_sync_batch_norm() gives a training twin of the module: a clone of its
// types and methods that shares every parameter and buffer with the original,
// in which each aten::batch_norm is compress_train::sync_batch_norm (same
// arguments). The trainer runs the twin's forward and saves the original, so
// no saved model ever names the training op. In eval mode, or with no group
// set, the op is plain batch norm.
//
// Per training call the op makes two all-reduces forward (sum and count, then
// the centred sum of squares: two passes, as exact as one process) and one
// backward (the sums of dy and dy * x_hat). Weight and bias gradients stay
// each rank's own: the trainer averages them with the others.
#include <memory>

#include <ATen/ATen.h>
#include <c10/util/Optional.h>
#include <torch/script.h>

namespace compress::train {

class ProcessGroup;

// The training twin of `module` (see above); `replaced` (optional) receives
// how many aten::batch_norm calls it rewrote, over all methods of all
// submodules, including those inside if/loop blocks.
torch::jit::Module with_sync_batch_norm(const torch::jit::Module& module, int* replaced = nullptr);

// While alive, sync_batch_norm reduces over `group` (null: this process
// alone). The trainer holds one for the length of fit(); one at a time.
class SyncBatchNormScope {
 public:
  explicit SyncBatchNormScope(std::shared_ptr<ProcessGroup> group);
  ~SyncBatchNormScope();
  SyncBatchNormScope(const SyncBatchNormScope&) = delete;
  SyncBatchNormScope& operator=(const SyncBatchNormScope&) = delete;
};

// The op itself, callable from C++ (the graph calls it through the
// dispatcher as compress_train::sync_batch_norm). Arguments as
// at::batch_norm; differentiable in input, weight and bias; updates the
// running statistics in place when training.
at::Tensor sync_batch_norm(const at::Tensor& input, const c10::optional<at::Tensor>& weight,
                           const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& running_mean,
                           const c10::optional<at::Tensor>& running_var, bool training, double momentum, double eps,
                           bool cudnn_enabled);

}  // namespace compress::train
