#pragma once
// INT8 2-D convolution on NHWC u8 activations, fused requantize/ReLU/residual
// (same epilogue as the GEMM). Padding reads as the activation zero point,
// i.e. as real zero.
#include <cstdint>

#include "compress/kernels/gemm.h"

namespace compress::kernels {

struct ConvGeometry {
  int64_t batch = 1, height = 0, width = 0;  // input; channels come from the packed weight
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
};

int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dil);

// input [batch][height][width][c_in] u8; output [batch][oh][ow][c_out] of ep.out;
// residual (if any) shaped like the output. W is of kind conv or depthwise.
// 1x1 stride-1 unpadded convolutions run as one GEMM over the input itself;
// other k x k run directly on a padded copy of the input where the kernel
// for the ISA has such a path for the shape (AVX-512 VNNI: up to 4 input
// channels, or stride 1 with K <= 576; AMX), else through im2col in row
// chunks; depthwise has its own kernel.
void conv2d_u8s8(const uint8_t* input, const ConvGeometry& g, const PackedView& W, void* output,
                 const Epilogue& ep, const ParallelFor& pf, Isa isa = active_isa());

// The same convolution with a sparse weight (kind sparse_1x4 or sparse_2_4
// from pack_sparse_conv_u8s8: K in (kh, kw, c) order): blocks of im2col rows
// (padding = the activation zero point), each through sparse_gemm_u8s8s32
// with the epilogue; 1x1 stride-1 unpadded reads the input as the GEMM's A.
// Equals conv2d_u8s8 on the masked weight bit for bit (same int32 sums).
void sparse_conv2d_u8s8(const uint8_t* input, const ConvGeometry& g, const PackedView& W, void* output,
                        const Epilogue& ep, const ParallelFor& pf, Isa isa = active_isa());

}  // namespace compress::kernels
