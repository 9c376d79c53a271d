// Sparse INT8: a 1x1 convolution run as a sparse GEMM over NHWC rows equals
// compress::conv2d_int8 bit for bit; quantize packs sparse weights for the
// sparse kernels (forced, or where measured faster) and the model's outputs
// equal the dense INT8 model's exactly.
#include <catch2/catch.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/ops/ops.h"
#include "compress/pruning/sparsity.h"
#include "compress/quantization/quantize.h"
#include "compress/quantization/sparse_format.h"
#include "sparse_models.h"

using namespace compress;

namespace {

quant::CalibrationData batches(Shape shape, int64_t n) {
  return {n, [shape](int64_t i) {
            auto gen = at::make_generator<at::CPUGeneratorImpl>(200 + uint64_t(i));
            return at::randn(shape, gen);
          }};
}

// The graph with masks of `pattern` at `s` on every conv/linear layer that is not grouped.
Graph sparsified(torch::jit::Module m, const std::string& pattern, double s) {
  Graph g = import_module(m);
  sparsity::LayerSelection all;
  all.include_first_last = true;
  auto weights = sparsity::graph_weights(g, sparsity::select_layers(g, all));
  sparsity::apply_masks(weights, sparsity::magnitude_masks(weights, s, sparsity::parse_pattern(pattern), false));
  return g;
}

std::map<std::string, int> op_counts(const Graph& g) {
  std::map<std::string, int> counts;
  for (const Node& n : g.nodes()) ++counts[n.op_name()];
  return counts;
}

const quant::LayerReport& layer(const quant::QuantizeReport& r, const std::string& name) {
  for (const auto& l : r.layers)
    if (l.name == name) return l;
  FAIL("no layer " << name);
  throw;
}

// Quantizes a copy of `g` with --sparse `mode`; returns the INT8 graph.
Graph quantized(const Graph& g, const Shape& shape, const std::string& mode, quant::QuantizeReport* report = nullptr) {
  Graph q = g;
  q.set_example_inputs({InputSpec{shape}});
  quant::QuantizeOptions o;
  o.sparse = mode;
  quant::QuantizeReport r = quant::quantize_static(q, batches(shape, 2), o);
  if (report) *report = r;
  return q;
}

at::Tensor run(const Graph& g, const at::Tensor& x) {
  torch::NoGradGuard no_grad;
  return export_module(g).forward({x}).toTensor();
}

}  // namespace

TEST_CASE("a 1x1 convolution on NHWC codes as a sparse GEMM equals conv2d_int8 bit for bit", "[sparsity][int8]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const int64_t O = 24, I = 36;
  at::Tensor w = at::randint(-127, 128, {O, I}, gen, at::kChar);
  at::Tensor x = at::randint(0, 256, {2, 5, 7, I}, gen, at::kByte);  // NHWC
  at::Tensor scale = at::rand({O}, gen) * 0.01 + 1e-3;
  at::Tensor bias = at::randn({O}, gen);
  at::Tensor residual = at::randint(0, 256, {2, 5, 7, O}, gen, at::kByte);
  for (const std::string format : {"1x4", "2:4"}) {
    INFO(format);
    // A mask of the format: 1x4 keeps ~20% of the blocks, 2:4 the first two of every four.
    at::Tensor mask;
    if (format == "1x4") {
      mask = (at::rand({O, I / 4, 1}, gen) < 0.2).expand({O, I / 4, 4}).reshape({O, I});
    } else {
      mask = at::tensor(std::vector<uint8_t>{1, 1, 0, 0}).repeat({O, I / 4}).to(at::kBool);
    }
    at::Tensor wm = w * mask.to(at::kChar);
    for (bool relu : {false, true}) {
      at::Tensor dense = ops::conv2d_int8(x, ops::pack_conv2d_int8(wm.view({O, I, 1, 1}), 9, 1, "auto"), scale, bias,
                                          {1, 1}, {0, 0}, {1, 1}, 3, relu, at::kByte, residual, 0.7, 5);
      at::Tensor sparse = ops::linear_int8_sparse(x, ops::pack_linear_int8_sparse(wm, mask, 9, format), scale, bias, 3,
                                                  relu, at::kByte, residual, 0.7, 5);
      REQUIRE(sparse.sizes() == dense.sizes());
      CHECK(at::equal(sparse, dense));
    }
  }
}

TEST_CASE("quantize packs 1x4-sparse linear and pointwise layers sparse, with outputs equal to dense INT8", "[sparsity][int8]") {
  Graph g = sparsified(testing::sparse_convnet(), "1x4", 0.8);
  const Shape shape = {3, 3, 8, 8};
  quant::QuantizeReport rs, rd;
  Graph sparse = quantized(g, shape, "1x4", &rs);
  Graph dense = quantized(g, shape, "off", &rd);
  auto ops = op_counts(sparse);
  CHECK(ops["compress::linear_int8_sparse"] == 3);  // expand, project (with the residual add) and fc
  CHECK(ops["compress::conv2d_int8"] == 3);         // stem, conv (3x3) and dw
  CHECK(op_counts(dense)["compress::linear_int8_sparse"] == 0);
  CHECK(layer(rs, "expand").weight_format == "sparse_1x4");
  CHECK(layer(rs, "project").weight_format == "sparse_1x4");
  CHECK(layer(rs, "project").ops == "nn.Conv2d + aten::add + aten::relu");
  CHECK(layer(rs, "fc").weight_format == "sparse_1x4");
  CHECK(layer(rs, "conv").weight_format == "dense");
  CHECK(layer(rs, "conv").format_reason.find("1x1") != std::string::npos);
  CHECK(layer(rs, "expand").weight_sparsity >= 0.8);
  CHECK(layer(rd, "expand").weight_format == "dense");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  for (int i = 0; i < 3; ++i) {
    at::Tensor x = at::randn(shape, gen);
    CHECK(at::equal(run(sparse, x), run(dense, x)));
  }
  // inspect's view: the packed formats and their sparsity.
  std::map<std::string, sparsity::LayerStorage> storage;
  for (const auto& l : sparsity::describe_layers(sparse)) storage[l.name] = l;
  CHECK(storage.at("expand").format == "sparse_1x4");
  CHECK(storage.at("expand").sparsity >= 0.8);
  CHECK(storage.at("conv").format == "dense");
  CHECK(storage.at("dw").format == "depthwise");
  for (const auto& l : sparsity::describe_layers(g)) CHECK(l.format == "float");
}

TEST_CASE("quantize packs 2:4 layers for the 2:4 kernel, with outputs equal to dense INT8", "[sparsity][int8]") {
  Graph g = sparsified(testing::sparse_mlp(), "2:4", 0.5);
  const Shape shape = {8, 16};
  quant::QuantizeReport r;
  Graph sparse = quantized(g, shape, "2:4", &r);
  Graph dense = quantized(g, shape, "off");
  CHECK(op_counts(sparse)["compress::linear_int8_sparse"] == 4);
  for (const auto& l : r.layers) CHECK(l.weight_format == "sparse_2_4");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  at::Tensor x = at::randn(shape, gen);
  CHECK(at::equal(run(sparse, x), run(dense, x)));
  // A weight that is not 2:4 is never packed 2:4.
  Graph unstructured = sparsified(testing::sparse_mlp(), "unstructured", 0.5);
  quant::QuantizeReport ru;
  quantized(unstructured, shape, "2:4", &ru);
  CHECK(layer(ru, "fc2").weight_format == "dense");
  CHECK(layer(ru, "fc2").format_reason.find("more than 2") != std::string::npos);
}

TEST_CASE("auto mode times dense against the sparse candidates and keeps the fastest", "[sparsity][int8]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(12);
  const int64_t n = 256, k = 512;
  at::Tensor w = at::randint(-127, 128, {n, k}, gen, at::kChar);
  quant::FormatChoice dense = quant::choose_weight_format(w, 64, 0, "auto");
  CHECK(dense.format == "dense");
  CHECK(dense.reason.find("no all-zero 1x4 block") != std::string::npos);
  CHECK(dense.dense_ms == 0);  // nothing to compare: not timed

  at::Tensor keep = (at::rand({n, k / 4, 1}, gen) < 0.1).expand({n, k / 4, 4}).reshape({n, k});
  quant::FormatChoice c = quant::choose_weight_format(w * keep.to(at::kChar), 64, 0, "auto", 3);
  INFO(c.reason);
  CHECK(c.reason.find("measured") != std::string::npos);
  CHECK(c.dense_ms > 0);
  CHECK(c.sparse_1x4_ms > 0);
  CHECK(c.sparse_2_4_ms == 0);  // 10% of the blocks kept is not 2:4 everywhere
  CHECK(c.sparsity == Approx(1.0 - keep.to(at::kDouble).mean().item<double>()).margin(0.01));
  // The choice follows the rule: sparse only when at least 5% faster than dense.
  CHECK(c.format == (c.sparse_1x4_ms * 1.05 < c.dense_ms ? "sparse_1x4" : "dense"));
  CHECK(c.packed.defined() == (c.format != "dense"));
  CHECK_THROWS_WITH(quant::check_sparse_mode("3:4"), Catch::Contains("unknown mode"));
}
