// The compress custom ops: results against the kernels' reference and against
// at::conv2d / at::matmul on integers, save+load of a module that uses them,
// and one-line errors for bad input.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "compress/kernels/gemm.h"
#include "compress/kernels/packed.h"
#include "compress/cpu_block_cache.h"
#include "compress/ops/ops.h"
#include "compress/ops/script.h"
#include "ops_test_util.h"
#include "test_paths.h"

namespace {

using ops_test::call;
using ops_test::error_of;

at::Tensor rand_u8(at::IntArrayRef shape) { return at::randint(0, 256, shape, at::kByte); }
at::Tensor rand_s8(at::IntArrayRef shape) { return at::randint(-128, 128, shape, at::kChar); }

// The uint8 result of linear_int8's arguments computed by the kernel library
// on the reference path (the ops must match it bit for bit).
at::Tensor reference_linear_u8(const at::Tensor& x, const at::Tensor& w, int32_t in_zp, const at::Tensor& scale,
                               const at::Tensor& bias, int32_t out_zp, bool relu,
                               const at::Tensor* residual = nullptr, float residual_scale = 1.f,
                               int32_t residual_zp = 0) {
  namespace KN = compress::kernels;
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  auto blob = KN::pack_gemm_u8s8(w.contiguous().data_ptr<int8_t>(), N, K, in_zp, KN::Layout::rowmajor_s8);
  KN::PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  at::Tensor expect = at::empty({M, N}, at::kByte);
  KN::Epilogue ep;
  ep.scale = scale.data_ptr<float>();
  ep.bias = bias.data_ptr<float>();
  ep.out = KN::OutType::u8;
  ep.out_zero_point = out_zp;
  ep.relu = relu;
  if (residual) {
    ep.residual = residual->data_ptr<uint8_t>();
    ep.ld_residual = N;
    ep.residual_scale = residual_scale;
    ep.residual_zero_point = residual_zp;
  }
  KN::gemm_u8s8s32(M, x.contiguous().data_ptr<uint8_t>(), K, v, expect.data_ptr(), N, ep, KN::serial(), KN::Isa::ref);
  return expect;
}

}  // namespace

TEST_CASE("linear_int8 accumulates exactly (float output, unit scale)", "[ops][linear]") {
  at::manual_seed(1);
  const int64_t K = 77, N = 29;
  at::Tensor x = rand_u8({3, 5, K}), w = rand_s8({N, K});
  const int64_t zp = 121;
  at::Tensor packed = compress::ops::pack_linear_int8(w, zp, "auto");
  at::Tensor y = compress::ops::linear_int8(x, packed, at::ones({N}), c10::nullopt, 0, false, at::kFloat, c10::nullopt,
                                            1.0, 0);
  at::Tensor expect = at::matmul(x.to(at::kLong) - zp, w.to(at::kLong).t()).to(at::kFloat);
  REQUIRE(y.sizes() == expect.sizes());
  CHECK(at::equal(y, expect));
}

TEST_CASE("linear_int8 uint8 output equals the kernels' reference bit for bit", "[ops][linear]") {
  at::manual_seed(2);
  const int64_t M = 9, K = 50, N = 33;
  at::Tensor x = rand_u8({M, K}), w = rand_s8({N, K});
  at::Tensor scale = at::rand({N}) * 1e-3 + 1e-4, bias = at::randn({N}) * 5;
  at::Tensor y = compress::ops::linear_int8(x, compress::ops::pack_linear_int8(w, 17, "auto"), scale, bias, 128, true,
                                            at::kByte, c10::nullopt, 1.0, 0);
  // The same computation through the kernel library on the reference path.
  CHECK(at::equal(y, reference_linear_u8(x, w, 17, scale, bias, 128, true)));
  CHECK(y.min().item<int>() >= 128);  // ReLU clamps at the output zero point
}

TEST_CASE("conv2d_int8 matches at::conv2d on integers (groups 1 and depthwise)", "[ops][conv]") {
  at::manual_seed(3);
  struct C { int64_t n, h, w, cin, cout, k, stride, pad, dil, groups; };
  for (C c : {C{2, 9, 8, 5, 7, 3, 1, 1, 1, 1}, C{1, 10, 11, 3, 16, 7, 2, 3, 1, 1}, C{1, 6, 6, 24, 8, 1, 1, 0, 1, 1},
              C{2, 9, 9, 19, 19, 3, 2, 1, 1, 19}, C{1, 8, 8, 16, 16, 5, 1, 2, 1, 16}}) {
    const int64_t zp = 90;
    at::Tensor x = rand_u8({c.n, c.h, c.w, c.cin});
    at::Tensor w = rand_s8({c.cout, c.cin / c.groups, c.k, c.k});
    at::Tensor packed = compress::ops::pack_conv2d_int8(w, zp, c.groups, "auto");
    at::Tensor y = compress::ops::conv2d_int8(x, packed, at::ones({c.cout}), c10::nullopt, {c.stride, c.stride},
                                              {c.pad, c.pad}, {c.dil, c.dil}, 0, false, at::kFloat, c10::nullopt, 1.0, 0);
    // Integers below 2^24 are exact in float, so float conv2d is an exact reference.
    at::Tensor xf = (x.to(at::kFloat) - zp).permute({0, 3, 1, 2});
    at::Tensor expect = at::conv2d(xf, w.to(at::kFloat), {}, {c.stride, c.stride}, {c.pad, c.pad}, {c.dil, c.dil},
                                   c.groups)
                            .permute({0, 2, 3, 1});
    INFO("cin=" << c.cin << " cout=" << c.cout << " k=" << c.k << " groups=" << c.groups);
    REQUIRE(y.sizes() == expect.sizes());
    CHECK(at::equal(y, expect.contiguous()));
  }
}

TEST_CASE("linear_int8_sparse equals linear_int8 on the masked weight", "[ops][sparse]") {
  at::manual_seed(4);
  const int64_t M = 20, K = 64, N = 40;
  at::Tensor x = rand_u8({M, K}), w = rand_s8({N, K});
  at::Tensor blocks = at::rand({N, K / 4}) > 0.8;  // 80% sparse in 1x4 blocks
  at::Tensor mask14 = blocks.repeat_interleave(4, 1);
  at::Tensor idx = std::get<1>(at::rand({N, K / 4, 4}).sort(-1)).lt(2);  // 2 of every 4
  at::Tensor mask24 = idx.reshape({N, K});
  at::Tensor scale = at::rand({N}) * 1e-3 + 1e-4, bias = at::randn({N});
  for (auto [mask, fmt] : {std::pair<at::Tensor, std::string>{mask14, "1x4"}, {mask24, "2:4"}}) {
    at::Tensor sparse = compress::ops::linear_int8_sparse(
        x, compress::ops::pack_linear_int8_sparse(w, mask, 3, fmt), scale, bias, 10, false, at::kByte, c10::nullopt, 1.0, 0);
    at::Tensor dense = compress::ops::linear_int8(x, compress::ops::pack_linear_int8(w * mask.to(at::kChar), 3, "auto"),
                                                  scale, bias, 10, false, at::kByte, c10::nullopt, 1.0, 0);
    INFO(fmt);
    CHECK(at::equal(sparse, dense));
  }
}

TEST_CASE("a module using the ops saves and loads in C++", "[ops][serialization]") {
  at::manual_seed(5);
  torch::jit::Module m("QuantLinear");
  const int64_t K = 24, N = 10;
  at::Tensor w = rand_s8({N, K});
  m.register_buffer("packed", call("pack_linear_int8", {w, int64_t{7}, std::string("auto")}).toTensor());
  m.register_buffer("scale", at::full({N}, 0.01f));
  m.register_buffer("bias", at::zeros({N}));
  m.define(R"(
def forward(self, x):
    y = ops.compress.linear_int8(x, self.packed, self.scale, self.bias, 5, True, 0)
    return ops.compress.dequantize_u8(y, 0.5, 5)
)", compress::ops::script_resolver());
  at::Tensor x = rand_u8({4, K});
  at::Tensor before = m.forward({x}).toTensor();
  const std::string path = std::string(COMPRESS_BINARY_DIR) + "/test_ops_module.pt";
  m.save(path);
  torch::jit::Module loaded = torch::jit::load(path);
  at::Tensor after = loaded.forward({x}).toTensor();
  std::remove(path.c_str());
  CHECK(at::equal(before, after));
  CHECK(before.scalar_type() == at::kFloat);
  CHECK(before.min().item<float>() >= 0.f);
}

TEST_CASE("max_pool2d_u8 equals aten::max_pool2d on the codes (padding, stride, dilation, ceil_mode)",
          "[ops][pool]") {
  struct Case {
    int64_t n, h, w, c;
    std::vector<int64_t> kernel, stride, padding, dilation;
    bool ceil;
  };
  const Case cases[] = {
      {2, 112, 112, 64, {3}, {2}, {1}, {1}, false},   // the ResNet stem's pool
      {1, 9, 7, 3, {2, 3}, {}, {0}, {1}, false},      // no stride: the kernel size
      {3, 10, 11, 17, {3, 2}, {2, 1}, {1, 1}, {2, 1}, true},
      {1, 13, 13, 33, {3}, {2}, {0}, {1}, true},      // ceil_mode adds a partial last window
      {1, 5, 6, 1, {5}, {3}, {2}, {1}, true},
  };
  for (const Case& k : cases) {
    at::Tensor codes = rand_u8({k.n, k.h, k.w, k.c});
    at::Tensor got = compress::ops::max_pool2d_u8(codes, k.kernel, k.stride, k.padding, k.dilation, k.ceil);
    at::Tensor nchw = codes.permute({0, 3, 1, 2}).to(at::kFloat);
    at::Tensor expect = at::max_pool2d(nchw, k.kernel, k.stride, k.padding, k.dilation, k.ceil);
    INFO("input " << codes.sizes() << " kernel " << at::IntArrayRef(k.kernel) << " ceil " << k.ceil);
    REQUIRE(got.sizes() == expect.permute({0, 2, 3, 1}).sizes());
    CHECK(got.to(at::kFloat).equal(expect.permute({0, 2, 3, 1})));
  }
  std::string e = error_of([&] { compress::ops::max_pool2d_u8(rand_u8({1, 4, 4, 2}), {3}, {1}, {2}, {1}, false); });
  CHECK_THAT(e, Catch::StartsWith("compress::max_pool2d_u8: max_pool2d_u8: padding 2 is more than half the kernel 3"));
  e = error_of([&] { compress::ops::max_pool2d_u8(at::ones({1, 4, 4, 2}), {2}, {}, {0}, {1}, false); });
  CHECK_THAT(e, Catch::Contains("input must be a 4-D uint8 NHWC"));
  e = error_of([&] { compress::ops::max_pool2d_u8(rand_u8({1, 2, 2, 2}), {3}, {}, {0}, {1}, false); });
  CHECK_THAT(e, Catch::Contains("larger than the padded input"));
  CHECK(e.find('\n') == std::string::npos);
}

TEST_CASE("quantize_u8_nhwc equals quantize_u8 of the NHWC permutation", "[ops][quantize]") {
  for (auto shape : {std::vector<int64_t>{2, 3, 7, 37}, std::vector<int64_t>{1, 64, 5, 5}, std::vector<int64_t>{3, 1, 1, 1}}) {
    at::Tensor x = at::randn(shape) * 3;
    at::Tensor got = compress::ops::quantize_u8_nhwc(x, 0.03, 100, 255);
    at::Tensor expect = compress::ops::quantize_u8(x.permute({0, 2, 3, 1}), 0.03, 100, 255);
    INFO("shape " << at::IntArrayRef(shape));
    CHECK(got.sizes() == expect.sizes());
    CHECK(got.equal(expect));
    CHECK(compress::ops::quantize_u8_nhwc(x, 0.03, 10, 127).equal(compress::ops::quantize_u8(x.permute({0, 2, 3, 1}), 0.03, 10, 127)));
    // A channels-last input (NHWC in memory) gives the same bytes, quantized in memory order.
    CHECK(compress::ops::quantize_u8_nhwc(x.contiguous(at::MemoryFormat::ChannelsLast), 0.03, 100, 255).equal(expect));
    // A strided input that is neither layout, too.
    CHECK(compress::ops::quantize_u8_nhwc(x.transpose(2, 3).contiguous().transpose(2, 3), 0.03, 100, 255).equal(expect));
  }
  CHECK_THAT(error_of([&] { compress::ops::quantize_u8_nhwc(at::randn({2, 3}), 0.1, 0, 255); }),
             Catch::StartsWith("compress::quantize_u8_nhwc: input must be a 4-D float NCHW"));
}

TEST_CASE("bad input gives a one-line error naming the op", "[ops][errors]") {
  at::Tensor w = rand_s8({4, 8});
  at::Tensor p = compress::ops::pack_linear_int8(w, 0, "auto");
  auto linear = [&](const at::Tensor& x, const at::Tensor& pw, const at::Tensor& s) {
    compress::ops::linear_int8(x, pw, s, c10::nullopt, 0, false, at::kFloat, c10::nullopt, 1.0, 0);
  };
  std::string e = error_of([&] { linear(rand_u8({2, 7}), p, at::ones({4})); });
  CHECK_THAT(e, Catch::StartsWith("compress::linear_int8: input's last dimension must be 8"));
  CHECK(e.find('\n') == std::string::npos);
  e = error_of([&] { linear(at::ones({2, 8}), p, at::ones({4})); });
  CHECK_THAT(e, Catch::Contains("input must be a uint8"));
  e = error_of([&] { linear(rand_u8({2, 8}), at::zeros({300}, at::kByte), at::ones({4})); });
  CHECK_THAT(e, Catch::Contains("bad magic"));
  e = error_of([&] { linear(rand_u8({2, 8}), p, at::ones({3})); });
  CHECK_THAT(e, Catch::Contains("scale must be a 1-D float tensor of 4"));
  at::Tensor bad_scale = at::ones({4});
  bad_scale[2] = std::numeric_limits<float>::quiet_NaN();
  e = error_of([&] { linear(rand_u8({2, 8}), p, bad_scale); });
  CHECK_THAT(e, Catch::StartsWith("compress::linear_int8: scale[2] is nan; scales must be finite"));
  at::Tensor bad_bias = at::zeros({4});
  bad_bias[0] = std::numeric_limits<float>::infinity();
  e = error_of([&] {
    compress::ops::linear_int8(rand_u8({2, 8}), p, at::ones({4}), bad_bias, 0, false, at::kFloat, c10::nullopt, 1.0, 0);
  });
  CHECK_THAT(e, Catch::StartsWith("compress::linear_int8: bias[0] is inf; biases must be finite"));
  e = error_of([&] {
    compress::ops::linear_int8(rand_u8({2, 8}), p, at::ones({4}), c10::nullopt, 0, false, at::kFloat,
                               at::zeros({2, 4}), std::numeric_limits<double>::infinity(), 0);
  });
  CHECK_THAT(e, Catch::Contains("residual_scale is inf; it must be finite"));
  e = error_of([&] { compress::ops::pack_linear_int8(w, 300, "auto"); });
  CHECK_THAT(e, Catch::Contains("input_zero_point must be in 0..255"));
  e = error_of([&] { compress::ops::pack_conv2d_int8(rand_s8({8, 2, 3, 3}), 0, 4, "auto"); });
  CHECK_THAT(e, Catch::Contains("only as depthwise"));
  e = error_of([&] { compress::ops::pack_linear_int8_sparse(w, at::ones({4, 8}), 0, "3:4"); });
  CHECK_THAT(e, Catch::Contains("format must be"));
  e = error_of([&] { compress::ops::pack_linear_int8_sparse(w, at::ones({4, 8}), 0, "2:4"); });
  CHECK_THAT(e, Catch::Contains("more than 2"));
}

TEST_CASE("non-finite scales and biases are refused by every op, naming the element", "[ops][errors]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  auto with = [](at::Tensor t, int64_t i, float v) {
    t[i] = v;
    return t;
  };
  // The requantization parameters of the sparse linear and the convolution
  // (make_epilogue, as linear_int8 above).
  const at::Tensor sparse_w = rand_s8({4, 8}), mask = at::ones({4, 8}, at::kByte);
  const at::Tensor sp = compress::ops::pack_linear_int8_sparse(sparse_w, mask, 0, "1x4");
  std::string e = error_of([&] {
    compress::ops::linear_int8_sparse(rand_u8({2, 8}), sp, at::ones({4}), with(at::zeros({4}), 1, -inf), 0, false,
                                      at::kFloat, c10::nullopt, 1.0, 0);
  });
  CHECK_THAT(e, Catch::StartsWith("compress::linear_int8_sparse: bias[1] is -inf; biases must be finite"));
  const at::Tensor cp = compress::ops::pack_conv2d_int8(rand_s8({4, 2, 3, 3}), 0, 1, "auto");
  e = error_of([&] {
    compress::ops::conv2d_int8(rand_u8({1, 5, 5, 2}), cp, with(at::ones({4}), 3, nan), c10::nullopt, {1, 1}, {0, 0},
                               {1, 1}, 0, false, at::kFloat, c10::nullopt, 1.0, 0);
  });
  CHECK_THAT(e, Catch::StartsWith("compress::conv2d_int8: scale[3] is nan; scales must be finite"));
  // Activation scales: positive and finite, for quantizing and dequantizing alike.
  const at::Tensor x = at::rand({1, 2, 3, 3});
  for (double s : {double(nan), double(inf), 0.0, -1.0}) {
    INFO(s);
    CHECK_THAT(error_of([&] { compress::ops::quantize_u8(x, s, 0); }),
               Catch::StartsWith("compress::quantize_u8: scale must be positive and finite, got "));
    CHECK_THAT(error_of([&] { compress::ops::quantize_u8_nhwc(x, s, 0); }),
               Catch::StartsWith("compress::quantize_u8_nhwc: scale must be positive and finite, got "));
    CHECK_THAT(error_of([&] { compress::ops::dequantize_u8(rand_u8({4}), s, 0); }),
               Catch::StartsWith("compress::dequantize_u8: scale must be positive and finite, got "));
  }
  // Float inputs are data: NaN goes to code 0 and the infinities clamp
  // (quantize.h's formula), the op does not refuse them.
  const at::Tensor q = compress::ops::quantize_u8(at::tensor({nan, inf, -inf, 1.0f}), 0.5, 10, 200);
  CHECK(q.equal(at::tensor({0, 200, 0, 12}, at::kByte)));
}

TEST_CASE("ops report the kernel ISA", "[ops]") {
  const std::string isa = call("kernel_isa", {}).toStringRef();
  CHECK((isa == "ref" || isa == "avx2" || isa == "avx512vnni" || isa == "amx"));
}

TEST_CASE("linear_int8 fuses the residual add like the kernels' reference", "[ops][linear]") {
  at::manual_seed(6);
  const int64_t M = 7, K = 40, N = 24;
  at::Tensor x = rand_u8({M, K}), w = rand_s8({N, K}), r = rand_u8({M, N});
  at::Tensor scale = at::rand({N}) * 1e-3 + 1e-4, bias = at::randn({N});
  at::Tensor y = compress::ops::linear_int8(x, compress::ops::pack_linear_int8(w, 11, "auto"), scale, bias, 20, true,
                                            at::kByte, r, 0.7, 9);
  CHECK(at::equal(y, reference_linear_u8(x, w, 11, scale, bias, 20, true, &r, 0.7f, 9)));
  // The residual changed the result (the test would pass vacuously otherwise).
  at::Tensor no_res = compress::ops::linear_int8(x, compress::ops::pack_linear_int8(w, 11, "auto"), scale, bias, 20,
                                                 true, at::kByte, c10::nullopt, 1.0, 0);
  CHECK_FALSE(at::equal(y, no_res));
  std::string e = error_of([&] {
    compress::ops::linear_int8(x, compress::ops::pack_linear_int8(w, 11, "auto"), scale, bias, 20, true, at::kByte,
                               rand_u8({M, N + 1}), 1.0, 0);
  });
  CHECK_THAT(e, Catch::Contains("residual must have the output shape"));
}

TEST_CASE("ops give identical results on 1 and 2 LibTorch threads, and inside a parallel region",
          "[ops][threads]") {
  at::manual_seed(7);
  const int64_t threads_before = at::get_num_threads();
  at::Tensor x = rand_u8({2, 20, 20, 16}), w = rand_s8({32, 16, 3, 3});
  at::Tensor packed = compress::ops::pack_conv2d_int8(w, 50, 1, "auto");
  auto run = [&] {
    return compress::ops::conv2d_int8(x, packed, at::full({32}, 2e-4), c10::nullopt, {1, 1}, {1, 1}, {1, 1}, 3, false,
                                      at::kByte, c10::nullopt, 1.0, 0);
  };
  at::set_num_threads(1);
  at::Tensor one = run();
  at::set_num_threads(2);
  at::Tensor two = run();
  // Nested in LibTorch's own parallel region the op runs serially instead of adding threads.
  at::Tensor nested;
  at::parallel_for(0, 1, 1, [&](int64_t, int64_t) { nested = run(); });
  at::set_num_threads(static_cast<int>(threads_before));
  CHECK(at::equal(one, two));
  CHECK(at::equal(one, nested));
  CHECK(std::get<0>(at::_unique(one)).numel() > 10);
}

TEST_CASE("7-bit activations: the _u7 layouts, quant_max and output_quant_max", "[ops][linear][u7]") {
  at::manual_seed(9);
  const int64_t K = 72, N = 40;
  // Trained-like weights (uniform random ones would need so many corrections
  // that packing falls back to the exact s16 layout, which takes any input).
  at::Tensor w = (at::randn({N, K}) * 30).round().clamp(-127, 127).to(at::kChar);
  at::Tensor x = at::randint(0, 128, {6, K}, at::kByte);
  const int64_t zp = 60;
  at::Tensor expect = at::matmul(x.to(at::kLong) - zp, w.to(at::kLong).t()).to(at::kFloat);
  for (const char* layout : {"auto_u7", "avx2_u7", "ref_u7"}) {
    INFO("layout " << layout);
    at::Tensor packed = compress::ops::pack_linear_int8(w, zp, layout);
    at::Tensor y = compress::ops::linear_int8(x, packed, at::ones({N}), c10::nullopt, 0, false, at::kFloat,
                                              c10::nullopt, 1.0, 0);
    CHECK(at::equal(y, expect));
  }
  // What the layout cannot take is refused, naming the op and the cause.
  at::Tensor packed7 = compress::ops::pack_linear_int8(w, zp, "avx2_u7");
  REQUIRE(compress::kernels::PackedView(packed7.data_ptr<uint8_t>(), packed7.numel()).layout() ==
          compress::kernels::Layout::avx2_n16k8_u7s8);
  at::Tensor big = x.clone();
  big[2][5] = 128;
  const std::string err = error_of([&] {
    compress::ops::linear_int8(big, packed7, at::ones({N}), c10::nullopt, 0, false, at::kFloat, c10::nullopt, 1.0, 0);
  });
  CHECK(err.find("compress::linear_int8") != std::string::npos);
  CHECK(err.find("exceeds 127") != std::string::npos);
  CHECK(error_of([&] { compress::ops::pack_linear_int8(w, 128, "avx2_u7"); }).find("0..127") != std::string::npos);
  CHECK(error_of([&] { compress::ops::pack_linear_int8(w, 0, "avx3_u7"); }).find("unknown layout") != std::string::npos);
  // quantize_u8 with quant_max 127 makes inputs the layout takes; the default keeps 0..255.
  at::Tensor f = at::linspace(-10, 300, 500);
  at::Tensor q7 = compress::ops::quantize_u8(f, 1.0, 3, 127), q8 = compress::ops::quantize_u8(f, 1.0, 3);
  CHECK(q7.max().item<int64_t>() == 127);
  CHECK(q8.max().item<int64_t>() == 255);
  CHECK(at::equal(q7, at::clamp_max(q8, 127)));
  CHECK(error_of([&] { compress::ops::quantize_u8(f, 1.0, 3, 2); }).find("quant_max") != std::string::npos);
  // output_quant_max caps a uint8 output, so it can feed the next 7-bit layer.
  at::Tensor scale = at::full({N}, 0.05), bias = at::full({N}, 100.0);
  at::Tensor y8 = compress::ops::linear_int8(x, packed7, scale, bias, 20, false, at::kByte, c10::nullopt, 1.0, 0);
  at::Tensor y7 = compress::ops::linear_int8(x, packed7, scale, bias, 20, false, at::kByte, c10::nullopt, 1.0, 0, 127);
  REQUIRE(y8.max().item<int64_t>() > 127);  // the cap below is not vacuous
  CHECK(at::equal(y7, at::clamp_max(y8, 127)));
}

TEST_CASE("large op outputs reuse freed blocks of the CPU block cache, within its limit", "[ops][pool]") {
  namespace ops = compress::ops;
  // Not installed in front of LibTorch's allocator here: the ops use the cache directly.
  REQUIRE_FALSE(compress::cpu_block_cache_installed());
  const size_t saved_limit = compress::cpu_block_cache_limit_bytes();
  compress::set_cpu_block_cache_limit_bytes(size_t{64} << 20);
  compress::set_cpu_block_cache_limit_bytes(0);  // start empty
  compress::set_cpu_block_cache_limit_bytes(size_t{64} << 20);
  REQUIRE(compress::cpu_block_cache_cached_bytes() == 0);

  const at::Tensor x = at::rand({2, 16, 128, 128});  // its uint8 NHWC codes: 512 KiB, pooled
  const at::Tensor expect = ops::quantize_u8_nhwc(x, 0.01, 3, 255).clone();
  const void* first = nullptr;
  {
    at::Tensor q = ops::quantize_u8_nhwc(x, 0.01, 3, 255);
    first = q.data_ptr();
    CHECK(reinterpret_cast<uintptr_t>(first) % 64 == 0);
  }
  const size_t held = compress::cpu_block_cache_cached_bytes();
  CHECK(held >= size_t{512} << 10);
  at::Tensor again = ops::quantize_u8_nhwc(x, 0.01, 3, 255);
  CHECK(again.data_ptr() == first);  // the freed block, handed out again
  CHECK(at::equal(again, expect));   // and every byte written
  CHECK(compress::cpu_block_cache_cached_bytes() == 0);

  // Small outputs come from LibTorch's allocator: the pool does not grow.
  { at::Tensor small = ops::quantize_u8_nhwc(at::rand({1, 4, 8, 8}), 0.01, 3, 255); }
  CHECK(compress::cpu_block_cache_cached_bytes() == 0);

  // Resizing an output made by the pool works like any tensor's.
  at::Tensor grown = ops::quantize_u8(at::rand({600 * 1024}), 0.01, 0, 255);
  const at::Tensor head = grown.clone();
  grown.resize_({1200 * 1024});
  CHECK(at::equal(grown.narrow(0, 0, 600 * 1024), head));

  // Over the limit, freed blocks go back to the system: three 512 KiB
  // outputs freed under a 1.2 MiB limit leave two in the pool.
  again = at::Tensor();
  grown = at::Tensor();
  compress::set_cpu_block_cache_limit_bytes(0);
  compress::set_cpu_block_cache_limit_bytes(size_t{1200} << 10);
  {
    std::vector<at::Tensor> outs;
    for (int i = 0; i < 3; ++i) outs.push_back(ops::quantize_u8_nhwc(x, 0.01, 3, 255));
  }
  CHECK(compress::cpu_block_cache_cached_bytes() == 2 * held);
  CHECK(compress::cpu_block_cache_cached_bytes() <= size_t{1200} << 10);
  // Lowering the limit frees what is over it now.
  compress::set_cpu_block_cache_limit_bytes(held);
  CHECK(compress::cpu_block_cache_cached_bytes() == held);
  compress::set_cpu_block_cache_limit_bytes(saved_limit);
}
