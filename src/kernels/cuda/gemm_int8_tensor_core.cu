// INT8 tensor-core kernels: mma.sync m16n8k32 (sm_80+), wgmma m64n8k32
// (sm_90a) and 2:4-sparse mma.sp m16n8k64 (sm_80+). Deliberately simple
// tilings (one warp / warpgroup per output tile, operands straight from
// global memory or one shared-memory stage): they establish exact results
// against the CPU reference; the tiling is where speed would come next.
// Fragment layouts follow the PTX ISA "Matrix fragments" sections.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "compress/error.h"
#include "compress/kernels/cuda.h"
#include "compress/kernels/cuda_layout.h"

namespace compress::kernels::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) failure(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

using namespace layout;

// One warp computes C[m0:m0+16][n0:n0+8]. Each fragment register is 4
// consecutive k of one row (cuda_layout.h gives which), so it is one load4.
__global__ void gemm_mma_m16n8k32(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int lane = threadIdx.x & 31;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * 16, n0 = static_cast<int64_t>(blockIdx.y) * 8;
  int32_t d[4] = {0, 0, 0, 0};
  for (int64_t k0 = 0; k0 < K; k0 += 32) {
    uint32_t a[4], b[2];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const Element e = mma_m16n8k32_a(lane, r, 0);
      a[r] = m0 + e.row < M ? load4(A + (m0 + e.row) * K, k0 + e.col, K) : 0;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {  // B = W^T: column n of B is row n of W
      const Element e = mma_m16n8k32_b(lane, r, 0);
      b[r] = n0 + e.col < N ? load4(W + (n0 + e.col) * K, k0 + e.row, K) : 0;
    }
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const Element e = mma_m16n8_c(lane, i);
    if (m0 + e.row < M && n0 + e.col < N) C[(m0 + e.row) * N + n0 + e.col] = d[i];
  }
#else
  __trap();  // built for an architecture without mma.sync int8: never run silently
#endif
}

// One warpgroup (128 threads) computes C[m0:m0+64][n0:n0+8] with wgmma from
// shared memory, no swizzle, K-major core matrices (wgmma_kmajor_offset).
__global__ void gemm_wgmma_m64n8k32(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  __shared__ alignas(128) uint8_t sa[64 * 32];
  __shared__ alignas(128) int8_t sb[8 * 32];
  const int tid = threadIdx.x;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * 64, n0 = static_cast<int64_t>(blockIdx.y) * 8;
  uint32_t d[4] = {0, 0, 0, 0};
  for (int64_t k0 = 0; k0 < K; k0 += 32) {
    for (int i = tid; i < 64 * 32; i += 128) {
      const int m = i / 32, k = i % 32;
      sa[wgmma_kmajor_offset(m, k, kWgmmaLeadBytes, kWgmmaStrideBytes)] =
          (m0 + m < M && k0 + k < K) ? A[(m0 + m) * K + k0 + k] : 0;
    }
    for (int i = tid; i < 8 * 32; i += 128) {
      const int n = i / 32, k = i % 32;
      sb[wgmma_kmajor_offset(n, k, kWgmmaLeadBytes, kWgmmaStrideBytes)] =
          (n0 + n < N && k0 + k < K) ? W[(n0 + n) * K + k0 + k] : 0;
    }
    // Generic-proxy stores must be visible to the async proxy wgmma reads through.
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    const uint64_t da = wgmma_descriptor(static_cast<uint32_t>(__cvta_generic_to_shared(sa)), kWgmmaLeadBytes,
                                         kWgmmaStrideBytes);
    const uint64_t db = wgmma_descriptor(static_cast<uint32_t>(__cvta_generic_to_shared(sb)), kWgmmaLeadBytes,
                                         kWgmmaStrideBytes);
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n8k32.s32.u8.s8 {%0,%1,%2,%3}, %4, %5, p;\n}\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "l"(da), "l"(db), "r"(static_cast<int>(k0 > 0)));
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const Element e = wgmma_m64_d(tid, i);
    if (m0 + e.row < M && n0 + e.col < N) C[(m0 + e.row) * N + n0 + e.col] = static_cast<int32_t>(d[i]);
  }
#else
  __trap();  // wgmma exists only on sm_90a
#endif
}

// 2:4 sparse: the sparse operand of mma.sp is A, so the kernel computes
// C^T = W * A^T: W (2:4 along k) is the 16-row sparse operand, the
// activations are the dense 64x8 operand, and D is written back transposed,
// plus the zero-point compensation comp[n] (nullptr: none).
// values: s8 [N][k64/2] (2 kept per group of 4), idx: u8 [N][k64/4] (i0 | i1 << 2).
__global__ void spmm_mma_sp_m16n8k64(const uint8_t* A, const int8_t* values, const uint8_t* idx, const int32_t* comp,
                                     int32_t* C, int64_t M, int64_t N, int64_t K, int64_t k64) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int lane = threadIdx.x & 31;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * 16, m0 = static_cast<int64_t>(blockIdx.y) * 8;
  const int64_t groups = k64 / 4, half = k64 / 2;
  int32_t d[4] = {0, 0, 0, 0};
  for (int64_t k0 = 0; k0 < k64; k0 += 64) {
    uint32_t a[4], b[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {  // compressed W rows: half the columns of the k-step
      const Element e = mma_sp_m16n8k64_a_compressed(lane, r, 0);
      a[r] = n0 + e.row < N ? load4(values + (n0 + e.row) * half, k0 / 2 + e.col, half) : 0;
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {  // B = A^T: column m of B is row m of A
      const Element e = mma_sp_m16n8k64_b(lane, r, 0);
      b[r] = m0 + e.col < M ? load4(A + (m0 + e.col) * K, k0 + e.row, K) : 0;
    }
    const uint32_t meta = mma_sp_m16n8k64_metadata_word(idx, N, groups, n0, k0 / 4, lane);
    asm volatile(
        "mma.sp::ordered_metadata.sync.aligned.m16n8k64.row.col.s32.s8.u8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, "
        "{%0,%1,%2,%3}, %12, 0x0;\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(meta));
  }
  // D (16 weight rows x 8 activation rows), stored transposed into C[m][n].
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const Element e = mma_m16n8_c(lane, i);
    const int64_t n = n0 + e.row, m = m0 + e.col;
    if (n < N && m < M) C[m * N + n] = compensate(d[i], comp, n);
  }
#else
  __trap();
#endif
}

template <typename T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(size_t n) { check(cudaMalloc(&p, sizeof(T) * (n ? n : 1)), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(p); }
  void upload(const T* h, size_t n) { check(cudaMemcpy(p, h, sizeof(T) * n, cudaMemcpyHostToDevice), "copy to device"); }
  void download(T* h, size_t n) { check(cudaMemcpy(h, p, sizeof(T) * n, cudaMemcpyDeviceToHost), "copy to host"); }
};

void require_sm(int needed, const char* kernel) {
  std::string why;
  if (!device_available(&why)) failure(std::string(kernel) + ": " + why);
  if (device_sm() < needed)
    bad_input(std::string(kernel) + " needs sm_" + std::to_string(needed) + ", device is sm_" + std::to_string(device_sm()));
}

}  // namespace

bool built() { return true; }

bool device_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    if (why) *why = e != cudaSuccess ? std::string("no usable CUDA device (") + cudaGetErrorString(e) + ")" : "no CUDA device";
    return false;
  }
  return true;
}

int device_sm() {
  cudaDeviceProp p{};
  if (!device_available() || cudaGetDeviceProperties(&p, 0) != cudaSuccess) return 0;
  return p.major * 10 + p.minor;
}

void launch_gemm_mma_m16n8k32(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K) {
  gemm_mma_m16n8k32<<<dim3((M + 15) / 16, (N + 7) / 8), 32>>>(A, W, C, M, N, K);
  check(cudaGetLastError(), "launch gemm_mma_m16n8k32");
}

void launch_gemm_wgmma_m64n8k32(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K) {
  gemm_wgmma_m64n8k32<<<dim3((M + 63) / 64, (N + 7) / 8), 128>>>(A, W, C, M, N, K);
  check(cudaGetLastError(), "launch gemm_wgmma_m64n8k32");
}

void launch_spmm_mma_sp_m16n8k64(const uint8_t* A, const int8_t* values64, const uint8_t* idx64, const int32_t* comp,
                                 int32_t* C, int64_t M, int64_t N, int64_t K, int64_t k64) {
  spmm_mma_sp_m16n8k64<<<dim3((N + 15) / 16, (M + 7) / 8), 32>>>(A, values64, idx64, comp, C, M, N, K, k64);
  check(cudaGetLastError(), "launch spmm_mma_sp_m16n8k64");
}

namespace {

// Copies A and W to the device, runs `launch`, copies C back.
template <typename Launch>
void run_dense(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K, Launch launch) {
  DeviceBuffer<uint8_t> a(M * K);
  DeviceBuffer<int8_t> w(N * K);
  DeviceBuffer<int32_t> c(M * N);
  a.upload(A, M * K);
  w.upload(W, N * K);
  launch(a.p, w.p, c.p, M, N, K);
  check(cudaDeviceSynchronize(), "kernel");
  c.download(C, M * N);
}

}  // namespace

void gemm_u8s8s32_mma_m16n8k32_sm80(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K) {
  require_sm(80, "gemm_u8s8s32_mma_m16n8k32_sm80");
  run_dense(A, W, C, M, N, K, launch_gemm_mma_m16n8k32);
}

void gemm_u8s8s32_wgmma_m64n8k32_sm90a(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N,
                                      int64_t K) {
  require_sm(90, "gemm_u8s8s32_wgmma_m64n8k32_sm90a");
  run_dense(A, W, C, M, N, K, launch_gemm_wgmma_m64n8k32);
}

void spmm_2of4_u8s8s32_mma_sp_m16n8k64_sm80(const uint8_t* A, const PackedView& W, int32_t* C, int64_t M) {
  if (W.kind() != PackedKind::sparse_2_4) bad_input("spmm_2of4 (CUDA): the weight is not packed as 2:4");
  require_sm(80, "spmm_2of4_u8s8s32_mma_sp_m16n8k64_sm80");
  const int64_t N = W.n(), K = W.k(), k64 = layout::mma_sp_k64(W.k_pad());
  std::vector<int8_t> vals(N * (k64 / 2));
  std::vector<uint8_t> idx(N * (k64 / 4));
  layout::pad_2of4_for_mma_sp(reinterpret_cast<const int8_t*>(W.data()), W.idx(), N, W.k_pad(), vals.data(), idx.data());
  DeviceBuffer<uint8_t> a(M * K), di(idx.size());
  DeviceBuffer<int8_t> dv(vals.size());
  DeviceBuffer<int32_t> comp(N), c(M * N);
  a.upload(A, M * K);
  dv.upload(vals.data(), vals.size());
  di.upload(idx.data(), idx.size());
  comp.upload(W.comp(), N);  // the activation zero point, folded at pack time
  launch_spmm_mma_sp_m16n8k64(a.p, dv.p, di.p, comp.p, c.p, M, N, K, k64);
  check(cudaDeviceSynchronize(), "spmm_mma_sp_m16n8k64");
  c.download(C, M * N);
}

}  // namespace compress::kernels::cuda
