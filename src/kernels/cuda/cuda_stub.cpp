// Built instead of the CUDA kernels when nvcc is absent: reports their absence.
#include "compress/error.h"
#include "compress/kernels/cuda.h"

namespace compress::kernels::cuda {
namespace {
constexpr const char* kNotBuilt = "CUDA kernels were not built (no nvcc at configure time)";
}

bool built() { return false; }
bool device_available(std::string* why) {
  if (why) *why = "the CUDA kernels were not built (no nvcc at configure time)";
  return false;
}
int device_sm() { return 0; }
void gemm_u8s8s32_mma_m16n8k32_sm80(const uint8_t*, const int8_t*, int32_t*, int64_t, int64_t, int64_t) {
  failure(kNotBuilt);
}
void gemm_u8s8s32_wgmma_m64n8k32_sm90a(const uint8_t*, const int8_t*, int32_t*, int64_t, int64_t, int64_t) {
  failure(kNotBuilt);
}
void spmm_2of4_u8s8s32_mma_sp_m16n8k64_sm80(const uint8_t*, const PackedView&, int32_t*, int64_t) { failure(kNotBuilt); }
void launch_gemm_mma_m16n8k32(const uint8_t*, const int8_t*, int32_t*, int64_t, int64_t, int64_t) { failure(kNotBuilt); }
void launch_gemm_wgmma_m64n8k32(const uint8_t*, const int8_t*, int32_t*, int64_t, int64_t, int64_t) {
  failure(kNotBuilt);
}
void launch_spmm_mma_sp_m16n8k64(const uint8_t*, const int8_t*, const uint8_t*, const int32_t*, int32_t*, int64_t,
                                 int64_t, int64_t, int64_t) {
  failure(kNotBuilt);
}

}  // namespace compress::kernels::cuda
