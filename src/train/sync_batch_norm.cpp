#include "compress/train/sync_batch_norm.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>

#include <mutex>
#include <unordered_set>
#include <vector>

#include "compress/error.h"
#include "compress/train/distributed.h"

namespace compress::train {

namespace {

// The group the op reduces over (SyncBatchNormScope). Global rather than
// thread-local: backward may run on the autograd engine's threads.
std::mutex g_mutex;
std::shared_ptr<ProcessGroup> g_group;
bool g_scope_open = false;

std::shared_ptr<ProcessGroup> active_group() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_group;
}

// Sums over every rank, in place (nothing to do for one process).
void all_reduce(at::Tensor& t, const char* what) {
  if (auto g = active_group()) g->all_reduce_sum(t, what);
}

// Every dimension but the channels (1).
std::vector<int64_t> reduced_dims(const at::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

// [C] -> [1, C, 1, ...] to broadcast against the input.
at::Tensor per_channel(const at::Tensor& v, const at::Tensor& like) {
  std::vector<int64_t> shape(size_t(like.dim()), 1);
  shape[1] = v.numel();
  return v.view(shape);
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            const at::Tensor& running_mean, const at::Tensor& running_var, double momentum,
                            double eps) {
    const std::vector<int64_t> dims = reduced_dims(x);
    const int64_t channels = x.size(1);
    // Statistics in double: the sums run over the global batch.
    at::Tensor sums = at::cat({x.sum(dims, false, at::kDouble),
                               at::full({1}, double(x.numel() / channels), x.options().dtype(at::kDouble))});
    all_reduce(sums, "sync batch norm: sum all-reduce");
    const double count = sums[channels].item<double>();
    if (count <= 1) bad_input("sync batch norm needs more than one value per channel over the global batch");
    at::Tensor mean = sums.narrow(0, 0, channels) / count;
    at::Tensor centred = x - per_channel(mean.to(x.scalar_type()), x);
    at::Tensor squares = centred.square().sum(dims, false, at::kDouble);
    all_reduce(squares, "sync batch norm: variance all-reduce");
    at::Tensor var = squares / count;  // biased, as batch norm normalises with
    at::Tensor invstd = (var + eps).rsqrt();
    if (running_mean.defined()) {
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
    }
    if (running_var.defined()) {  // the unbiased variance, as aten::batch_norm keeps
      running_var.mul_(1 - momentum).add_((var * (count / (count - 1))).to(running_var.scalar_type()), momentum);
    }
    at::Tensor xhat = centred * per_channel(invstd.to(x.scalar_type()), x);
    at::Tensor y = xhat;
    if (weight.defined()) y = y * per_channel(weight, x);
    if (bias.defined()) y = y + per_channel(bias, x);
    ctx->save_for_backward({xhat, weight, invstd.to(x.scalar_type())});
    ctx->saved_data["count"] = count;
    ctx->saved_data["has_bias"] = bias.defined();
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& xhat = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& invstd = saved[2];
    const double count = ctx->saved_data["count"].toDouble();
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    at::Tensor dy = grads[0];
    const std::vector<int64_t> dims = reduced_dims(xhat);
    const int64_t channels = xhat.size(1);
    // This rank's sums: its weight and bias gradients (averaged over the
    // ranks by the trainer with every other gradient).
    at::Tensor sum_dy = dy.sum(dims), sum_dy_xhat = (dy * xhat).sum(dims);
    at::Tensor both = at::cat({sum_dy, sum_dy_xhat}).to(at::kDouble);
    all_reduce(both, "sync batch norm: gradient all-reduce");
    at::Tensor mean_dy = (both.narrow(0, 0, channels) / count).to(dy.scalar_type());
    at::Tensor mean_dy_xhat = (both.narrow(0, channels, channels) / count).to(dy.scalar_type());
    at::Tensor scale = weight.defined() ? invstd * weight : invstd;
    at::Tensor dx = (dy - per_channel(mean_dy, dy) - xhat * per_channel(mean_dy_xhat, dy)) * per_channel(scale, dy);
    return {dx, weight.defined() ? sum_dy_xhat : at::Tensor(), has_bias ? sum_dy : at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

const c10::Symbol kSyncBatchNorm = c10::Symbol::fromQualString("compress_train::sync_batch_norm");

int rewrite_block(torch::jit::Block* block) {
  int n = 0;
  for (auto it = block->nodes().begin(); it != block->nodes().end();) {
    torch::jit::Node* node = *it++;
    for (torch::jit::Block* sub : node->blocks()) n += rewrite_block(sub);
    if (node->kind() != c10::aten::batch_norm) continue;
    torch::jit::Node* sync = block->owningGraph()->create(kSyncBatchNorm, node->inputs(), 1);
    sync->insertBefore(node);
    sync->output()->setType(node->output()->type());
    sync->setScope(node->scope());
    node->output()->replaceAllUsesWith(sync->output());
    node->destroy();
    ++n;
  }
  return n;
}

}  // namespace

at::Tensor sync_batch_norm(const at::Tensor& input, const c10::optional<at::Tensor>& weight,
                           const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& running_mean,
                           const c10::optional<at::Tensor>& running_var, bool training, double momentum, double eps,
                           bool cudnn_enabled) {
  if (!training) {
    return at::batch_norm(input, weight, bias, running_mean, running_var, false, momentum, eps, cudnn_enabled);
  }
  if (input.dim() < 2) bad_input("sync batch norm: the input needs a channel dimension (N, C, ...)");
  auto value = [](const c10::optional<at::Tensor>& t) { return t ? *t : at::Tensor(); };
  return SyncBatchNormFunction::apply(input, value(weight), value(bias), value(running_mean), value(running_var),
                                      momentum, eps);
}

SyncBatchNormScope::SyncBatchNormScope(std::shared_ptr<ProcessGroup> group) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_scope_open) failure("sync batch norm: only one training at a time can synchronise batch norms");
  g_scope_open = true;
  g_group = std::move(group);
}

SyncBatchNormScope::~SyncBatchNormScope() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_group.reset();
  g_scope_open = false;
}

torch::jit::Module with_sync_batch_norm(const torch::jit::Module& module, int* replaced) {
  // New types and methods, the same tensors: the original's executors (which
  // may already hold inlined copies of these graphs) stay untouched.
  torch::jit::Module twin = module.clone(/*inplace=*/true);
  std::unordered_set<const torch::jit::Graph*> seen;
  int n = 0;
  for (const auto& m : twin.modules()) {
    for (const auto& method : m.get_methods()) {
      std::shared_ptr<torch::jit::Graph> g = torch::jit::toGraphFunction(method.function()).graph();
      if (seen.insert(g.get()).second) n += rewrite_block(g->block());
    }
  }
  if (replaced) *replaced = n;
  return twin;
}

}  // namespace compress::train

TORCH_LIBRARY(compress_train, m) {
  m.def("sync_batch_norm(Tensor input, Tensor? weight, Tensor? bias, Tensor? running_mean, Tensor? running_var, "
        "bool training, float momentum, float eps, bool cudnn_enabled) -> Tensor",
        &compress::train::sync_batch_norm);
}
