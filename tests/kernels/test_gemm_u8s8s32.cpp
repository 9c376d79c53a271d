// gemm_u8s8s32: every ISA variant against the reference and against an
// independent naive GEMM, bit for bit, on random shapes with tails, extreme
// values, zero points, every output type, ReLU and residual.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "compress/error.h"
#include "compress/kernels/packed.h"
#include "kernel_test_util.h"

using namespace compress::kernels;

namespace {

struct Case {
  int64_t M, N, K;
  int32_t a_zp;
  OutType out;
  bool relu, bias, residual;
  int extremes;  // 0 random, 1 all max (255 x 127), 2 max x min (255 x -128), 3 mixed saturating pairs
};

// Runs one case on `isa` and on the reference and compares both with the naive GEMM.
// Activations are drawn from 0..a_max (127 for the 7-bit layout).
void check_case(const Case& c, Isa isa, std::mt19937& g, Layout layout, double max_correction, int a_max = 255) {
  std::vector<uint8_t> A;
  std::vector<int8_t> W;
  const auto top = static_cast<uint8_t>(a_max);
  switch (c.extremes) {
    case 1: A.assign(c.M * c.K, top); W.assign(c.N * c.K, 127); break;
    case 2: A.assign(c.M * c.K, top); W.assign(c.N * c.K, -128); break;
    case 3:
      // Values that saturate vpmaddubsw's s16 pair sums: 255*127 + 255*127
      // (for 7-bit activations: overflow the s16 sum of two quads).
      A = kt::random_u8(g, c.M * c.K, a_max - 5, a_max);
      W = kt::random_s8(g, c.N * c.K, 120, 127);
      for (size_t i = 0; i < W.size(); i += 3) W[i] = -128;
      for (size_t i = 0; i < A.size(); i += 5) A[i] = 0;
      break;
    default: A = kt::random_u8(g, c.M * c.K, 0, a_max); W = kt::random_s8(g, c.N * c.K); break;
  }
  // Scales that map the accumulator range onto the output range, so outputs
  // spread over it and saturate at both ends.
  const float span = static_cast<float>(c.K) * 128.f * 255.f;
  std::vector<float> scale = kt::random_f(g, c.N, 0.3f * 255.f / span, 3.f * 255.f / span);
  std::vector<float> bias = kt::random_f(g, c.N, -40.f, 40.f);
  Epilogue ep;
  ep.scale = scale.data();
  ep.bias = c.bias ? bias.data() : nullptr;
  ep.out = c.out;
  ep.relu = c.relu;
  ep.out_zero_point = c.out == OutType::u8 ? 1 + static_cast<int32_t>(g() % 250) : c.out == OutType::s8 ? -5 : 0;
  // Now and then a u8 output capped below 255 (7-bit activations for a next layer).
  if (c.out == OutType::u8 && g() % 3 == 0) ep.out_quant_max = ep.out_zero_point + static_cast<int32_t>(g() % (256 - ep.out_zero_point));
  std::vector<uint8_t> residual;
  if (c.residual) {
    residual = kt::random_u8(g, c.M * c.N * kt::out_bytes(c.out));
    if (c.out == OutType::f32) {
      auto r = kt::random_f(g, c.M * c.N, -3.f, 3.f);
      std::memcpy(residual.data(), r.data(), residual.size());
    }
    ep.residual = residual.data();
    ep.ld_residual = c.N;
    ep.residual_scale = 0.75f;
    ep.residual_zero_point = c.out == OutType::f32 ? 0 : 3;
  }
  const int64_t bytes = c.M * c.N * kt::out_bytes(c.out);
  std::vector<uint8_t> expect(bytes), got_ref(bytes, 0xAB), got(bytes, 0xCD);
  kt::naive_gemm(c.M, c.N, c.K, A.data(), c.a_zp, W.data(), ep, expect.data());

  auto blob_ref = pack_gemm_u8s8(W.data(), c.N, c.K, c.a_zp, Layout::rowmajor_s8);
  PackedView vref(blob_ref.data(), static_cast<int64_t>(blob_ref.size()));
  gemm_u8s8s32(c.M, A.data(), c.K, vref, got_ref.data(), c.N, ep, serial(), Isa::ref);

  auto blob = pack_gemm_u8s8(W.data(), c.N, c.K, c.a_zp, layout, max_correction);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  REQUIRE(v.layout() == layout);
  // Two threads: the tiles are split between them as in production.
  gemm_u8s8s32(c.M, A.data(), c.K, v, got.data(), c.N, ep, std_threads(2), isa);

  INFO("isa=" << isa_name(isa) << " M=" << c.M << " N=" << c.N << " K=" << c.K << " a_zp=" << c.a_zp
               << " out=" << static_cast<int>(c.out) << " relu=" << c.relu << " bias=" << c.bias
               << " residual=" << c.residual << " extremes=" << c.extremes);
  CHECK(kt::first_mismatch(got_ref, expect, c.out) == -1);
  CHECK(kt::first_mismatch(got, expect, c.out) == -1);
}

void run_all_cases(Isa isa, Layout layout, double max_correction = kDefaultMaxCorrection, int a_max = 255) {
  std::mt19937 g(1234 + static_cast<int>(isa));
  const int64_t Ms[] = {1, 2, 3, 4, 5, 6, 7, 9, 10, 13, 49};  // every remainder of the 6- and 4-row tiles
  const int64_t Ns[] = {1, 3, 16, 17, 32, 33, 70};
  const int64_t Ks[] = {1, 2, 3, 4, 5, 7, 8, 12, 16, 31, 64, 129};  // 12: a multiple of 4, not of 8
  const OutType outs[] = {OutType::u8, OutType::s8, OutType::f32};
  int i = 0;
  for (int64_t M : Ms)
    for (int64_t N : Ns)
      for (int64_t K : Ks) {
        ++i;
        Case c{M, N, K, static_cast<int32_t>(g() % (a_max + 1)), outs[i % 3], (i % 4) == 1, (i % 5) != 0,
               (i % 7) == 3, (i % 11 == 4) ? 1 + static_cast<int>(i % 3) : 0};
        check_case(c, isa, g, layout, max_correction, a_max);
      }
  // Saturation edges on bigger K, every extreme pattern and zero points 0, middle and top.
  for (int ex = 1; ex <= 3; ++ex)
    for (int32_t zp : {0, (a_max + 1) / 2, a_max})
      for (OutType out : outs)
        check_case(Case{9, 35, 515, zp, out, false, true, false, ex}, isa, g, layout, max_correction, a_max);
}

// The integer part alone: f32 output with unit scale and no bias is the exact
// accumulator (|acc| < 2^24 here), compared against int64 sums.
void check_integer_part(Isa isa, Layout layout, int a_max = 255) {
  std::mt19937 g(77);
  const int64_t M = 11, N = 37, K = 255;
  auto A = kt::random_u8(g, M * K, 0, a_max);
  auto W = kt::random_s8(g, N * K);
  const int32_t a_zp = a_max / 2 + 4;
  std::vector<float> ones(N, 1.f), C(M * N);
  Epilogue ep;
  ep.scale = ones.data();
  auto blob = pack_gemm_u8s8(W.data(), N, K, a_zp, layout, 1.0);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  REQUIRE(v.layout() == layout);
  gemm_u8s8s32(M, A.data(), K, v, C.data(), N, ep, serial(), isa);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int64_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += (A[m * K + k] - a_zp) * static_cast<int64_t>(W[n * K + k]);
      REQUIRE(static_cast<int64_t>(C[m * N + n]) == acc);
    }
}

}  // namespace

TEST_CASE("gemm_u8s8s32_ref matches the naive GEMM", "[kernels][gemm][ref]") {
  run_all_cases(Isa::ref, Layout::rowmajor_s8);
  check_integer_part(Isa::ref, Layout::rowmajor_s8);
}

TEST_CASE("gemm_u8s8s32_avx2_6x16c2_s16 (exact s16 path) matches the reference", "[kernels][gemm][avx2]") {
  KT_REQUIRE_ISA(Isa::avx2);
  std::vector<uint8_t> blob = pack_gemm_u8s8(std::vector<int8_t>(4, 1).data(), 2, 2, 0, Layout::avx2_n16k2_s16);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  REQUIRE(std::string(gemm_kernel_name(v, Isa::avx2)) == "gemm_u8s8s32_avx2_6x16c2_s16");
  run_all_cases(Isa::avx2, Layout::avx2_n16k2_s16);
  check_integer_part(Isa::avx2, Layout::avx2_n16k2_s16);
}

TEST_CASE("gemm_u8s8s32_avx2_6x16c2_s8 (exact path, s8-stored weights) matches the reference", "[kernels][gemm][avx2]") {
  KT_REQUIRE_ISA(Isa::avx2);
  std::vector<uint8_t> blob = pack_gemm_u8s8(std::vector<int8_t>(4, 1).data(), 2, 2, 0, Layout::avx2_n16k2_s8);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  REQUIRE(std::string(gemm_kernel_name(v, Isa::avx2)) == "gemm_u8s8s32_avx2_6x16c2_s8");
  run_all_cases(Isa::avx2, Layout::avx2_n16k2_s8);
  check_integer_part(Isa::avx2, Layout::avx2_n16k2_s8);
}

TEST_CASE("gemm_u8s8s32_avx2_6x16c4 (vpmaddubsw + correction) matches the reference", "[kernels][gemm][avx2]") {
  KT_REQUIRE_ISA(Isa::avx2);
  // Forced (max_correction = 1): every case, extremes included, takes the u8 path.
  run_all_cases(Isa::avx2, Layout::avx2_n16k4_u8s8, 1.0);
  check_integer_part(Isa::avx2, Layout::avx2_n16k4_u8s8);
  std::mt19937 g(8);
  auto forced = pack_gemm_u8s8(kt::random_s8(g, 64 * 64).data(), 64, 64, 0, Layout::avx2_n16k4_u8s8, 1.0);
  PackedView v(forced.data(), static_cast<int64_t>(forced.size()));
  CHECK(std::string(gemm_kernel_name(v, Isa::avx2)) == "gemm_u8s8s32_avx2_6x16c4");
  CHECK(v.nnz() > 0);  // uniform random weights need corrections
}

TEST_CASE("gemm_u8s8s32_avx2_4x16c8_u7 (7-bit activations, two quads per s16) matches the reference",
          "[kernels][gemm][avx2]") {
  KT_REQUIRE_ISA(Isa::avx2);
  run_all_cases(Isa::avx2, Layout::avx2_n16k8_u7s8, 1.0, 127);
  check_integer_part(Isa::avx2, Layout::avx2_n16k8_u7s8, 127);
  std::mt19937 g(8);
  auto forced = pack_gemm_u8s8(kt::random_s8(g, 64 * 64).data(), 64, 64, 0, Layout::avx2_n16k8_u7s8, 1.0);
  PackedView v(forced.data(), static_cast<int64_t>(forced.size()));
  CHECK(std::string(gemm_kernel_name(v, Isa::avx2)) == "gemm_u8s8s32_avx2_4x16c8_u7");
  CHECK(v.k_pad() % 8 == 0);
  CHECK(v.nnz() > 0);  // uniform random weights overflow some lanes
}

TEST_CASE("the 7-bit layout bounds every s16 lane and keeps the rest as corrections", "[kernels][gemm][packing]") {
  std::mt19937 g(10);
  const int64_t N = 24, K = 37;  // K not a multiple of 8: partial lanes at the end
  auto W = kt::random_s8(g, N * K);
  auto blob = pack_gemm_u8s8(W.data(), N, K, 3, Layout::avx2_n16k8_u7s8, 1.0);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  REQUIRE(v.layout() == Layout::avx2_n16k8_u7s8);
  CHECK(unpack_weight_rowmajor(v) == W);  // clipped part + corrections = the weight
  // The packed (clipped) weights of each lane: sum |w| <= 258, so 127 * sum fits s16.
  const auto* d = reinterpret_cast<const int8_t*>(v.data());
  const int64_t kq = v.k_pad() / 4;
  int64_t worst = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < v.k_pad(); o += 8)
      for (int64_t h = 0; h < 2; ++h) {
        int64_t sum = 0;
        for (int64_t k : {o + 2 * h, o + 2 * h + 1, o + 4 + 2 * h, o + 5 + 2 * h})
          sum += std::abs(d[((n / 16 * kq + k / 4) * 16 + n % 16) * 4 + k % 4]);
        worst = std::max(worst, sum);
      }
  CHECK(worst <= 258);
  CHECK(worst >= 200);  // uniform weights do reach the budget: the check above is not vacuous
  // Trained-like weights (normal, max 127 at about 4 sigma) need no correction at all.
  std::normal_distribution<float> normal(0.f, 32.f);
  std::vector<int8_t> trained(64 * 256);
  for (auto& w : trained) w = static_cast<int8_t>(std::max(-127.f, std::min(127.f, std::nearbyint(normal(g)))));
  auto tb = pack_gemm_u8s8(trained.data(), 64, 256, 0, Layout::avx2_n16k8_u7s8);
  PackedView tv(tb.data(), static_cast<int64_t>(tb.size()));
  CHECK(tv.layout() == Layout::avx2_n16k8_u7s8);
  CHECK(tv.nnz() < 64 * 256 / 1000);
}

TEST_CASE("a weight packed for 7-bit activations refuses larger ones on every ISA", "[kernels][gemm]") {
  std::mt19937 g(11);
  const int64_t M = 5, N = 20, K = 40;
  auto W = kt::random_s8(g, N * K, -60, 60);
  auto A = kt::random_u8(g, M * K, 0, 127);
  std::vector<float> scale(N, 1.f), C(M * N);
  Epilogue ep;
  ep.scale = scale.data();
  auto blob = pack_gemm_u8s8(W.data(), N, K, 0, Layout::avx2_n16k8_u7s8);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  for (Isa isa : {Isa::ref, Isa::avx2}) {
    if (!cpu_supports(isa)) continue;
    CHECK_NOTHROW(gemm_u8s8s32(M, A.data(), K, v, C.data(), N, ep, serial(), isa));
    auto bad = A;
    bad[3 * K + 39] = 128;  // one byte, in the last row's tail
    CHECK_THROWS_WITH(gemm_u8s8s32(M, bad.data(), K, v, C.data(), N, ep, serial(), isa),
                      Catch::Contains("exceeds 127"));
  }
  CHECK_THROWS_WITH(pack_gemm_u8s8(W.data(), N, K, 128, Layout::avx2_n16k8_u7s8), Catch::Contains("0..127"));
  ep.out = OutType::u8;
  ep.out_zero_point = 10;
  ep.out_quant_max = 9;  // below the zero point
  std::vector<uint8_t> C8(M * N);
  CHECK_THROWS_WITH(gemm_u8s8s32(M, A.data(), K, v, C8.data(), N, ep, serial(), Isa::ref),
                    Catch::Contains("quant max"));
}

TEST_CASE("the u8 layout falls back to the exact layout, still 1 byte per weight, when corrections would be dense",
          "[kernels][gemm][packing]") {
  std::mt19937 g(9);
  auto uniform = kt::random_s8(g, 32 * 64);              // about half the pairs exceed the budget
  auto small = kt::random_s8(g, 32 * 64, -60, 60);       // never exceeds it
  auto a = pack_gemm_u8s8(uniform.data(), 32, 64, 0, Layout::avx2_n16k4_u8s8);
  auto b = pack_gemm_u8s8(small.data(), 32, 64, 0, Layout::avx2_n16k4_u8s8);
  PackedView va(a.data(), static_cast<int64_t>(a.size()));
  CHECK(va.layout() == Layout::avx2_n16k2_s8);
  CHECK(va.bytes() <= static_cast<int64_t>(b.size()));  // no larger than the u8 layout without corrections
  CHECK(unpack_weight_rowmajor(va) == uniform);
  PackedView vb(b.data(), static_cast<int64_t>(b.size()));
  CHECK(vb.layout() == Layout::avx2_n16k4_u8s8);
  CHECK(vb.nnz() == 0);
  CHECK(unpack_weight_rowmajor(vb) == small);
}

TEST_CASE("gemm_u8s8s32_avx512vnni_8x32 matches the reference", "[kernels][gemm][avx512vnni]") {
  KT_REQUIRE_ISA(Isa::avx512vnni);
  std::vector<uint8_t> blob = pack_gemm_u8s8(std::vector<int8_t>(4, 1).data(), 2, 2, 0, Layout::vnni_n32k4_s8);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  REQUIRE(std::string(gemm_kernel_name(v, Isa::avx512vnni)) == kt::kVnniKernelName);
  run_all_cases(Isa::avx512vnni, Layout::vnni_n32k4_s8);
  check_integer_part(Isa::avx512vnni, Layout::vnni_n32k4_s8);
  // Past the small cases: 64-row blocks read in place (K a multiple of 4)
  // beside a gathered partial last block, blocks gathered because K is not
  // a multiple of 4, exactly whole blocks, many panels.
  std::mt19937 g(22);
  for (const Case& c : {Case{200, 70, 64, 7, OutType::u8, true, true, true, 0},
                        Case{128, 33, 12, 200, OutType::f32, false, true, false, 0},
                        Case{130, 96, 301, 0, OutType::s8, false, false, true, 0},
                        Case{65, 130, 576, 255, OutType::u8, false, true, false, 3},
                        Case{64, 300, 1000, 128, OutType::f32, true, true, true, 1}})
    check_case(c, Isa::avx512vnni, g, Layout::vnni_n32k4_s8, kDefaultMaxCorrection);
}

TEST_CASE("gemm_u8s8s32_amx_32x32 matches the reference", "[kernels][gemm][amx]") {
  KT_REQUIRE_ISA(Isa::amx);
  std::vector<uint8_t> blob = pack_gemm_u8s8(std::vector<int8_t>(4, 1).data(), 2, 2, 0, Layout::vnni_n32k4_s8);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  REQUIRE(std::string(gemm_kernel_name(v, Isa::amx)) == "gemm_u8s8s32_amx_32x32");
  REQUIRE(std::string(gemm_kernel_name(v, Isa::avx512vnni)) == kt::kVnniKernelName);  // the VNNI level still gets VNNI
  run_all_cases(Isa::amx, Layout::vnni_n32k4_s8);
  check_integer_part(Isa::amx, Layout::vnni_n32k4_s8);
  // Shapes past the small cases: several 32-row blocks with a partial last
  // one, 64-k blocks with and without a partial last block, many panels.
  std::mt19937 g(21);
  for (const Case& c : {Case{100, 70, 300, 7, OutType::u8, true, true, true, 0},
                        Case{65, 130, 256, 128, OutType::s8, false, true, false, 0},
                        Case{33, 96, 576, 0, OutType::f32, false, false, true, 0},
                        Case{47, 40, 1000, 255, OutType::u8, false, true, false, 3}})
    check_case(c, Isa::amx, g, Layout::vnni_n32k4_s8, kDefaultMaxCorrection);
}

TEST_CASE("a weight packed for one ISA runs correctly under another (declined to the reference)",
          "[kernels][gemm]") {
  std::mt19937 g(5);
  const int64_t M = 7, N = 19, K = 23;
  auto A = kt::random_u8(g, M * K, 0, 127);  // 7-bit, so the u7 layout takes them too
  auto W = kt::random_s8(g, N * K);
  std::vector<float> scale(N, 1.f), expect(M * N), got(M * N);
  Epilogue ep;
  ep.scale = scale.data();
  kt::naive_gemm(M, N, K, A.data(), 9, W.data(), ep, expect.data());
  for (Layout l : {Layout::avx2_n16k2_s16, Layout::avx2_n16k2_s8, Layout::avx2_n16k4_u8s8, Layout::avx2_n16k8_u7s8,
                   Layout::vnni_n32k4_s8, Layout::rowmajor_s8}) {
    auto blob = pack_gemm_u8s8(W.data(), N, K, 9, l, 1.0);
    PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
    gemm_u8s8s32(M, A.data(), K, v, got.data(), N, ep, serial(), Isa::ref);
    CHECK(std::string(gemm_kernel_name(v, Isa::ref)) == "gemm_u8s8s32_ref");
    CHECK(std::memcmp(got.data(), expect.data(), expect.size() * 4) == 0);
    CHECK(unpack_weight_rowmajor(v) == W);
  }
}

TEST_CASE("packed blobs are validated", "[kernels][packing]") {
  std::vector<int8_t> W(6, 1);
  auto blob = pack_gemm_u8s8(W.data(), 2, 3, 0, Layout::rowmajor_s8);
  REQUIRE_NOTHROW(PackedView(blob.data(), static_cast<int64_t>(blob.size())));
  CHECK_THROWS_AS(PackedView(blob.data(), static_cast<int64_t>(blob.size()) - 1), compress::Error);
  auto bad = blob;
  bad[0] ^= 1;
  CHECK_THROWS_WITH(PackedView(bad.data(), static_cast<int64_t>(bad.size())), Catch::Contains("bad magic"));
  CHECK_THROWS_WITH(pack_gemm_u8s8(W.data(), 2, 3, 256, Layout::rowmajor_s8), Catch::Contains("zero point"));
  CHECK_THROWS_AS(pack_gemm_u8s8(W.data(), 0, 3, 0, Layout::rowmajor_s8), compress::Error);
}

TEST_CASE("the storage form of a dense weight is row-major and packs back to each ISA's layout byte for byte",
          "[kernels][gemm][packing]") {
  std::mt19937 g(31);
  // Sizes off every layout's blocks (n 16 / 32, k 2 / 4); a narrow-range
  // weight keeps the AVX2 u8 layout (few corrections), a full-range one
  // makes it fall back to the exact s8 layout.
  for (const int range : {40, 127}) {
    const int64_t n = 21, kh = 3, kw = 3, c_in = 5, k = kh * kw * c_in;
    const std::vector<int8_t> w = kt::random_s8(g, n * k, -range, range);
    for (const Layout layout : {Layout::vnni_n32k4_s8, Layout::avx2_n16k4_u8s8, Layout::avx2_n16k2_s8,
                                Layout::avx2_n16k2_s16}) {
      INFO("range " << range << ", layout " << static_cast<int>(layout));
      const std::vector<uint8_t> conv = pack_conv_u8s8(w.data(), n, kh, kw, c_in, 17, layout);
      const PackedView packed(conv.data(), static_cast<int64_t>(conv.size()));
      REQUIRE(storable(packed) == (packed.layout() != Layout::rowmajor_s8));
      const std::vector<uint8_t> stored = to_stored(packed);
      const PackedView s(stored.data(), static_cast<int64_t>(stored.size()));
      CHECK(s.layout() == Layout::stored_s8);
      CHECK(s.kind() == PackedKind::conv);
      CHECK((s.n_pad() == n && s.k_pad() == k));
      CHECK((s.kh() == kh && s.kw() == kw && s.c_in() == c_in && s.a_zero_point() == 17));
      CHECK(std::memcmp(s.data(), w.data(), w.size()) == 0);
      CHECK(stored.size() < conv.size());
      CHECK_FALSE(storable(s));
      for (const Isa isa : {Isa::ref, Isa::avx2, Isa::avx512vnni, Isa::amx}) {
        INFO("isa " << isa_name(isa));
        const std::vector<uint8_t> direct = pack_conv_u8s8(w.data(), n, kh, kw, c_in, 17, dense_layout_for(isa));
        CHECK(from_stored(s, isa) == direct);
      }
    }
  }
  // A linear layer's too; and the stored blob itself runs (the reference
  // kernel reads it as it reads rowmajor_s8), bit for bit as its packing.
  const int64_t M = 7, n = 19, k = 37;
  const std::vector<int8_t> w = kt::random_s8(g, n * k);
  const std::vector<uint8_t> A = kt::random_u8(g, M * k);
  const std::vector<uint8_t> gemm = pack_gemm_u8s8(w.data(), n, k, 3, dense_layout_for(best_isa()));
  const PackedView packed(gemm.data(), static_cast<int64_t>(gemm.size()));
  const std::vector<uint8_t> stored = to_stored(packed);
  const PackedView s(stored.data(), static_cast<int64_t>(stored.size()));
  CHECK(s.kind() == PackedKind::gemm);
  CHECK(from_stored(s, best_isa()) == gemm);
  const std::vector<float> scale = kt::random_f(g, n, 0.01f, 0.1f);
  Epilogue ep;
  ep.scale = scale.data();
  ep.out = OutType::f32;
  std::vector<float> from_packed(M * n), from_stored_blob(M * n);
  gemm_u8s8s32(M, A.data(), k, packed, from_packed.data(), n, ep, serial());
  gemm_u8s8s32(M, A.data(), k, s, from_stored_blob.data(), n, ep, serial());
  CHECK(from_packed == from_stored_blob);
  // A depthwise weight: W[c][kh * kw], packed back as depthwise_s8 whatever the ISA.
  const int64_t c = 19;
  const std::vector<int8_t> dw = kt::random_s8(g, c * 9);
  const std::vector<uint8_t> dw_packed = pack_depthwise_u8s8(dw.data(), c, 3, 3, 5);
  const std::vector<uint8_t> dw_stored = to_stored(PackedView(dw_packed.data(), int64_t(dw_packed.size())));
  const PackedView ds(dw_stored.data(), static_cast<int64_t>(dw_stored.size()));
  CHECK((ds.kind() == PackedKind::depthwise && ds.layout() == Layout::stored_s8));
  CHECK((ds.n() == c && ds.k() == 9 && ds.kh() == 3 && ds.kw() == 3 && ds.groups() == c && ds.a_zero_point() == 5));
  CHECK(std::memcmp(ds.data(), dw.data(), dw.size()) == 0);
  CHECK(dw_stored.size() < dw_packed.size());
  for (const Isa isa : {Isa::ref, Isa::avx2, Isa::avx512vnni}) CHECK(from_stored(ds, isa) == dw_packed);
  // A weight packed for 7-bit activations has its own storage form, which
  // packs back to the 7-bit layout on every ISA (it refuses codes above 127
  // wherever it runs, as it did before it was stored).
  // (Trained-like weights: with full-range ones the packer falls back to the exact layout.)
  const std::vector<int8_t> w7 = kt::random_s8(g, n * k, -40, 40);
  const std::vector<uint8_t> u7 = pack_gemm_u8s8(w7.data(), n, k, 3, Layout::avx2_n16k8_u7s8);
  REQUIRE(PackedView(u7.data(), int64_t(u7.size())).layout() == Layout::avx2_n16k8_u7s8);
  const std::vector<uint8_t> u7_stored = to_stored(PackedView(u7.data(), int64_t(u7.size())));
  const PackedView us(u7_stored.data(), static_cast<int64_t>(u7_stored.size()));
  CHECK(us.layout() == Layout::stored_u7_s8);
  CHECK(std::memcmp(us.data(), w7.data(), w7.size()) == 0);
  for (const Isa isa : {Isa::ref, Isa::avx2, Isa::avx512vnni}) CHECK(from_stored(us, isa) == u7);
  std::vector<uint8_t> too_large = A;
  too_large[0] = 128;
  CHECK_THROWS_AS(gemm_u8s8s32(M, too_large.data(), k, us, from_stored_blob.data(), n, ep, serial()), compress::Error);
}

TEST_CASE("only dense and depthwise weights packed for a kernel have a storage form", "[kernels][gemm][packing]") {
  std::mt19937 g(32);
  const int64_t n = 8, k = 16;
  const std::vector<int8_t> w = kt::random_s8(g, n * k, -20, 20);
  const std::vector<uint8_t> mask(n * k, 1);
  for (const std::vector<uint8_t>& blob :
       {pack_gemm_u8s8(w.data(), n, k, 0, Layout::rowmajor_s8), pack_sparse_1x4_u8s8(w.data(), mask.data(), n, k, 0),
        pack_sparse_2_4_u8s8(w.data(), std::vector<uint8_t>(n * k, 0).data(), n, k, 0)}) {
    const PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
    INFO("kind " << static_cast<int>(v.kind()) << ", layout " << static_cast<int>(v.layout()));
    CHECK_FALSE(storable(v));
    CHECK_THROWS_AS(to_stored(v), compress::Error);
    CHECK_THROWS_AS(from_stored(v, Isa::avx2), compress::Error);
  }
}
