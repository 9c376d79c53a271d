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
