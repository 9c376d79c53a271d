// Optimiser updates against hand-computed values; schedule values.
#include <catch2/catch.hpp>

#include <cmath>

#include "compress/train/optim.h"

using namespace compress::train;

namespace {
at::Tensor param(std::vector<float> v) {
  return at::tensor(v).view({1, int64_t(v.size())}).set_requires_grad(true);  // 2-D: weight decay applies
}
void set_grad(at::Tensor& p, std::vector<float> g) { p.mutable_grad() = at::tensor(g).view_as(p); }
}  // namespace

TEST_CASE("SGD with momentum, Nesterov and weight decay follows PyTorch's rule", "[optim]") {
  at::Tensor p = param({1.0f, -2.0f});
  OptimizerConfig c;
  c.kind = "sgd";
  c.lr = 0.1;
  c.momentum = 0.9;
  c.nesterov = true;
  c.weight_decay = 0.01;
  Optimizer opt({{"p", p}}, c);
  // step 1: g = grad + wd*p = [0.5+0.01, 0.5-0.02]; buf = g; update = g + 0.9*buf
  set_grad(p, {0.5f, 0.5f});
  opt.step(0.1);
  const double g1a = 0.51, g1b = 0.48;
  double pa = 1.0 - 0.1 * (g1a + 0.9 * g1a), pb = -2.0 - 0.1 * (g1b + 0.9 * g1b);
  CHECK(p[0][0].item<double>() == Approx(pa).epsilon(1e-6));
  CHECK(p[0][1].item<double>() == Approx(pb).epsilon(1e-6));
  // step 2: buf = 0.9*buf + g
  set_grad(p, {-1.0f, 0.0f});
  opt.step(0.05);
  double g2a = -1.0 + 0.01 * pa, g2b = 0.01 * pb;
  double ba = 0.9 * g1a + g2a, bb = 0.9 * g1b + g2b;
  CHECK(p[0][0].item<double>() == Approx(pa - 0.05 * (g2a + 0.9 * ba)).epsilon(1e-6));
  CHECK(p[0][1].item<double>() == Approx(pb - 0.05 * (g2b + 0.9 * bb)).epsilon(1e-6));
  CHECK(opt.steps_taken() == 2);
}

TEST_CASE("Adam first step moves each weight by about lr, AdamW decays decoupled", "[optim]") {
  for (const char* kind : {"adam", "adamw"}) {
    at::Tensor p = param({1.0f, -1.0f, 3.0f});
    OptimizerConfig c;
    c.kind = kind;
    c.lr = 0.01;
    c.weight_decay = std::string(kind) == "adamw" ? 0.5 : 0.0;
    Optimizer opt({{"p", p}}, c);
    set_grad(p, {2.0f, -0.001f, 0.0f});
    opt.step(0.01);
    const double decay = std::string(kind) == "adamw" ? (1 - 0.01 * 0.5) : 1.0;
    // Bias correction makes step 1 = lr * g / (|g| + eps).
    CHECK(p[0][0].item<double>() == Approx(1.0 * decay - 0.01).epsilon(1e-5));
    CHECK(p[0][1].item<double>() == Approx(-1.0 * decay + 0.01 * (0.001 / (0.001 + 1e-8))).epsilon(1e-5));
    CHECK(p[0][2].item<double>() == Approx(3.0 * decay).epsilon(1e-6));
  }
}

TEST_CASE("1-D tensors are not decayed unless asked", "[optim]") {
  at::Tensor bias = at::ones({2}).set_requires_grad(true);
  OptimizerConfig c;
  c.momentum = 0;
  c.weight_decay = 0.5;
  Optimizer opt({{"bias", bias}}, c);
  bias.mutable_grad() = at::zeros({2});
  opt.step(0.1);
  CHECK(bias[0].item<float>() == 1.0f);
  c.decay_1d = true;
  Optimizer opt2({{"bias", bias}}, c);
  opt2.step(0.1);
  CHECK(bias[0].item<float>() == Approx(0.95f));
}

TEST_CASE("gradient clipping scales to the max global norm", "[optim]") {
  at::Tensor a = param({3.0f}), b = param({0.0f});
  set_grad(a, {3.0f});
  set_grad(b, {4.0f});
  double norm = clip_grad_norm({{"a", a}, {"b", b}}, 1.0);
  CHECK(norm == Approx(5.0));
  CHECK(a.grad()[0][0].item<float>() == Approx(0.6f).epsilon(1e-4));
  CHECK(b.grad()[0][0].item<float>() == Approx(0.8f).epsilon(1e-4));
  CHECK(clip_grad_norm({{"a", a}, {"b", b}}, 10.0) == Approx(1.0).epsilon(1e-4));
  CHECK(a.grad()[0][0].item<float>() == Approx(0.6f).epsilon(1e-4));
}

TEST_CASE("schedule values", "[schedule]") {
  ScheduleConfig s;
  SECTION("cosine with linear warm-up") {
    s.kind = "cosine";
    s.warmup_steps = 10;
    s.warmup_start_factor = 0.1;
    s.min_lr = 0.001;
    CHECK(lr_at(s, 0.1, 0, 110) == Approx(0.01));
    CHECK(lr_at(s, 0.1, 5, 110) == Approx(0.1 * (0.1 + 0.9 * 0.5)));
    CHECK(lr_at(s, 0.1, 10, 110) == Approx(0.1));
    // step 59 is 49 of the 99 steps from peak (step 10) to floor (step 109)
    const double mid = lr_at(s, 0.1, 59, 110);
    CHECK(mid == Approx(0.001 + 0.099 * 0.5 * (1 + std::cos(M_PI * 49.0 / 99.0))));
    CHECK(lr_at(s, 0.1, 109, 110) == Approx(0.001));
    for (int64_t t = 11; t < 110; ++t) CHECK(lr_at(s, 0.1, t, 110) <= lr_at(s, 0.1, t - 1, 110));
  }
  SECTION("step") {
    s.kind = "step";
    s.step_size = 30;
    s.gamma = 0.1;
    CHECK(lr_at(s, 1.0, 0, 100) == Approx(1.0));
    CHECK(lr_at(s, 1.0, 29, 100) == Approx(1.0));
    CHECK(lr_at(s, 1.0, 30, 100) == Approx(0.1));
    CHECK(lr_at(s, 1.0, 65, 100) == Approx(0.01));
  }
  SECTION("constant after warm-up") {
    s.kind = "constant";
    s.warmup_steps = 4;
    s.warmup_start_factor = 0.0;
    CHECK(lr_at(s, 2.0, 0, 10) == Approx(0.0));
    CHECK(lr_at(s, 2.0, 2, 10) == Approx(1.0));
    CHECK(lr_at(s, 2.0, 9, 10) == Approx(2.0));
  }
}
