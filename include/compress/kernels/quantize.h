#pragma once
// Activation quantize / dequantize (per tensor, u8):
//   q = clamp(nearbyint(x * (1 / scale)) + zero_point, 0, 255)
//   x = (q - zero_point) * scale
#include <cstdint>

namespace compress::kernels {

void quantize_f32_u8(const float* x, int64_t n, float scale, int32_t zero_point, uint8_t* q);
void dequantize_u8_f32(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x);

}  // namespace compress::kernels
