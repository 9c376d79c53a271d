// dwconv_u8s8s32_avx512vnni_32c_simde: the AVX-512 depthwise kernel's own
// source (depthwise_avx512vnni_body.h) compiled for AVX2 machines against
// SIMD Everywhere, for the test library compress_kernels_vnni_simde only (see
// gemm_avx512vnni_simde.cpp): its logic checked bit for bit where the CPU has
// no AVX-512.
#include "simde_avx512.h"

#define COMPRESS_DEPTHWISE_VNNI_ENTRY depthwise_avx512vnni_simde
#include "depthwise_avx512vnni_body.h"
