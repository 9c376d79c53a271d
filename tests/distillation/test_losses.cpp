// The distillation losses against values worked out by hand.
#include <catch2/catch.hpp>

#include <cmath>

#include "compress/distillation/losses.h"
#include "compress/error.h"

using namespace compress::distillation;

TEST_CASE("KD loss equals the hand-computed batch-mean KL times T squared", "[distill][losses]") {
  // Row 1: teacher softmax([1.5, 0.5, 0]) = [0.6285, 0.2312, 0.1402], student
  // softmax([0.5, 1, 1.5]) = [0.1863, 0.3072, 0.5065]: KL = 0.518454.
  // Row 2: teacher softmax([0, 0, 1]), student uniform: KL = 0.123284.
  // Batch mean 0.320869, times T^2 = 4: 1.283477.
  at::Tensor student = at::tensor({1.0, 2.0, 3.0, 0.0, 0.0, 0.0}, at::kDouble).reshape({2, 3});
  at::Tensor teacher = at::tensor({3.0, 1.0, 0.0, 0.0, 0.0, 2.0}, at::kDouble).reshape({2, 3});
  CHECK(kd_loss(student, teacher, 2.0).item<double>() == Approx(1.2834770833744655).epsilon(1e-12));
  // Identical logits: no divergence, whatever the temperature.
  CHECK(kd_loss(teacher, teacher, 3.0).item<double>() == Approx(0.0).margin(1e-15));
}

TEST_CASE("KD loss carries the T squared factor", "[distill][losses]") {
  at::Tensor s = at::randn({4, 10}, at::kDouble), t = at::randn({4, 10}, at::kDouble);
  for (double T : {1.0, 2.0, 4.0, 8.0}) {
    INFO("T = " << T);
    // Softening by T is dividing the logits by T; the loss is then scaled by T^2.
    CHECK(kd_loss(s, t, T).item<double>() == Approx(T * T * kd_loss(s / T, t / T, 1.0).item<double>()).epsilon(1e-12));
  }
  // Why: the gradient of the softened KL shrinks like 1/T^2 at high T, the
  // factor keeps it on the scale of the cross-entropy's.
  at::Tensor s1 = s.clone().requires_grad_(true), s8 = s.clone().requires_grad_(true);
  kd_loss(s1, t, 1.0).backward();
  kd_loss(s8, t, 8.0).backward();
  const double g1 = s1.grad().norm().item<double>(), g8 = s8.grad().norm().item<double>();
  CHECK(g8 > 0.05 * g1);
  CHECK(g8 < 20 * g1);
}

TEST_CASE("KD loss refuses a non-positive temperature and mismatched logits", "[distill][losses]") {
  at::Tensor s = at::randn({2, 3});
  CHECK_THROWS_AS(kd_loss(s, s, 0.0), compress::Error);
  CHECK_THROWS_AS(kd_loss(s, s, -1.0), compress::Error);
  CHECK_THROWS_AS(kd_loss(s, at::randn({2, 4}), 1.0), compress::Error);
}

TEST_CASE("attention maps are normalised channel means of squares", "[distill][losses]") {
  // Two channels of a 1x2x1x2 map: squares (1, 4) and (9, 0), mean (5, 2),
  // normalised by sqrt(29).
  at::Tensor f = at::tensor({1.0, -2.0, 3.0, 0.0}, at::kDouble).reshape({1, 2, 1, 2});
  at::Tensor a = attention_map(f);
  REQUIRE(a.sizes() == at::IntArrayRef({1, 2}));
  CHECK(a[0][0].item<double>() == Approx(5 / std::sqrt(29.0)));
  CHECK(a[0][1].item<double>() == Approx(2 / std::sqrt(29.0)));
  // Channel count and scale do not matter, only where the activation is.
  at::Tensor g = at::cat({f, f, f}, 1) * 7;
  CHECK(attention_loss(f, g).item<double>() == Approx(0.0).margin(1e-15));
  at::Tensor h = at::tensor({0.0, 1.0, 0.0, 0.0}, at::kDouble).reshape({1, 2, 1, 2});
  CHECK(attention_loss(f, h).item<double>() > 0.1);
  CHECK_THROWS_AS(attention_loss(f, at::zeros({1, 2, 2, 2})), compress::Error);
}
