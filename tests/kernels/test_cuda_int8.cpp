// CUDA tensor-core kernels against the CPU reference, exact int32. Without a
// GPU (or without nvcc at build time) each case reports SKIPPED, never passed.
#include <catch2/catch.hpp>

#include <string>

#include "compress/error.h"
#include "compress/kernels/cuda.h"
#include "compress/kernels/sparse.h"
#include "kernel_test_util.h"

using namespace compress::kernels;

namespace {

// Why the kernels for `sm` cannot run here, or "" when they can.
std::string gpu_missing(int sm) {
  std::string why;
  if (!cuda::device_available(&why)) return why;
  if (cuda::device_sm() < sm)
    return "device is sm_" + std::to_string(cuda::device_sm()) + ", the kernel needs sm_" + std::to_string(sm);
  return "";
}

// Exact int32 reference: f32 output with unit scale through the CPU reference
// is the accumulator itself (|acc| < 2^24 for these sizes).
std::vector<int32_t> cpu_reference(const std::vector<uint8_t>& A, const PackedView& W, int64_t M) {
  std::vector<float> ones(W.n(), 1.f), out(M * W.n());
  Epilogue ep;
  ep.scale = ones.data();
  if (W.kind() == PackedKind::gemm)
    gemm_u8s8s32(M, A.data(), W.k(), W, out.data(), W.n(), ep, serial(), Isa::ref);
  else
    sparse_gemm_u8s8s32(M, A.data(), W.k(), W, out.data(), W.n(), ep, serial(), Isa::ref);
  return std::vector<int32_t>(out.begin(), out.end());
}

struct Shape {
  int64_t M, N, K;
};
const Shape kShapes[] = {{1, 8, 32}, {16, 8, 32}, {17, 9, 33}, {64, 64, 128}, {70, 40, 100}, {5, 130, 257}, {128, 24, 64}};

template <typename F>
void check_dense(F kernel) {
  std::mt19937 g(21);
  for (const Shape& s : kShapes) {
    auto A = kt::random_u8(g, s.M * s.K);
    auto W = kt::random_s8(g, s.N * s.K);
    if (s.M == 16) std::fill(A.begin(), A.end(), 255), std::fill(W.begin(), W.end(), -128);  // extremes
    auto blob = pack_gemm_u8s8(W.data(), s.N, s.K, 0, Layout::rowmajor_s8);
    PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
    std::vector<int32_t> got(s.M * s.N, 0x7777);
    kernel(A.data(), W.data(), got.data(), s.M, s.N, s.K);
    INFO("M=" << s.M << " N=" << s.N << " K=" << s.K);
    CHECK(got == cpu_reference(A, v, s.M));
  }
}

}  // namespace

TEST_CASE("gemm_u8s8s32_mma_m16n8k32_sm80 matches the CPU reference", "[kernels][cuda]") {
  if (const std::string why = gpu_missing(80); !why.empty()) COMPRESS_SKIP(why);
  check_dense(cuda::gemm_u8s8s32_mma_m16n8k32_sm80);
}

TEST_CASE("gemm_u8s8s32_wgmma_m64n8k32_sm90a matches the CPU reference", "[kernels][cuda]") {
  if (const std::string why = gpu_missing(90); !why.empty()) COMPRESS_SKIP(why);
  check_dense(cuda::gemm_u8s8s32_wgmma_m64n8k32_sm90a);
}

TEST_CASE("spmm_2of4_u8s8s32_mma_sp_m16n8k64_sm80 matches the CPU reference", "[kernels][cuda]") {
  if (const std::string why = gpu_missing(80); !why.empty()) COMPRESS_SKIP(why);
  std::mt19937 g(22);
  for (const Shape& s : kShapes) {
    auto A = kt::random_u8(g, s.M * s.K);
    auto W = kt::random_s8(g, s.N * s.K);
    std::vector<uint8_t> mask(s.N * s.K, 0);
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k0 = 0; k0 < s.K; k0 += 4) {
        const int a = static_cast<int>(g() % 4), b = (a + 1 + static_cast<int>(g() % 3)) % 4;
        for (int q : {a, b})
          if (k0 + q < s.K) mask[n * s.K + k0 + q] = 1;
      }
    // A non-zero activation zero point: the kernel must add the weight's compensation.
    const int32_t zero_point = s.M == 16 ? 255 : static_cast<int32_t>(g() % 256);
    auto blob = pack_sparse_2_4_u8s8(W.data(), mask.data(), s.N, s.K, zero_point);
    PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
    std::vector<int32_t> got(s.M * s.N, 0x7777);
    cuda::spmm_2of4_u8s8s32_mma_sp_m16n8k64_sm80(A.data(), v, got.data(), s.M);
    INFO("M=" << s.M << " N=" << s.N << " K=" << s.K << " zero point " << zero_point);
    CHECK(got == cpu_reference(A, v, s.M));
  }
}

TEST_CASE("CUDA kernels report their absence clearly", "[kernels][cuda]") {
  std::string why;
  if (cuda::device_available(&why)) {
    CHECK(cuda::device_sm() >= 30);
  } else {
    CHECK(!why.empty());
    CHECK_THROWS_AS(cuda::gemm_u8s8s32_mma_m16n8k32_sm80(nullptr, nullptr, nullptr, 1, 1, 1), compress::Error);
  }
}
