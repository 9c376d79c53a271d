// dwconv_u8s8s32_avx512vnni_32c, native: compiled with -mavx512f -mavx512bw
// -mavx512vl -mavx512dq -mavx512vnni -mfma (this file only).
#include <immintrin.h>

#define COMPRESS_DEPTHWISE_VNNI_ENTRY depthwise_avx512vnni
#include "depthwise_avx512vnni_body.h"
