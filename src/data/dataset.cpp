#include <algorithm>
#include <cmath>
#include <random>

#include "compress/data/dataset.h"
#include "compress/data/loader.h"
#include "compress/error.h"
#include "compress/io.h"

namespace compress::data {

TensorDataset load_tensor_dataset(const std::string& path) {
  torch::jit::Module m = load_module(path);
  auto need = [&](const char* name) {
    if (!m.hasattr(name)) bad_input(path + ": not a tensor dataset (no attribute '" + std::string(name) + "')");
    return m.attr(name);
  };
  TensorDataset ds;
  c10::IValue in = need("inputs"), lab = need("labels");
  if (!in.isTensor() || !lab.isTensor()) bad_input(path + ": 'inputs' and 'labels' must be tensors");
  // Token ids (the index types of an embedding) stay integers; anything else is read as float32.
  const at::Tensor stored = in.toTensor();
  const bool ids = stored.scalar_type() == at::kLong || stored.scalar_type() == at::kInt;
  ds.inputs = (ids ? stored : stored.to(at::kFloat)).contiguous();
  ds.labels = lab.toTensor();
  if (ds.labels.dim() != 1 || at::isFloatingType(ds.labels.scalar_type())) {
    bad_input(path + ": 'labels' must be a 1-D integer tensor");
  }
  ds.labels = ds.labels.to(at::kLong).contiguous();
  if (ds.inputs.dim() < 1 || ds.inputs.size(0) != ds.labels.size(0)) {
    bad_input(path + ": 'inputs' has " + std::to_string(ds.inputs.dim() ? ds.inputs.size(0) : 0) +
              " samples but 'labels' has " + std::to_string(ds.labels.size(0)));
  }
  int64_t max_label = ds.labels.numel() ? ds.labels.max().item<int64_t>() : -1;
  int64_t min_label = ds.labels.numel() ? ds.labels.min().item<int64_t>() : 0;
  if (m.hasattr("num_classes")) {
    c10::IValue k = m.attr("num_classes");
    if (!k.isInt() || k.toInt() < 1 || k.toInt() > (int64_t{1} << 31))
      bad_input(path + ": 'num_classes' must be a positive integer, found " + k.tagKind());
    ds.num_classes = k.toInt();
  } else {
    ds.num_classes = max_label + 1;
  }
  if (min_label < 0 || max_label >= ds.num_classes) {
    bad_input(path + ": labels must lie in 0.." + std::to_string(ds.num_classes - 1) + ", found " +
              std::to_string(min_label < 0 ? min_label : max_label));
  }
  ds.name = path;
  return ds;
}

void save_tensor_dataset(const TensorDataset& ds, const std::string& path) {
  torch::jit::Module m("__torch__.TensorDataset");
  m.register_attribute("inputs", c10::TensorType::get(), ds.inputs);
  m.register_attribute("labels", c10::TensorType::get(), ds.labels);
  m.register_attribute("num_classes", c10::IntType::get(), ds.num_classes);
  save_module(m, path);
}

std::pair<at::Tensor, at::Tensor> channel_stats(const at::Tensor& inputs) {
  at::Tensor x = inputs.transpose(0, 1).reshape({inputs.size(1), -1}).to(at::kDouble);
  return {x.mean(1).to(at::kFloat), x.std(1).to(at::kFloat)};
}

std::pair<TensorDataset, TensorDataset> train_val_split(const TensorDataset& ds, double val_fraction,
                                                        uint64_t seed) {
  if (!(val_fraction >= 0.0 && val_fraction < 1.0)) {
    bad_input("validation fraction must be in [0, 1), got " + std::to_string(val_fraction));
  }
  const int64_t n = ds.size();
  const int64_t n_val = int64_t(std::llround(val_fraction * double(n)));
  // Epoch -1 keeps the split's stream apart from every training epoch's.
  std::vector<int64_t> order = epoch_order(n, seed, -1, true);
  at::Tensor idx = at::from_blob(order.data(), {n}, at::kLong).clone();
  at::Tensor tr = idx.narrow(0, 0, n - n_val), va = idx.narrow(0, n - n_val, n_val);
  TensorDataset a{ds.inputs.index_select(0, tr), ds.labels.index_select(0, tr), ds.num_classes,
                  ds.name + " (train part)"};
  TensorDataset b{ds.inputs.index_select(0, va), ds.labels.index_select(0, va), ds.num_classes,
                  ds.name + " (validation part)"};
  return {a, b};
}

TensorDataset take(const TensorDataset& ds, int64_t n) {
  if (n <= 0 || n >= ds.size()) return ds;
  return {ds.inputs.narrow(0, 0, n), ds.labels.narrow(0, 0, n), ds.num_classes, ds.name};
}

}  // namespace compress::data
