#pragma once
// Activation quantize / dequantize (per tensor, u8):
//   q = clamp(nearbyint(x * (1 / scale)) + zero_point, 0, quant_max)
// quant_max 127 gives the 7-bit activations of Layout::avx2_n16k8_u7s8.
//   x = (q - zero_point) * scale
#include <cstdint>

namespace compress::kernels {

void quantize_f32_u8(const float* x, int64_t n, float scale, int32_t zero_point, uint8_t* q,
                     int32_t quant_max = 255);
// The same codes for a float NCHW tensor [batch][c][h][w], written NHWC
// [batch][h][w][c] (the layout the INT8 convolutions read): rows
// [row_begin, row_end) of the batch * h output rows.
void quantize_f32_u8_nchw_to_nhwc(const float* x, int64_t c, int64_t h, int64_t w, int64_t row_begin,
                                  int64_t row_end, float scale, int32_t zero_point, uint8_t* q,
                                  int32_t quant_max = 255);
// max |x[i]| (0 for n == 0), NaN when any value is NaN: the range of
// dynamic (per call) symmetric quantization.
float max_abs_f32(const float* x, int64_t n);
void dequantize_u8_f32(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x);

}  // namespace compress::kernels
