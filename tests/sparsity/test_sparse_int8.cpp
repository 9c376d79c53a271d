// Sparse INT8: a 1x1 convolution run as a sparse GEMM over NHWC rows, and a
// k x k / strided / padded convolution through conv2d_int8_sparse, equal
// compress::conv2d_int8 bit for bit; quantize packs sparse weights for the
// sparse kernels (forced, or where measured faster) and the model's outputs
// equal the dense INT8 model's exactly.
#include <catch2/catch.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/kernels/conv.h"
#include "compress/kernels/sparse.h"
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

// A mask of `format` for a conv weight [O, I, kh, kw], laid out along the
// kernels' K = (kh, kw, c): 1x4 keeps ~`keep` of the 4-blocks, 2:4 the first
// two of every four (the last group padded, as the packers pad K).
at::Tensor conv_mask(const at::Tensor& w, const std::string& format, double keep, at::Generator& gen) {
  const int64_t O = w.size(0), I = w.size(1), kh = w.size(2), kw = w.size(3), K = kh * kw * I, K4 = (K + 3) / 4;
  at::Tensor rows;  // [O, K4 * 4]
  if (format == "1x4")
    rows = (at::rand({O, K4, 1}, gen) < keep).expand({O, K4, 4}).reshape({O, K4 * 4});
  else
    rows = at::tensor(std::vector<uint8_t>{1, 1, 0, 0}).repeat({O, K4}).to(at::kBool);
  return rows.narrow(1, 0, K).reshape({O, kh, kw, I}).permute({0, 3, 1, 2}).contiguous();
}

struct ConvCase {
  int64_t in, out, k, stride, pad, dil, batch, h, w;
};

}  // namespace

TEST_CASE("conv2d_int8_sparse equals conv2d_int8 bit for bit on k x k, strided and padded convolutions",
          "[sparsity][int8]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
  const std::vector<ConvCase> cases = {
      {8, 12, 3, 1, 1, 1, 2, 7, 6},   // 3x3 same padding, channels a multiple of 4
      {5, 7, 3, 2, 1, 1, 2, 9, 8},    // odd channels: 1x4 blocks span taps; stride 2
      {16, 9, 3, 2, 0, 1, 1, 8, 11},  // no padding, stride 2
      {3, 8, 3, 1, 1, 1, 2, 6, 6},    // a 3-channel stem
      {12, 10, 1, 2, 0, 1, 2, 7, 7},  // strided 1x1
      {6, 6, 1, 1, 1, 1, 1, 4, 5},    // padded 1x1 (the border reads the zero point)
      {4, 8, 3, 1, 2, 2, 1, 7, 7},    // dilation 2
      {8, 8, 3, 1, 1, 1, 2, 48, 48},  // 4608 rows: more than one block of im2col rows (3640 at K = 72)
  };
  for (const ConvCase& t : cases) {
    INFO("in " << t.in << " out " << t.out << " k " << t.k << " stride " << t.stride << " pad " << t.pad << " dil "
               << t.dil << " " << t.batch << "x" << t.h << "x" << t.w);
    at::Tensor w = at::randint(-127, 128, {t.out, t.in, t.k, t.k}, gen, at::kChar);
    at::Tensor x = at::randint(0, 256, {t.batch, t.h, t.w, t.in}, gen, at::kByte);  // NHWC
    at::Tensor scale = at::rand({t.out}, gen) * 0.002 + 1e-4;
    at::Tensor bias = at::randn({t.out}, gen);
    const int64_t oh = (t.h + 2 * t.pad - t.dil * (t.k - 1) - 1) / t.stride + 1;
    const int64_t ow = (t.w + 2 * t.pad - t.dil * (t.k - 1) - 1) / t.stride + 1;
    at::Tensor residual = at::randint(0, 256, {t.batch, oh, ow, t.out}, gen, at::kByte);
    for (const std::string format : {"1x4", "2:4"}) {
      INFO(format);
      at::Tensor mask = conv_mask(w, format, 0.2, gen);
      at::Tensor wm = w * mask.to(at::kChar);
      at::Tensor dense_w = ops::pack_conv2d_int8(wm, 9, 1, "auto");
      at::Tensor sparse_w = ops::pack_conv2d_int8_sparse(wm, mask, 9, format);
      const auto info = ops::packed_weight_info(sparse_w);
      CHECK(info.format == (format == "1x4" ? "sparse_1x4" : "sparse_2_4"));
      CHECK(info.nonzeros == wm.ne(0).sum().item<int64_t>());
      for (bool relu : {false, true})
        for (bool with_residual : {false, true}) {
          INFO("relu " << relu << " residual " << with_residual);
          const c10::optional<at::Tensor> r = with_residual ? c10::optional<at::Tensor>(residual) : c10::nullopt;
          const std::vector<int64_t> st = {t.stride, t.stride}, pd = {t.pad, t.pad}, dl = {t.dil, t.dil};
          at::Tensor dense = ops::conv2d_int8(x, dense_w, scale, bias, st, pd, dl, 3, relu, at::kByte, r, 0.7, 5);
          at::Tensor sparse =
              ops::conv2d_int8_sparse(x, sparse_w, scale, bias, st, pd, dl, 3, relu, at::kByte, r, 0.7, 5);
          REQUIRE(sparse.sizes() == dense.sizes());
          CHECK(at::equal(sparse, dense));
          // Float output: the same float values (the epilogue is shared).
          at::Tensor dense_f = ops::conv2d_int8(x, dense_w, scale, bias, st, pd, dl, 0, relu, at::kFloat, c10::nullopt, 1.0, 0);
          at::Tensor sparse_f =
              ops::conv2d_int8_sparse(x, sparse_w, scale, bias, st, pd, dl, 0, relu, at::kFloat, c10::nullopt, 1.0, 0);
          CHECK(at::equal(sparse_f, dense_f));
        }
    }
  }
}

TEST_CASE("sparse_conv2d_u8s8 gives the reference convolution's bits under every ISA the CPU has", "[sparsity][int8]") {
  namespace K = compress::kernels;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(22);
  const int64_t O = 20, I = 12, H = 9, W = 10, N = 2;
  at::Tensor w = at::randint(-127, 128, {O, I, 3, 3}, gen, at::kChar);
  at::Tensor mask = conv_mask(w, "1x4", 0.15, gen);
  at::Tensor wm = w * mask.to(at::kChar);
  at::Tensor x = at::randint(0, 256, {N, H, W, I}, gen, at::kByte);
  at::Tensor scale = at::rand({O}, gen) * 0.002 + 1e-4;
  const at::Tensor dense_blob = ops::pack_conv2d_int8(wm, 17, 1, "ref");
  const at::Tensor sparse_blob = ops::pack_conv2d_int8_sparse(wm, mask, 17, "1x4");
  const K::PackedView dense_w(dense_blob.data_ptr<uint8_t>(), dense_blob.numel());
  const K::PackedView sparse_w(sparse_blob.data_ptr<uint8_t>(), sparse_blob.numel());
  CHECK(sparse_w.kh() == 3);
  CHECK(sparse_w.c_in() == I);
  K::ConvGeometry g;
  g.batch = N; g.height = H; g.width = W; g.stride_h = 2; g.stride_w = 1; g.pad_h = 1; g.pad_w = 1;
  const int64_t oh = K::conv_output_size(H, 3, 2, 1, 1), ow = K::conv_output_size(W, 3, 1, 1, 1);
  K::Epilogue ep;
  ep.scale = scale.data_ptr<float>();
  ep.out = K::OutType::u8;
  ep.out_zero_point = 4;
  ep.relu = true;
  std::vector<uint8_t> expected(static_cast<size_t>(N * oh * ow * O)), got(expected.size());
  // Serial, and work split in three uneven parts (as a thread pool would split it).
  const K::ParallelFor serial = [](int64_t n, const std::function<void(int64_t, int64_t)>& body) { body(0, n); };
  const K::ParallelFor split = [](int64_t n, const std::function<void(int64_t, int64_t)>& body) {
    const int64_t a = n / 3, b = std::max(a, n - 1);
    if (a > 0) body(0, a);
    if (b > a) body(a, b);
    if (n > b) body(b, n);
  };
  K::conv2d_u8s8(x.data_ptr<uint8_t>(), g, dense_w, expected.data(), ep, serial, K::Isa::ref);
  for (K::Isa isa : {K::Isa::ref, K::Isa::avx2, K::Isa::avx512vnni, K::Isa::amx}) {
    if (!K::cpu_supports(isa)) continue;
    INFO(K::isa_name(isa) << " " << K::sparse_kernel_name(sparse_w, isa));
    std::fill(got.begin(), got.end(), uint8_t{0});
    K::sparse_conv2d_u8s8(x.data_ptr<uint8_t>(), g, sparse_w, got.data(), ep, split, isa);
    CHECK(got == expected);
  }
  // A dense blob is refused by the sparse convolution, and a sparse one by the dense convolution.
  CHECK_THROWS_WITH(K::sparse_conv2d_u8s8(x.data_ptr<uint8_t>(), g, dense_w, got.data(), ep, serial),
                    Catch::Contains("not a sparse"));
  CHECK_THROWS_AS(ops::conv2d_int8(x, sparse_blob, scale, c10::nullopt, {1, 1}, {1, 1}, {1, 1}, 0, false, at::kByte,
                                   c10::nullopt, 1.0, 0),
                  c10::Error);
}

TEST_CASE("bad arguments to the sparse convolution ops are refused with one line naming the op", "[sparsity][int8]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(23);
  at::Tensor w = at::randint(-127, 128, {8, 4, 3, 3}, gen, at::kChar);
  at::Tensor mask = w.ne(0);
  auto message = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
    return "no error";
  };
  CHECK_THAT(message([&] { ops::pack_conv2d_int8_sparse(w.view({8, 36}), mask.view({8, 36}), 0, "1x4"); }),
             Catch::StartsWith("compress::pack_conv2d_int8_sparse: weight must be a 4-D int8 tensor"));
  CHECK_THAT(message([&] { ops::pack_conv2d_int8_sparse(w, mask.narrow(0, 0, 4), 0, "1x4"); }),
             Catch::StartsWith("compress::pack_conv2d_int8_sparse: mask must have the weight's shape"));
  CHECK_THAT(message([&] { ops::pack_conv2d_int8_sparse(w, mask, 0, "4:8"); }),
             Catch::StartsWith("compress::pack_conv2d_int8_sparse: format must be"));
  CHECK_THAT(message([&] { ops::pack_conv2d_int8_sparse(w, mask, 0, "2:4"); }),
             Catch::Contains("keeps more than 2"));
  const at::Tensor packed = ops::pack_conv2d_int8_sparse(w, mask, 0, "1x4");
  const at::Tensor scale = at::ones({8});
  CHECK_THAT(message([&] {
               ops::conv2d_int8_sparse(at::zeros({1, 5, 5, 3}, at::kByte), packed, scale, c10::nullopt, {1, 1}, {1, 1},
                                       {1, 1}, 0, false, at::kByte, c10::nullopt, 1.0, 0);
             }),
             Catch::StartsWith("compress::conv2d_int8_sparse: input has 3 channels"));
  CHECK_THAT(message([&] {
               ops::conv2d_int8_sparse(at::zeros({1, 5, 5, 4}, at::kByte), ops::pack_conv2d_int8(w, 0, 1, "auto"),
                                       scale, c10::nullopt, {1, 1}, {1, 1}, {1, 1}, 0, false, at::kByte, c10::nullopt,
                                       1.0, 0);
             }),
             Catch::StartsWith("compress::conv2d_int8_sparse: packed_weight was not made by "
                               "compress::pack_conv2d_int8_sparse"));
  CHECK_THAT(message([&] {
               ops::conv2d_int8_sparse(at::zeros({1, 2, 2, 4}, at::kByte), packed, scale, c10::nullopt, {1, 1}, {0, 0},
                                       {1, 1}, 0, false, at::kByte, c10::nullopt, 1.0, 0);
             }),
             Catch::Contains("does not fit"));
}

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

TEST_CASE("quantize packs 1x4-sparse linear, pointwise and 3x3 layers sparse, with outputs equal to dense INT8", "[sparsity][int8]") {
  Graph g = sparsified(testing::sparse_convnet(), "1x4", 0.8);
  const Shape shape = {3, 3, 8, 8};
  quant::QuantizeReport rs, rd;
  Graph sparse = quantized(g, shape, "1x4", &rs);
  Graph dense = quantized(g, shape, "off", &rd);
  auto ops = op_counts(sparse);
  CHECK(ops["compress::linear_int8_sparse"] == 3);  // expand, project (with the residual add) and fc
  CHECK(ops["compress::conv2d_int8_sparse"] == 2);  // stem and conv (3x3)
  CHECK(ops["compress::conv2d_int8"] == 1);         // dw: grouped
  CHECK(op_counts(dense)["compress::linear_int8_sparse"] == 0);
  CHECK(op_counts(dense)["compress::conv2d_int8_sparse"] == 0);
  CHECK(layer(rs, "expand").weight_format == "sparse_1x4");
  CHECK(layer(rs, "project").weight_format == "sparse_1x4");
  CHECK(layer(rs, "project").ops == "nn.Conv2d + aten::add + aten::relu");
  CHECK(layer(rs, "fc").weight_format == "sparse_1x4");
  CHECK(layer(rs, "conv").weight_format == "sparse_1x4");
  CHECK(layer(rs, "stem").weight_format == "sparse_1x4");
  CHECK(layer(rs, "dw").weight_format == "dense");
  CHECK(layer(rs, "dw").format_reason.find("groups 1") != std::string::npos);
  CHECK(layer(rs, "expand").weight_sparsity >= 0.8);
  CHECK(layer(rs, "conv").weight_sparsity >= 0.8);
  CHECK(layer(rd, "expand").weight_format == "dense");
  CHECK(layer(rd, "conv").weight_format == "dense");
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
  CHECK(storage.at("conv").format == "sparse_1x4");
  CHECK(storage.at("conv").sparsity >= 0.8);
  CHECK(storage.at("conv").numel == 12 * 8 * 9);
  CHECK(storage.at("dw").format == "depthwise");
  for (const auto& l : sparsity::describe_layers(g)) CHECK(l.format == "float");
}

TEST_CASE("quantize runs strided and residual k x k convolutions sparse, with outputs equal to dense INT8",
          "[sparsity][int8]") {
  const Shape shape = {2, 3, 9, 9};
  for (const std::string pattern : {"1x4", "2:4"}) {
    INFO(pattern);
    Graph g = sparsified(testing::sparse_strided_convnet(), pattern, pattern == "1x4" ? 0.8 : 0.5);
    quant::QuantizeReport r;
    Graph sparse = quantized(g, shape, pattern, &r);
    Graph dense = quantized(g, shape, "off");
    CHECK(op_counts(sparse)["compress::conv2d_int8_sparse"] == 4);  // stem, down, block (+ residual), shrink
    CHECK(op_counts(sparse)["compress::conv2d_int8"] == 0);
    CHECK(op_counts(dense)["compress::conv2d_int8"] == 4);
    const std::string format = pattern == "1x4" ? "sparse_1x4" : "sparse_2_4";
    for (const char* name : {"stem", "down", "block", "shrink", "fc"}) CHECK(layer(r, name).weight_format == format);
    CHECK(layer(r, "block").ops == "nn.Conv2d + aten::add + aten::relu");
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    for (int i = 0; i < 3; ++i) {
      at::Tensor x = at::randn(shape, gen);
      CHECK(at::equal(run(sparse, x), run(dense, x)));
    }
  }
}

TEST_CASE("auto mode times a k x k convolution with its im2col against dense", "[sparsity][int8]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(13);
  at::Tensor w = at::randint(-127, 128, {32, 32, 3, 3}, gen, at::kChar);
  w.masked_fill_(w.eq(0), 1);  // only the masks make zeros
  quant::ConvInput in;
  in.batch = 2; in.height = 10; in.width = 10; in.padding = {1, 1};
  quant::FormatChoice dense = quant::choose_conv_weight_format(w, in, 0, "auto");
  CHECK(dense.format == "dense");
  CHECK(dense.dense_ms == 0);
  at::Tensor mask = conv_mask(w, "1x4", 0.1, gen);
  quant::FormatChoice c = quant::choose_conv_weight_format(w * mask.to(at::kChar), in, 0, "auto", 3);
  INFO(c.reason);
  CHECK(c.reason.find("measured") != std::string::npos);
  CHECK(c.reason.find("3x3 conv stride 1 on 2x10x10x32, 200 rows") != std::string::npos);
  CHECK(c.dense_ms > 0);
  CHECK(c.sparse_1x4_ms > 0);
  CHECK(c.sparsity == Approx(1.0 - mask.to(at::kDouble).mean().item<double>()).margin(0.01));
  CHECK(c.format == (c.sparse_1x4_ms * 1.05 < c.dense_ms ? "sparse_1x4" : "dense"));
  CHECK(c.packed.defined() == (c.format != "dense"));
  // The blocks are counted along (kh, kw, c): a mask of whole 4-channel
  // blocks at each tap is 1x4, the same zeros along PyTorch's (c, kh, kw) are not.
  at::Tensor along_c = at::zeros({32, 32, 3, 3}, at::kBool);
  along_c.narrow(1, 0, 4).fill_(true);  // channels 0..3 at every tap: whole (kh, kw, c) blocks
  quant::FormatChoice forced = quant::choose_conv_weight_format(w * along_c.to(at::kChar), in, 0, "1x4");
  REQUIRE(forced.packed.defined());
  CHECK(ops::packed_weight_info(forced.packed).nonzeros == 32 * 4 * 9);
  const auto view = compress::kernels::PackedView(forced.packed.data_ptr<uint8_t>(), forced.packed.numel());
  CHECK(view.nnz() == 32 * 9);  // one kept block per tap and output channel: nothing stored beyond the kept weights
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
