// Observers and calibrators on synthetic distributions.
#include <catch2/catch.hpp>

#include <cmath>

#include "compress/error.h"
#include "compress/quantization/observer.h"

using namespace compress::quant;

namespace {

// 200,000 standard normal values in 4 batches, plus 10 outliers at +-1000.
Observer normal_with_outliers() {
  torch::manual_seed(3);
  Observer o;
  for (int i = 0; i < 4; ++i) o.observe(at::randn({50000}));
  at::Tensor outliers = at::full({10}, 1000.0f);
  outliers.narrow(0, 0, 5).fill_(-1000.0f);
  o.observe(outliers);
  return o;
}

double total(const Observer& o) {
  double s = 0;
  for (double b : o.histogram()) s += b;
  return s;
}

}  // namespace

TEST_CASE("min-max follows every batch, the histogram widens without losing counts", "[quant][observer]") {
  Observer o;
  o.observe(at::rand({1000}));             // [0, 1)
  o.observe(at::rand({1000}) * 10 - 20);   // [-20, -10): widens downwards
  o.observe(at::tensor({35.0f, NAN, INFINITY}));
  CHECK(o.count() == 2001);
  CHECK(o.non_finite() == 2);
  CHECK(o.min() < -19.9);
  CHECK(o.max() == 35.0);
  CHECK(total(o) == 2001);
  Range r = o.minmax_range();
  CHECK(r.lo == o.min());
  CHECK(r.hi == 35.0);
  // The histogram still resolves the first batch: [0, 1) holds 1000 counts.
  double in_unit = 0;
  for (size_t i = 0; i < o.histogram().size(); ++i) {
    double x = o.hist_lo() + (static_cast<double>(i) + 0.5) * o.bin_width();
    if (x > -0.1 && x < 1.1) in_unit += o.histogram()[i];
  }
  CHECK(in_unit == 1000);
  CHECK(o.bin_width() < 55.0 / 1000);
}

TEST_CASE("percentile and entropy clip outliers that min-max keeps", "[quant][observer]") {
  Observer o = normal_with_outliers();
  CHECK(o.minmax_range().hi == 1000.0);
  CHECK(o.minmax_range().lo == -1000.0);
  Range p = o.percentile_range(99.99);
  // The 99.99th percentile of N(0, 1) is 3.72.
  CHECK(p.hi == Approx(3.72).margin(0.6));
  CHECK(p.lo == Approx(-3.72).margin(0.6));
  // KL keeps at least 128 of the 2048 bins of |x| (TensorRT's search starts
  // there): with the range stretched to 1000 that is 62.5, still 16x tighter.
  Range e = o.entropy_range();
  CHECK(e.hi == Approx(1000.0 * 128 / 2048));
  CHECK(e.lo == Approx(-e.hi));  // symmetric for signed data
  // MSE keeps these outliers on purpose: 10 values clipped from 1000 to ~5
  // cost more squared error than coarser rounding of the other 200,000.
  CHECK(o.mse_range().hi > 500.0);
  CHECK(o.range(Method::MinMax).hi == 1000.0);
  CHECK(o.range(Method::Entropy).hi == e.hi);
}

TEST_CASE("entropy calibration is one-sided for non-negative data", "[quant][observer]") {
  torch::manual_seed(4);
  Observer o;
  for (int i = 0; i < 3; ++i) o.observe(at::relu(at::randn({40000})));  // half-normal, ReLU-like
  o.observe(at::tensor({50.0f}));
  Range e = o.entropy_range();
  CHECK(e.lo == 0.0);
  CHECK(e.hi > 2.0);
  CHECK(e.hi < 10.0);
  QuantParams q = affine_u8(e);
  CHECK(q.zero_point == 0);
  CHECK(q.scale == Approx(e.hi / 255));
}

TEST_CASE("mse clipping lowers the expected error of a heavy-tailed distribution", "[quant][observer]") {
  torch::manual_seed(5);
  // Laplace-like: most mass near 0, a long tail.
  at::Tensor x = at::log(at::rand({100000}) + 1e-7) * at::sign(at::randn({100000}));
  Observer o;
  o.observe(x);
  auto error = [&](Range r) {
    QuantParams q = affine_u8(r);
    at::Tensor codes = (x / q.scale).round() + q.zero_point;
    at::Tensor back = (codes.clamp(0, 255) - q.zero_point) * q.scale;
    return (back - x).pow(2).mean().item<double>();
  };
  Range m = o.mse_range();
  CHECK(m.hi < o.max());
  CHECK(error(m) < error(o.minmax_range()));
}

TEST_CASE("affine uint8 parameters keep zero exact, weights are per-channel symmetric int8", "[quant][observer]") {
  QuantParams q = affine_u8({-1.0, 3.0});
  CHECK(q.scale == Approx(4.0 / 255));
  CHECK(q.zero_point == 64);
  QuantParams pos = affine_u8({2.0, 5.0});  // widened to contain 0
  CHECK(pos.zero_point == 0);
  CHECK(pos.scale == Approx(5.0 / 255));
  CHECK(affine_u8({0.0, 0.0}).scale > 0);

  torch::manual_seed(6);
  at::Tensor w = at::randn({4, 3, 3, 3});
  w[2].mul_(100);
  w[3].zero_();
  QuantizedWeight qw = quantize_weight_per_channel(w);
  REQUIRE(qw.q.scalar_type() == at::kChar);
  CHECK(qw.scale[2].item<float>() == Approx(w[2].abs().max().item<float>() / 127));
  CHECK(qw.scale[3].item<float>() == 1.0f);
  for (int c = 0; c < 3; ++c) CHECK(qw.q[c].abs().max().item<int>() == 127);
  at::Tensor back = qw.q.to(at::kFloat) * qw.scale.reshape({4, 1, 1, 1});
  CHECK(((back - w).abs() <= qw.scale.reshape({4, 1, 1, 1}) * 0.5001).all().item<bool>());
}

TEST_CASE("calibration methods are named, an unknown one is bad input", "[quant][observer]") {
  CHECK(parse_method("entropy") == Method::Entropy);
  CHECK(std::string(method_name(Method::Mse)) == "mse");
  CHECK_THROWS_WITH(parse_method("entropi"), Catch::Contains("did you mean 'entropy'"));
  Observer empty;
  CHECK_THROWS_AS(empty.range(Method::MinMax), compress::Error);
}

TEST_CASE("SQNR is signal over noise in dB, accumulated over batches", "[quant][observer]") {
  Sqnr s;
  at::Tensor ref = at::ones({100});
  s.add(ref, ref * 1.1);  // noise power 0.01 of the signal: 20 dB
  s.add(ref, ref * 0.9);
  CHECK(s.db() == Approx(20.0).margin(1e-6));
  Sqnr exact;
  exact.add(ref, ref);
  CHECK(std::isinf(exact.db()));
}
