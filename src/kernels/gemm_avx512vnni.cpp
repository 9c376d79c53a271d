// gemm_u8s8s32_avx512vnni_8x32, native: compiled with -mavx512f -mavx512bw
// -mavx512vl -mavx512dq -mavx512vnni -mfma (this file only).
#include <immintrin.h>

#define COMPRESS_VNNI_ENTRY gemm_avx512vnni_8x32
#include "gemm_avx512vnni_body.h"
