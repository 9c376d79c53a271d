#pragma once
// A tiny TorchScript classifier and a synthetic problem, so trainer tests run
// in well under a second: 8 features -> 16 hidden (batch norm, dropout) -> 3.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include "compress/data/dataset.h"
#include "compress/train/trainer.h"

namespace tiny {

inline torch::jit::Module make_model(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::jit::Module m("__torch__.Tiny");
  m.register_attribute("training", c10::BoolType::get(), true);
  m.register_parameter("w1", at::normal(0.0, 0.3, {16, 8}, gen), false);
  m.register_parameter("b1", at::zeros({16}), false);
  m.register_parameter("g1", at::ones({16}), false);
  m.register_parameter("beta1", at::zeros({16}), false);
  m.register_buffer("running_mean", at::zeros({16}));
  m.register_buffer("running_var", at::ones({16}));
  m.register_parameter("w2", at::normal(0.0, 0.3, {3, 16}, gen), false);
  m.register_parameter("b2", at::zeros({3}), false);
  m.define(R"(
def forward(self, x: Tensor) -> Tensor:
    h = torch.linear(x, self.w1, self.b1)
    h = torch.batch_norm(h, self.g1, self.beta1, self.running_mean, self.running_var, self.training, 0.1, 1e-05, True)
    h = torch.dropout(torch.relu(h), 0.2, self.training)
    return torch.linear(h, self.w2, self.b2)
)");
  return m;
}

// Three Gaussian blobs in 8 dimensions: separable, so a working trainer gets
// well above chance in a few epochs.
inline compress::data::TensorDataset blobs(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor centres = at::normal(0.0, 2.0, {3, 8}, gen);
  at::Tensor labels = at::randint(0, 3, {n}, gen);
  compress::data::TensorDataset ds;
  ds.inputs = centres.index_select(0, labels) + at::normal(0.0, 1.0, {n, 8}, gen);
  ds.labels = labels;
  ds.num_classes = 3;
  ds.name = "blobs";
  return ds;
}

// A short, fully featured training run: SGD with Nesterov momentum and weight
// decay, cosine schedule with warm-up, clipping and label smoothing.
inline compress::train::TrainConfig train_config(uint64_t seed) {
  compress::train::TrainConfig c;
  c.epochs = 4;
  c.batch_size = 32;
  c.seed = seed;
  c.optimizer.kind = "sgd";
  c.optimizer.lr = 0.2;
  c.optimizer.momentum = 0.9;
  c.optimizer.nesterov = true;
  c.optimizer.weight_decay = 1e-3;
  c.schedule.kind = "cosine";
  c.schedule.warmup_steps = 3;
  c.grad_clip = 5.0;
  c.label_smoothing = 0.05;
  c.quiet = true;
  c.threads = 2;
  return c;
}

}  // namespace tiny
