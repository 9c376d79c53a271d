// gemm_u8s8s32_avx512vnni_8x32, native: compiled with -mavx512f -mavx512bw
// -mavx512vl -mavx512dq -mavx512vnni -mfma (this file only).
#include <immintrin.h>

#define COMPRESS_VNNI_ENTRY gemm_avx512vnni_8x32
#define COMPRESS_VNNI_ROW_QUADS_ENTRY conv_row_quads_avx512vnni
#include "gemm_avx512vnni_body.h"
