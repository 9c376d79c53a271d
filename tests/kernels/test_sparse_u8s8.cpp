// Sparse GEMM (1x4 blocks, 2:4): packing from a dense weight and a mask, and
// every ISA variant against the naive GEMM on the masked dense weight.
#include <catch2/catch.hpp>

#include "compress/error.h"
#include "compress/kernels/sparse.h"
#include "kernel_test_util.h"

using namespace compress::kernels;

namespace {

// A 1x4-block mask keeping about (1 - sparsity) of the blocks, or a 2:4 mask.
std::vector<uint8_t> make_mask(std::mt19937& g, int64_t N, int64_t K, bool two_of_four, double sparsity) {
  std::vector<uint8_t> mask(N * K, 0);
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k0 = 0; k0 < K; k0 += 4) {
      if (two_of_four) {
        const int a = static_cast<int>(g() % 4), b = (a + 1 + static_cast<int>(g() % 3)) % 4;
        for (int q : {a, b})
          if (k0 + q < K && u(g) < 0.95) mask[n * K + k0 + q] = 1;  // sometimes fewer than 2
      } else if (u(g) >= sparsity) {
        for (int64_t k = k0; k < std::min(K, k0 + 4); ++k) mask[n * K + k] = u(g) < 0.9;
      }
    }
  return mask;
}

// One case: M x K activations in 0..a_max against the N x K weight W under
// `mask`, epilogue variant i (output type, ReLU, bias, residual), compared
// byte for byte with the naive GEMM on the masked dense weight.
void check_case(std::mt19937& g, bool two_of_four, Isa isa, int a_max, int64_t M, int64_t N, int64_t K,
                const std::vector<uint8_t>& mask, int i) {
  const OutType outs[] = {OutType::u8, OutType::s8, OutType::f32};
  const bool extreme = i % 9 == 0;
  auto A = extreme ? std::vector<uint8_t>(M * K, static_cast<uint8_t>(a_max)) : kt::random_u8(g, M * K, 0, a_max);
  auto W = extreme ? std::vector<int8_t>(N * K, -128) : kt::random_s8(g, N * K);
  std::vector<int8_t> masked(N * K);
  for (int64_t j = 0; j < N * K; ++j) masked[j] = mask[j] ? W[j] : 0;
  const int32_t a_zp = static_cast<int32_t>(g() % (a_max + 1));
  const float span = static_cast<float>(K) * 128.f * 255.f;
  auto scale = kt::random_f(g, N, 0.5f * 255.f / span, 4.f * 255.f / span);
  auto bias = kt::random_f(g, N, -10.f, 10.f);
  Epilogue ep;
  ep.scale = scale.data();
  ep.bias = (i % 2) ? bias.data() : nullptr;
  ep.out = outs[i % 3];
  ep.relu = i % 4 == 0;
  ep.out_zero_point = ep.out == OutType::u8 ? 77 : 0;
  std::vector<uint8_t> residual;
  if (i % 5 == 2) {
    residual = kt::random_u8(g, M * N * kt::out_bytes(ep.out), 0, ep.out == OutType::f32 ? 60 : 255);
    ep.residual = residual.data();
    ep.ld_residual = N;
    ep.residual_scale = 0.5f;
  }
  std::vector<uint8_t> expect(M * N * kt::out_bytes(ep.out)), got(expect.size(), 0x5A);
  kt::naive_gemm(M, N, K, A.data(), a_zp, masked.data(), ep, expect.data());
  auto blob = two_of_four ? pack_sparse_2_4_u8s8(W.data(), mask.data(), N, K, a_zp)
                          : pack_sparse_1x4_u8s8(W.data(), mask.data(), N, K, a_zp);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  REQUIRE(unpack_weight_rowmajor(v) == masked);
  sparse_gemm_u8s8s32(M, A.data(), K, v, got.data(), N, ep, std_threads(2), isa);
  INFO(sparse_kernel_name(v, isa) << " M=" << M << " N=" << N << " K=" << K << " out=" << static_cast<int>(ep.out));
  CHECK(kt::first_mismatch(got, expect, ep.out) == -1);
}

struct Shapes {
  std::vector<int64_t> Ms, Ns, Ks;
};
const Shapes kSmallShapes{{1, 3, 16, 17, 40}, {1, 7, 33, 64}, {1, 3, 4, 9, 64, 130}};
// Past one row chunk (32) and one work item (64 columns) of the VNNI kernel,
// with ragged 16-column groups.
const Shapes kLargeShapes{{33, 70}, {65, 100}, {12, 261}};

// Activations and their zero point in 0..a_max (127: the 1x4 AVX2 kernel's 7-bit loop).
void check_sparse(bool two_of_four, Isa isa, int a_max = 255, const Shapes& shapes = kSmallShapes) {
  std::mt19937 g(two_of_four ? 24 : 14);
  int i = 0;
  for (int64_t M : shapes.Ms)
    for (int64_t N : shapes.Ns)
      for (int64_t K : shapes.Ks) {
        ++i;
        check_case(g, two_of_four, isa, a_max, M, N, K, make_mask(g, N, K, two_of_four, 0.5 + 0.1 * (i % 5)), i);
      }
}

// 1x4 weights with whole output columns pruned (every third, or all of them).
void check_empty_columns(Isa isa) {
  std::mt19937 g(5);
  for (bool all : {false, true}) {
    const int64_t M = 35, N = 50, K = 40;
    auto mask = make_mask(g, N, K, false, 0.6);
    for (int64_t n = 0; n < N; ++n)
      if (all || n % 3 == 0) std::fill(mask.begin() + n * K, mask.begin() + (n + 1) * K, 0);
    for (int i = 1; i <= 3; ++i) check_case(g, false, isa, 255, M, N, K, mask, i);
  }
}

// The kernel the dispatcher picks for a 1x4 weight under `isa`.
std::string kernel_for_1x4(Isa isa) {
  std::vector<int8_t> w(8, 1);
  std::vector<uint8_t> m(8, 1);
  auto blob = pack_sparse_1x4_u8s8(w.data(), m.data(), 2, 4, 0);
  return sparse_kernel_name(PackedView(blob.data(), static_cast<int64_t>(blob.size())), isa);
}

}  // namespace

TEST_CASE("spmm_u8s8s32_ref 1x4 and 2:4 match the naive GEMM", "[kernels][sparse][ref]") {
  check_sparse(false, Isa::ref);
  check_sparse(true, Isa::ref);
  check_empty_columns(Isa::ref);
}

TEST_CASE("spmm_u8s8s32_1x4_avx2_32 matches the reference", "[kernels][sparse][avx2]") {
  KT_REQUIRE_ISA(Isa::avx2);
  REQUIRE(kernel_for_1x4(Isa::avx2) == "spmm_u8s8s32_1x4_avx2_32");
  check_sparse(false, Isa::avx2);       // s16 pair loop (activations up to 255)
  check_sparse(false, Isa::avx2, 127);  // vpmaddubsw loop, chosen when every activation fits 7 bits
  check_sparse(false, Isa::avx2, 255, kLargeShapes);
  check_empty_columns(Isa::avx2);
}

TEST_CASE("spmm_u8s8s32_1x4_avx512vnni_32 matches the reference", "[kernels][sparse][avx512vnni]") {
  KT_REQUIRE_ISA(Isa::avx512vnni);
  REQUIRE(kernel_for_1x4(Isa::avx512vnni) == kt::kSparseVnniKernelName);
  check_sparse(false, Isa::avx512vnni);
  check_sparse(false, Isa::avx512vnni, 127);
  check_sparse(false, Isa::avx512vnni, 255, kLargeShapes);
  check_empty_columns(Isa::avx512vnni);
}

TEST_CASE("spmm_u8s8s32_1x4_avx512vnni_32 is the sparse kernel under amx too", "[kernels][sparse][amx]") {
  KT_REQUIRE_ISA(Isa::amx);
  CHECK(kernel_for_1x4(Isa::amx) == kt::kSparseVnniKernelName);
  CHECK(kernel_for_1x4(Isa::avx2) == "spmm_u8s8s32_1x4_avx2_32");  // COMPRESS_ISA=avx2 keeps AVX2
}

TEST_CASE("spmm_u8s8s32_2of4_avx2_32 matches the reference", "[kernels][sparse][avx2]") {
  KT_REQUIRE_ISA(Isa::avx2);
  check_sparse(true, Isa::avx2);
}

TEST_CASE("2:4 packing refuses a mask with 3 kept weights in a group", "[kernels][sparse]") {
  std::vector<int8_t> w(8, 3);
  std::vector<uint8_t> mask = {1, 1, 0, 0, 1, 1, 1, 0};
  CHECK_THROWS_WITH(pack_sparse_2_4_u8s8(w.data(), mask.data(), 1, 8, 0), Catch::Contains("more than 2"));
}

TEST_CASE("1x4 packing stores only the kept blocks", "[kernels][sparse]") {
  std::vector<int8_t> w(2 * 12, 5);
  std::vector<uint8_t> mask(2 * 12, 0);
  mask[1] = 1;        // row 0, block 0
  mask[12 + 9] = 1;   // row 1, block 2
  mask[12 + 11] = 1;  // row 1, block 2
  auto blob = pack_sparse_1x4_u8s8(w.data(), mask.data(), 2, 12, 0);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  CHECK(v.nnz() == 2);
}
