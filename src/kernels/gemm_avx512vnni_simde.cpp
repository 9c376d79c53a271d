// gemm_u8s8s32_avx512vnni_8x32_simde: the AVX-512 VNNI kernel's own source
// (gemm_avx512vnni_body.h) compiled for AVX2 machines against SIMD
// Everywhere (Debian's libsimde-dev), which implements each AVX-512
// intrinsic with AVX2 or scalar code of the same result. Built only into the
// test library compress_kernels_vnni_simde: it lets a machine without
// AVX-512 check the kernel's logic (tiling, tails, epilogue, saturation) bit
// for bit against the reference. It says nothing about the instructions'
// encoding or speed; the native tests do that where the CPU has VNNI.
#include "simde_avx512.h"

#define COMPRESS_VNNI_ENTRY gemm_avx512vnni_8x32_simde
#define COMPRESS_VNNI_ROW_QUADS_ENTRY conv_row_quads_avx512vnni_simde
#include "gemm_avx512vnni_body.h"
