// spmm_u8s8s32_1x4_avx512vnni_32, native: compiled with -mavx512f -mavx512bw
// -mavx512vl -mavx512dq -mavx512vnni -mfma (this file only).
#include <immintrin.h>

#define COMPRESS_SPARSE_VNNI_ENTRY sparse_1x4_avx512vnni
#include "sparse_avx512vnni_body.h"
