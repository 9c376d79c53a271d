// ISA naming/parsing and the activation quantize/dequantize kernels.
#include <catch2/catch.hpp>

#include <cmath>

#include "compress/error.h"
#include "compress/kernels/quantize.h"
#include "kernel_test_util.h"

using namespace compress::kernels;

TEST_CASE("ISA names round-trip and unknown names are refused", "[kernels][isa]") {
  for (Isa isa : {Isa::ref, Isa::avx2, Isa::avx512vnni, Isa::amx}) CHECK(parse_isa(isa_name(isa)) == isa);
  CHECK_THROWS_WITH(parse_isa("sse9"), Catch::Contains("unknown ISA 'sse9'"));
  CHECK(cpu_supports(Isa::ref));
  CHECK(cpu_supports(best_isa()));
  // The active ISA is one the CPU supports, whatever COMPRESS_ISA said.
  CHECK(cpu_supports(active_isa()));
}

TEST_CASE("quantize/dequantize round-trip within half a step, saturating", "[kernels][quantize]") {
  std::mt19937 g(3);
  auto x = kt::random_f(g, 1001, -3.f, 5.f);
  x.push_back(1e9f);
  x.push_back(-1e9f);
  const float scale = 0.02f;
  const int32_t zp = 60;
  std::vector<uint8_t> q(x.size());
  std::vector<float> back(x.size());
  quantize_f32_u8(x.data(), static_cast<int64_t>(x.size()), scale, zp, q.data());
  dequantize_u8_f32(q.data(), static_cast<int64_t>(q.size()), scale, zp, back.data());
  const float lo = (0 - zp) * scale, hi = (255 - zp) * scale;
  for (size_t i = 0; i < x.size(); ++i) {
    const float clamped = std::min(std::max(x[i], lo), hi);
    INFO("x=" << x[i] << " q=" << int(q[i]));
    CHECK(std::fabs(back[i] - clamped) <= 0.5f * scale * 1.0001f);
  }
  CHECK(q[q.size() - 2] == 255);
  CHECK(q[q.size() - 1] == 0);
}

TEST_CASE("quantize_f32_u8 gives the formula's bytes: ties to even, NaN and infinities, every tail length",
          "[kernels][quantize]") {
  // quantize.h's formula, written out here independently of the kernels.
  auto expect = [](float x, float scale, int32_t zp, int32_t qmax) -> uint8_t {
    float v = std::nearbyint(x * (1.f / scale)) + static_cast<float>(zp);
    if (!(v > 0.f)) v = 0.f;  // NaN too
    if (!(v < static_cast<float>(qmax))) v = static_cast<float>(qmax);
    return static_cast<uint8_t>(v);
  };
  std::mt19937 g(11);
  const float scale = 0.25f;  // exact reciprocal: x = (k + 0.5) * scale lands on a tie
  std::vector<float> x = kt::random_f(g, 300, -80.f, 80.f);
  for (int k = -20; k < 20; ++k) x.push_back((static_cast<float>(k) + 0.5f) * scale);
  for (float s : {NAN, INFINITY, -INFINITY, -0.f, 1e30f, -1e30f, 63.74f, 63.76f}) x.push_back(s);
  for (int32_t qmax : {255, 127})
    for (size_t n : {x.size(), size_t{1}, size_t{31}, size_t{32}, size_t{33}, size_t{95}}) {
      std::vector<uint8_t> q(n, 0xAA);
      quantize_f32_u8(x.data() + (x.size() - n), static_cast<int64_t>(n), scale, 100, q.data(), qmax);
      for (size_t i = 0; i < n; ++i) {
        const float v = x[x.size() - n + i];
        INFO("x=" << v << " n=" << n << " quant_max=" << qmax);
        REQUIRE(int(q[i]) == int(expect(v, scale, 100, qmax)));
      }
    }
}

TEST_CASE("quantize_f32_u8_nchw_to_nhwc interleaves the same bytes as quantize_f32_u8, RGB rows of every tail",
          "[kernels][quantize]") {
  // Three channels take the in-register interleave (blocks of 32 pixels),
  // the rest of a row and other channel counts the plane-by-plane loop.
  std::mt19937 g(5);
  for (int64_t c : {3, 2, 4})
    for (int64_t w : {1, 31, 32, 33, 64, 70, 224}) {
      const int64_t n = 2, h = 3;
      std::vector<float> x = kt::random_f(g, n * c * h * w, -5.f, 5.f);
      x[0] = NAN;
      x[x.size() / 2] = 0.125f;  // a tie at scale 0.25
      x.back() = INFINITY;
      for (int32_t qmax : {255, 127}) {
        std::vector<uint8_t> got(x.size(), 0xAA), plane(static_cast<size_t>(w));
        quantize_f32_u8_nchw_to_nhwc(x.data(), c, h, w, 0, n * h, 0.25f, 100, got.data(), qmax);
        for (int64_t b = 0; b < n; ++b)
          for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t y = 0; y < h; ++y) {
              quantize_f32_u8(x.data() + ((b * c + ch) * h + y) * w, w, 0.25f, 100, plane.data(), qmax);
              for (int64_t i = 0; i < w; ++i) {
                INFO("c=" << c << " w=" << w << " b=" << b << " ch=" << ch << " y=" << y << " i=" << i);
                REQUIRE(int(got[((b * h + y) * w + i) * c + ch]) == int(plane[static_cast<size_t>(i)]));
              }
            }
      }
    }
}
