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

namespace compress::kernels::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) failure(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

// Four consecutive bytes of a row, zero beyond `limit` (packs K tails).
template <typename T>
__device__ uint32_t load4(const T* row, int64_t k, int64_t limit) {
  uint32_t v = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i)
    if (k + i < limit) v |= static_cast<uint32_t>(static_cast<uint8_t>(row[k + i])) << (8 * i);
  return v;
}

// One warp computes C[m0:m0+16][n0:n0+8].
__global__ void gemm_mma_m16n8k32(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * 16, n0 = static_cast<int64_t>(blockIdx.y) * 8;
  const int64_t ra = m0 + g, rb = m0 + g + 8, cn = n0 + g;
  int32_t d[4] = {0, 0, 0, 0};
  for (int64_t k0 = 0; k0 < K; k0 += 32) {
    // A fragment (row-major 16x32): a0 row g, a1 row g+8 at k t*4..; a2, a3 the same at k 16 + t*4.
    const uint32_t a0 = ra < M ? load4(A + ra * K, k0 + t * 4, K) : 0;
    const uint32_t a1 = rb < M ? load4(A + rb * K, k0 + t * 4, K) : 0;
    const uint32_t a2 = ra < M ? load4(A + ra * K, k0 + 16 + t * 4, K) : 0;
    const uint32_t a3 = rb < M ? load4(A + rb * K, k0 + 16 + t * 4, K) : 0;
    // B fragment (column-major 32x8 = W[n][k] rows): column g, k t*4.. and 16 + t*4..
    const uint32_t b0 = cn < N ? load4(W + cn * K, k0 + t * 4, K) : 0;
    const uint32_t b1 = cn < N ? load4(W + cn * K, k0 + 16 + t * 4, K) : 0;
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  // D fragment: d0, d1 row g, columns t*2, t*2+1; d2, d3 row g+8.
  const int64_t c0 = n0 + t * 2;
  for (int i = 0; i < 4; ++i) {
    const int64_t r = (i < 2) ? ra : rb, c = c0 + (i & 1);
    if (r < M && c < N) C[r * N + c] = d[i];
  }
#else
  __trap();  // built for an architecture without mma.sync int8: never run silently
#endif
}

// One warpgroup (128 threads) computes C[m0:m0+64][n0:n0+8] with wgmma from
// shared memory, no swizzle. Core matrices are 8 rows x 16 bytes, K-major:
//   A tile 64x32: core (mi, ki) at ((mi * 2) + ki) * 128  -> leading (K) offset 128, stride (M) 256
//   B tile  8x32: core (0,  ki) at ki * 128               -> leading (K) offset 128
__global__ void gemm_wgmma_m64n8k32(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  __shared__ alignas(128) uint8_t sa[64 * 32];
  __shared__ alignas(128) int8_t sb[8 * 32];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * 64, n0 = static_cast<int64_t>(blockIdx.y) * 8;
  auto desc = [](const void* p, uint32_t lead, uint32_t stride) -> uint64_t {
    const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(p));
    return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(lead >> 4) << 16) |
           (static_cast<uint64_t>(stride >> 4) << 32);  // bits 62-63 = 0: no swizzle
  };
  uint32_t d0 = 0, d1 = 0, d2 = 0, d3 = 0;
  for (int64_t k0 = 0; k0 < K; k0 += 32) {
    for (int i = tid; i < 64 * 32; i += 128) {
      const int m = i / 32, k = i % 32;
      const uint8_t v = (m0 + m < M && k0 + k < K) ? A[(m0 + m) * K + k0 + k] : 0;
      sa[((m / 8) * 2 + k / 16) * 128 + (m % 8) * 16 + k % 16] = v;
    }
    for (int i = tid; i < 8 * 32; i += 128) {
      const int n = i / 32, k = i % 32;
      const int8_t v = (n0 + n < N && k0 + k < K) ? W[(n0 + n) * K + k0 + k] : 0;
      sb[(k / 16) * 128 + n * 16 + k % 16] = v;
    }
    // Generic-proxy stores must be visible to the async proxy wgmma reads through.
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    const uint64_t da = desc(sa, 128, 256), db = desc(sb, 128, 256);
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n8k32.s32.u8.s8 {%0,%1,%2,%3}, %4, %5, p;\n}\n"
        : "+r"(d0), "+r"(d1), "+r"(d2), "+r"(d3)
        : "l"(da), "l"(db), "r"(static_cast<int>(k0 > 0)));
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    __syncthreads();
  }
  // Accumulator layout: warp w owns rows 16w..16w+15, like an m16n8 D fragment.
  const int64_t r0 = m0 + warp * 16 + g, r1 = r0 + 8, c = n0 + t * 2;
  const uint32_t d[4] = {d0, d1, d2, d3};
  for (int i = 0; i < 4; ++i) {
    const int64_t r = i < 2 ? r0 : r1, cc = c + (i & 1);
    if (r < M && cc < N) C[r * N + cc] = static_cast<int32_t>(d[i]);
  }
#else
  __trap();  // wgmma exists only on sm_90a
#endif
}

// 2:4 sparse: the sparse operand of mma.sp is A, so the kernel computes
// C^T = W * A^T: W (2:4 along k) is the 16-row sparse operand, the
// activations are the dense 64x8 operand, and D is written back transposed.
// values: s8 [N][k_pad/2] (2 kept per group of 4), idx: u8 [N][k_pad/4] (i0 | i1 << 2).
__global__ void spmm_mma_sp_m16n8k64(const uint8_t* A, const int8_t* values, const uint8_t* idx, int32_t* C,
                                     int64_t M, int64_t N, int64_t K, int64_t k_pad) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * 16, m0 = static_cast<int64_t>(blockIdx.y) * 8;
  const int64_t groups = k_pad / 4, half = k_pad / 2;
  const int64_t wa = n0 + g, wb = n0 + g + 8, col = m0 + g;
  int32_t d[4] = {0, 0, 0, 0};
  for (int64_t k0 = 0; k0 < k_pad; k0 += 64) {
    const int64_t h0 = k0 / 2;  // compressed column of k0
    // Compressed A (16x32) fragment, same positions as a dense m16n8k32 A.
    const uint32_t a0 = wa < N ? load4(values + wa * half, h0 + t * 4, half) : 0;
    const uint32_t a1 = wb < N ? load4(values + wb * half, h0 + t * 4, half) : 0;
    const uint32_t a2 = wa < N ? load4(values + wa * half, h0 + 16 + t * 4, half) : 0;
    const uint32_t a3 = wb < N ? load4(values + wb * half, h0 + 16 + t * 4, half) : 0;
    // Dense B (64x8, column m of A^T = row m of A): k = t*4 + 16*r .. +3 for register r.
    uint32_t b[4];
    for (int r = 0; r < 4; ++r) b[r] = col < M ? load4(A + col * K, k0 + 16 * r + t * 4, K) : 0;
    // Metadata: 4 bits per group (two 2-bit indices). Thread (g, t) holds row
    // g (t = 0, 1) or g + 8 (t = 2, 3), groups 8 * (t & 1) .. + 7 of this k-step.
    const int64_t mrow = n0 + g + 8 * (t >> 1);
    uint32_t e = 0;
    for (int j = 0; j < 8; ++j) {
      const int64_t grp = k0 / 4 + 8 * (t & 1) + j;
      const uint32_t code = (mrow < N && grp < groups) ? idx[mrow * groups + grp] : 0x4u;  // (0, 1) for padding
      e |= (code & 0xF) << (4 * j);
    }
    asm volatile(
        "mma.sp.sync.aligned.m16n8k64.row.col.s32.s8.u8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, "
        "{%0,%1,%2,%3}, %12, 0x0;\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
  }
  // D (16 weight rows x 8 activation rows): d0, d1 row g, d2, d3 row g+8; columns t*2, t*2+1.
  for (int i = 0; i < 4; ++i) {
    const int64_t n = (i < 2) ? wa : wb, m = m0 + t * 2 + (i & 1);
    if (n < N && m < M) C[m * N + n] = d[i];
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

void gemm_u8s8s32_mma_m16n8k32_sm80(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N, int64_t K) {
  require_sm(80, "gemm_u8s8s32_mma_m16n8k32_sm80");
  DeviceBuffer<uint8_t> a(M * K);
  DeviceBuffer<int8_t> w(N * K);
  DeviceBuffer<int32_t> c(M * N);
  a.upload(A, M * K);
  w.upload(W, N * K);
  gemm_mma_m16n8k32<<<dim3((M + 15) / 16, (N + 7) / 8), 32>>>(a.p, w.p, c.p, M, N, K);
  check(cudaGetLastError(), "launch gemm_mma_m16n8k32");
  check(cudaDeviceSynchronize(), "gemm_mma_m16n8k32");
  c.download(C, M * N);
}

void gemm_u8s8s32_wgmma_m64n8k32_sm90a(const uint8_t* A, const int8_t* W, int32_t* C, int64_t M, int64_t N,
                                      int64_t K) {
  require_sm(90, "gemm_u8s8s32_wgmma_m64n8k32_sm90a");
  DeviceBuffer<uint8_t> a(M * K);
  DeviceBuffer<int8_t> w(N * K);
  DeviceBuffer<int32_t> c(M * N);
  a.upload(A, M * K);
  w.upload(W, N * K);
  gemm_wgmma_m64n8k32<<<dim3((M + 63) / 64, (N + 7) / 8), 128>>>(a.p, w.p, c.p, M, N, K);
  check(cudaGetLastError(), "launch gemm_wgmma_m64n8k32");
  check(cudaDeviceSynchronize(), "gemm_wgmma_m64n8k32");
  c.download(C, M * N);
}

void spmm_2of4_u8s8s32_mma_sp_m16n8k64_sm80(const uint8_t* A, const PackedView& W, int32_t* C, int64_t M) {
  if (W.kind() != PackedKind::sparse_2_4) bad_input("spmm_2of4 (CUDA): the weight is not packed as 2:4");
  require_sm(80, "spmm_2of4_u8s8s32_mma_sp_m16n8k64_sm80");
  const int64_t N = W.n(), K = W.k(), k_pad = W.k_pad();
  // The device loop steps k by 64; pad the compressed arrays to a multiple of 64 along k.
  const int64_t k64 = (k_pad + 63) / 64 * 64;
  std::vector<int8_t> vals(N * (k64 / 2), 0);
  std::vector<uint8_t> idx(N * (k64 / 4), 0x4);
  const auto* v = reinterpret_cast<const int8_t*>(W.data());
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t j = 0; j < k_pad / 2; ++j) vals[n * (k64 / 2) + j] = v[n * (k_pad / 2) + j];
    for (int64_t j = 0; j < k_pad / 4; ++j) idx[n * (k64 / 4) + j] = W.idx()[n * (k_pad / 4) + j];
  }
  DeviceBuffer<uint8_t> a(M * K), di(idx.size());
  DeviceBuffer<int8_t> dv(vals.size());
  DeviceBuffer<int32_t> c(M * N);
  a.upload(A, M * K);
  dv.upload(vals.data(), vals.size());
  di.upload(idx.data(), idx.size());
  spmm_mma_sp_m16n8k64<<<dim3((N + 15) / 16, (M + 7) / 8), 32>>>(a.p, dv.p, di.p, c.p, M, N, K, k64);
  check(cudaGetLastError(), "launch spmm_mma_sp_m16n8k64");
  check(cudaDeviceSynchronize(), "spmm_mma_sp_m16n8k64");
  c.download(C, M * N);
}

}  // namespace compress::kernels::cuda
