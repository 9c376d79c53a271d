// Our CUDA INT8 GEMMs against cuBLASLt INT8, side by side in one process:
//   compress_bench_cuda_int8 [MxNxK ...]   (default: 4096x4096x4096 1024x4096x4096 12544x64x576)
// C[M][N] = A[M][K] * W[N][K]^T with s32 results. Activations are drawn in
// 0..127, so the same bytes are valid u8 (ours) and s8 (cuBLASLt's INT8 path
// takes s8 x s8) and every result is checked equal to cuBLASLt's. The 2:4
// kernel runs on the weight with 2 of every 4 k kept, against cuBLASLt on the
// same (dense-stored) weight; its TOPS count the dense 2*M*N*K operations.
// Each time is the median of CUDA-event timings of repeated launches after
// warm-up, data already on the device. Exit 1 with one line without a GPU,
// 2 on a malformed shape.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "compress/kernels/cuda.h"
#include "compress/kernels/cuda_layout.h"
#include "compress/kernels/packed.h"

namespace cuda = compress::kernels::cuda;

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "compress_bench_cuda_int8: %s\n", why.c_str());
  std::exit(1);
}
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) die(std::string(what) + ": " + cudaGetErrorString(e));
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) die(std::string(what) + ": cuBLASLt status " + std::to_string(static_cast<int>(s)));
}

template <typename T>
struct DeviceArray {
  T* p = nullptr;
  size_t n = 0;
  explicit DeviceArray(size_t count) : n(count) { check(cudaMalloc(&p, sizeof(T) * std::max<size_t>(n, 1)), "cudaMalloc"); }
  DeviceArray(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(p); }
  void upload(const std::vector<T>& h) { check(cudaMemcpy(p, h.data(), sizeof(T) * n, cudaMemcpyHostToDevice), "upload"); }
  std::vector<T> download() const {
    std::vector<T> h(n);
    check(cudaMemcpy(h.data(), p, sizeof(T) * n, cudaMemcpyDeviceToHost), "download");
    return h;
  }
};

// Median milliseconds of `run`, after warm-up, over enough launches for
// about 200 ms (3 to 50).
double time_ms(const std::function<void()>& run) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  run();
  run();
  check(cudaDeviceSynchronize(), "warm-up");
  std::vector<float> times;
  float total = 0;
  while (times.size() < 3 || (times.size() < 50 && total < 200.f)) {
    check(cudaEventRecord(start), "record");
    run();
    check(cudaEventRecord(stop), "record");
    check(cudaEventSynchronize(stop), "run");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    times.push_back(ms);
    total += ms;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// cuBLASLt INT8: s8 x s8 -> s32, COMPUTE_32I. Column-major view of our
// row-major C[M][N] = A W^T: C^T (N x M) = op_T(W^T stored K x N) * (A^T stored K x M), the "TN" form.
struct CublasLtGemm {
  cublasLtHandle_t handle{};
  cublasLtMatmulDesc_t op{};
  cublasLtMatrixLayout_t lw{}, la{}, lc{};
  cublasLtMatmulHeuristicResult_t heuristic{};
  DeviceArray<uint8_t> workspace{64 << 20};

  CublasLtGemm(int64_t M, int64_t N, int64_t K) {
    check(cublasLtCreate(&handle), "cublasLtCreate");
    check(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32I, CUDA_R_32I), "cublasLtMatmulDescCreate");
    const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
    check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t), "TRANSA");
    check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n), "TRANSB");
    check(cublasLtMatrixLayoutCreate(&lw, CUDA_R_8I, K, N, K), "layout W");
    check(cublasLtMatrixLayoutCreate(&la, CUDA_R_8I, K, M, K), "layout A");
    check(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32I, N, M, N), "layout C");
    cublasLtMatmulPreference_t pref;
    check(cublasLtMatmulPreferenceCreate(&pref), "preference");
    const size_t bytes = workspace.n;
    check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes, sizeof bytes),
          "workspace preference");
    int found = 0;
    check(cublasLtMatmulAlgoGetHeuristic(handle, op, lw, la, lc, lc, pref, 1, &heuristic, &found), "heuristic");
    if (found == 0) die("cuBLASLt has no INT8 algorithm for this shape");
    cublasLtMatmulPreferenceDestroy(pref);
  }
  ~CublasLtGemm() {
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lw);
    cublasLtMatmulDescDestroy(op);
    cublasLtDestroy(handle);
  }
  void run(const int8_t* W, const int8_t* A, int32_t* C) {
    const int32_t alpha = 1, beta = 0;
    check(cublasLtMatmul(handle, op, &alpha, W, lw, A, la, &beta, C, lc, C, lc, &heuristic.algo, workspace.p,
                         workspace.n, nullptr),
          "cublasLtMatmul");
  }
};

struct Shape {
  int64_t M, N, K;
};

// "MxNxK" with positive sizes, nothing after; otherwise one line and exit 2.
Shape parse_shape(const std::string& s) {
  Shape sh{};
  int used = 0;
  if (std::sscanf(s.c_str(), "%ldx%ldx%ld%n", &sh.M, &sh.N, &sh.K, &used) != 3 ||
      used != static_cast<int>(s.size()) || sh.M <= 0 || sh.N <= 0 || sh.K <= 0) {
    std::fprintf(stderr, "compress_bench_cuda_int8: shape '%s' is not MxNxK with positive sizes\n", s.c_str());
    std::exit(2);
  }
  return sh;
}

void row(const Shape& s, const char* kernel, double ms, double ref_ms, const char* exact) {
  const double tops = 2.0 * s.M * s.N * s.K / (ms * 1e-3) / 1e12;
  std::printf("| %ldx%ldx%ld | %-26s | %9.3f | %7.1f | %6.2f | %s |\n", s.M, s.N, s.K, kernel, ms, tops, ref_ms / ms,
              exact);
  std::fflush(stdout);
}

void bench(const Shape& s, int sm) {
  const int64_t M = s.M, N = s.N, K = s.K;
  std::mt19937 gen(7);
  std::vector<int8_t> A(M * K), W(N * K), W24(N * K);
  std::vector<uint8_t> mask(N * K, 0);
  for (auto& a : A) a = static_cast<int8_t>(gen() % 128);  // valid as u8 and as s8
  for (auto& w : W) w = static_cast<int8_t>(static_cast<int>(gen() % 256) - 128);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k0 = 0; k0 < K; k0 += 4) {
      const int first = static_cast<int>(gen() % 4), second = (first + 1 + static_cast<int>(gen() % 3)) % 4;
      for (int q : {first, second})
        if (k0 + q < K) mask[n * K + k0 + q] = 1;
    }
  for (int64_t i = 0; i < N * K; ++i) W24[i] = mask[i] ? W[i] : 0;

  DeviceArray<int8_t> dA(M * K), dW(N * K), dW24(N * K);
  DeviceArray<int32_t> dRef(M * N), dC(M * N);
  dA.upload(A);
  dW.upload(W);
  dW24.upload(W24);
  const auto* dA_u8 = reinterpret_cast<const uint8_t*>(dA.p);

  CublasLtGemm lt(M, N, K);
  const double ref_ms = time_ms([&] { lt.run(dW.p, dA.p, dRef.p); });
  const std::vector<int32_t> ref = dRef.download();
  row(s, "cuBLASLt INT8 (s8 x s8)", ref_ms, ref_ms, "reference");

  auto ours = [&](const char* name, const std::vector<int32_t>& want, double base_ms, const std::function<void()>& run) {
    check(cudaMemset(dC.p, 0, sizeof(int32_t) * M * N), "memset");
    const double ms = time_ms(run);
    row(s, name, ms, base_ms, dC.download() == want ? "exact" : "MISMATCH");
  };
  ours("ours mma.sync m16n8k32", ref, ref_ms, [&] { cuda::launch_gemm_mma_m16n8k32(dA_u8, dW.p, dC.p, M, N, K); });
  if (sm >= 90)
    ours("ours wgmma m64n8k32", ref, ref_ms, [&] { cuda::launch_gemm_wgmma_m64n8k32(dA_u8, dW.p, dC.p, M, N, K); });

  // 2:4: cuBLASLt on the masked weight (stored dense) is the reference and the baseline.
  const double ref24_ms = time_ms([&] { lt.run(dW24.p, dA.p, dRef.p); });
  const std::vector<int32_t> ref24 = dRef.download();
  row(s, "cuBLASLt INT8, 2:4 weight", ref24_ms, ref24_ms, "reference");
  const auto blob = compress::kernels::pack_sparse_2_4_u8s8(W.data(), mask.data(), N, K, 0);
  const compress::kernels::PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  const int64_t k64 = cuda::layout::mma_sp_k64(v.k_pad());
  std::vector<int8_t> values(N * (k64 / 2));
  std::vector<uint8_t> idx(N * (k64 / 4));
  cuda::layout::pad_2of4_for_mma_sp(reinterpret_cast<const int8_t*>(v.data()), v.idx(), N, v.k_pad(), values.data(),
                                    idx.data());
  DeviceArray<int8_t> dValues(values.size());
  DeviceArray<uint8_t> dIdx(idx.size());
  dValues.upload(values);
  dIdx.upload(idx);
  ours("ours mma.sp m16n8k64 (2:4)", ref24, ref24_ms,
       [&] { cuda::launch_spmm_mma_sp_m16n8k64(dA_u8, dValues.p, dIdx.p, nullptr, dC.p, M, N, K, k64); });
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<Shape> shapes;
  for (int i = 1; i < argc; ++i) shapes.push_back(parse_shape(argv[i]));
  if (shapes.empty()) shapes = {{4096, 4096, 4096}, {1024, 4096, 4096}, {12544, 64, 576}};
  std::string why;
  if (!cuda::device_available(&why)) die(why);
  const int sm = cuda::device_sm();
  if (sm < 80) die("device is sm_" + std::to_string(sm) + ", the kernels need sm_80 or newer");
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("device: %s, sm_%d, %d SMs; driver %d, runtime %d, cuBLASLt %zu\n\n", p.name, sm,
              p.multiProcessorCount, driver, runtime, cublasLtGetVersion());
  std::printf("| M x N x K | kernel | ms (median) | TOPS | speed vs cuBLASLt | result |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | --- |\n");
  for (const Shape& s : shapes) bench(s, sm);
  return 0;
}
