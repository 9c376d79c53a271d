#pragma once
// Max pooling on NHWC u8 activations. Quantization is monotonic, so pooling
// the codes gives exactly the codes of the pooled float values: the INT8
// model needs no dequantize / float pool / quantize round trip around it.
#include <cstdint>

#include "compress/kernels/parallel.h"

namespace compress::kernels {

struct PoolGeometry {
  int64_t batch = 1, height = 0, width = 0, channels = 0;  // input [batch][height][width][channels]
  int64_t kh = 1, kw = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
  bool ceil_mode = false;
};

// PyTorch's output size rule for max_pool2d (a window that would start in
// the right padding is dropped under ceil_mode). Throws BadInput when the
// geometry is invalid (non-positive sizes, padding above half the kernel,
// or no output).
int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dil, bool ceil_mode);

// output [batch][oh][ow][channels]: the largest code of each window; taps in
// the padding are ignored (PyTorch pads max pooling with -inf).
void max_pool2d_u8(const uint8_t* input, const PoolGeometry& g, uint8_t* output, const ParallelFor& pf);

}  // namespace compress::kernels
