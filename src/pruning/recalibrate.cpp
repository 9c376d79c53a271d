#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <optional>

#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/pruning/prune.h"

namespace compress::pruning {
namespace {

// The exported submodule at a dotted path ("layer1.0.bn1"), or nullopt.
std::optional<torch::jit::Module> submodule_at(const torch::jit::Module& root, const std::string& path) {
  torch::jit::Module m = root;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!m.hasattr(part) || !m.attr(part).isModule()) return std::nullopt;
    m = m.attr(part).toModule();
    if (dot == std::string::npos) return m;
    start = dot + 1;
  }
  return std::nullopt;
}

}  // namespace

int recalibrate_batch_norm(Graph& g, const data::TensorDataset& data, int64_t batches, int64_t batch_size) {
  std::vector<Node*> norms;
  ExportOptions options;
  for (Node& n : g.nodes()) {
    if (!n.is_leaf(LeafKind::BatchNorm1d) && !n.is_leaf(LeafKind::BatchNorm2d)) continue;
    if (!n.params.count("running_mean") || !n.input().is_value()) continue;
    norms.push_back(&n);
    options.taps.push_back(g.name_of(n.input().value));
  }
  if (norms.empty()) return 0;
  if (data.size() == 0) bad_input("batch-norm recalibration needs data");
  torch::jit::Module m = export_module(g, options);
  m.eval();
  // The batch norms normalise with each batch's own statistics while the
  // statistics are gathered (dropout stays off), so every norm sees its
  // input as the re-estimated network upstream of it produces it. With the
  // stale running statistics upstream (a plain eval-mode pass) the deeper
  // norms were estimated for a network that no longer exists, and errors
  // compounded with depth: the pruned mobilenetv2 fell to chance.
  for (Node* n : norms)
    if (auto sub = submodule_at(m, n->module)) sub->train(true);
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> sum(norms.size()), sum_sq(norms.size());
  std::vector<int64_t> count(norms.size(), 0);
  const int64_t n_samples = data.size();
  for (int64_t b = 0; b < batches && b * batch_size < n_samples; ++b) {
    int64_t start = b * batch_size, len = std::min(batch_size, n_samples - start);
    auto out = m.forward({data.inputs.narrow(0, start, len)}).toTupleRef().elements();
    size_t first_tap = out.size() - norms.size();
    for (size_t i = 0; i < norms.size(); ++i) {
      at::Tensor x = out[first_tap + i].toTensor().to(at::kDouble);
      // Channels are dim 1: reduce over every other dim.
      std::vector<int64_t> dims;
      for (int64_t d = 0; d < x.dim(); ++d)
        if (d != 1) dims.push_back(d);
      at::Tensor s = x.sum(dims), sq = x.pow(2).sum(dims);
      sum[i] = sum[i].defined() ? sum[i] + s : s;
      sum_sq[i] = sum_sq[i].defined() ? sum_sq[i] + sq : sq;
      count[i] += x.numel() / x.size(1);
    }
  }
  for (size_t i = 0; i < norms.size(); ++i) {
    if (count[i] < 2) continue;
    double n = static_cast<double>(count[i]);
    at::Tensor mean = sum[i] / n;
    at::Tensor var = (sum_sq[i] - n * mean.pow(2)) / (n - 1);  // unbiased, as batch norm keeps it
    const std::string& mean_name = norms[i]->params.at("running_mean");
    const std::string& var_name = norms[i]->params.at("running_var");
    at::ScalarType dtype = g.param(mean_name).scalar_type();
    g.set_param(mean_name, mean.to(dtype).contiguous());
    g.set_param(var_name, var.clamp_min(0).to(dtype).contiguous());
  }
  return static_cast<int>(norms.size());
}

}  // namespace compress::pruning
