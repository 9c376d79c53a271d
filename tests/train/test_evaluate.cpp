#include <catch2/catch.hpp>

#include <ATen/Parallel.h>

#include <nlohmann/json.hpp>

#include "compress/threads.h"
#include "compress/train/evaluate.h"
#include "skip.h"

using namespace compress::train;

namespace {
// Logits are the inputs themselves: the tests choose the predictions.
torch::jit::Module passthrough() {
  torch::jit::Module m("__torch__.Passthrough");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.define("def forward(self, x: Tensor) -> Tensor:\n    return x * 1.0\n");
  return m;
}
}  // namespace

TEST_CASE("top-1, top-5, loss and confusion matrix", "[evaluate]") {
  compress::data::TensorDataset ds;
  // 6 classes; 4 samples. Ranking of classes per row is given by the scores.
  ds.inputs = at::tensor({6.f, 5.f, 4.f, 3.f, 2.f, 1.f,    // pred 0, true 0: top-1
                          6.f, 5.f, 4.f, 3.f, 2.f, 1.f,    // true 4: in top-5 only
                          6.f, 5.f, 4.f, 3.f, 2.f, 1.f,    // true 5: outside top-5
                          1.f, 9.f, 0.f, 0.f, 0.f, 0.f})   // pred 1, true 1
                  .view({4, 6});
  ds.labels = at::tensor({0, 4, 5, 1}, at::kLong);
  ds.num_classes = 6;
  ds.name = "hand-made";
  auto m = passthrough();
  auto r = evaluate(m, ds, 3);  // batch size 3: a partial last batch
  CHECK(r.count == 4);
  CHECK(r.top1 == Approx(0.5));
  CHECK(r.top5 == Approx(0.75));
  const double expected_loss =
      at::cross_entropy_loss(ds.inputs, ds.labels).item<double>();
  CHECK(r.loss == Approx(expected_loss).epsilon(1e-6));
  CHECK(r.confusion[0][0] == 1);
  CHECK(r.confusion[4][0] == 1);
  CHECK(r.confusion[5][0] == 1);
  CHECK(r.confusion[1][1] == 1);
  auto j = nlohmann::json::parse(r.to_json());
  CHECK(j["confusion"]["matrix"][4][0] == 1);
  CHECK(j["confusion"]["classes"].size() == 6);
  CHECK(j["top5"].get<double>() == Approx(0.75));
}

TEST_CASE("latency is measured per batch size and thread count", "[evaluate][latency]") {
  auto m = passthrough();
  LatencyOptions o;
  o.batch_sizes = {1, 8};
  o.thread_counts = {1, 2};
  o.warmup = 1;
  o.repeats = 5;
  auto pts = measure_latency(m, {3, 28, 28}, o);
  REQUIRE(pts.size() == 4);
  CHECK(pts[0].batch == 1);
  CHECK(pts[0].threads == 1);
  CHECK(pts[3].batch == 8);
  CHECK(pts[3].threads == 2);
  for (const auto& p : pts) {
    CHECK(p.median_ms > 0);
    CHECK(p.min_ms <= p.median_ms);
    CHECK(p.median_ms <= p.p90_ms);
    CHECK(p.samples_per_s == Approx(double(p.batch) * 1000.0 / p.median_ms));
  }
  auto j = nlohmann::json::parse(latency_to_json(pts));
  CHECK(j.size() == 4);
}

// The thread count a run asks for holds for OpenBLAS too (LibTorch's float
// matmuls and im2col convolutions run on its pool, which at::set_num_threads
// does not set), and measure_latency's 1-thread points are one thread there.
TEST_CASE("set_num_threads sets OpenBLAS's pool with LibTorch's, and puts both back", "[evaluate][threads]") {
  if (compress::blas_num_threads() == 0) COMPRESS_SKIP("this process's BLAS is not OpenBLAS");
  const int torch_before = at::get_num_threads(), blas_before = compress::blas_num_threads();
  {
    compress::ScopedThreads one(1);
    CHECK(at::get_num_threads() == 1);
    CHECK(compress::blas_num_threads() == 1);
    compress::set_num_threads(2);
    CHECK(at::get_num_threads() == 2);
    CHECK(compress::blas_num_threads() == 2);
    compress::set_num_threads(0);  // at least one
    CHECK(compress::blas_num_threads() == 1);
  }
  CHECK(at::get_num_threads() == torch_before);
  CHECK(compress::blas_num_threads() == blas_before);

  // A float matmul big enough for OpenBLAS to split runs while measure_latency
  // holds one thread: afterwards the pool is back to what it was.
  torch::jit::Module m("__torch__.MatMul");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.define("def forward(self, x: Tensor) -> Tensor:\n    return torch.mm(x, x)\n");
  LatencyOptions opt;
  opt.batch_sizes = {256};
  opt.thread_counts = {1};
  opt.repeats = 1;
  opt.warmup = 0;
  int blas_inside = -1;
  const auto points = measure_latency(
      m, [&](int64_t b) {
        blas_inside = compress::blas_num_threads();
        return std::vector<c10::IValue>{at::ones({b, b})};
      },
      opt);
  CHECK(points.size() == 1);
  CHECK(blas_inside == 1);
  CHECK(compress::blas_num_threads() == blas_before);
}
