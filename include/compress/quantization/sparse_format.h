#pragma once
// Sparse INT8 layers: which packing a quantized layer's weight gets.
//
// A layer whose INT8 weight has zeros may run on the sparse kernels
// (kernels/sparse.h): linear layers and 1x1 convolutions with stride 1 and
// no padding through compress::linear_int8_sparse (on NHWC codes such a
// convolution is a GEMM over the rows N*H*W, so the linear op reads the NHWC
// tensor directly and writes NHWC), and every other convolution with groups
// 1 (k x k, strided, padded, dilated) through compress::conv2d_int8_sparse
// (blocks of im2col rows of the NHWC codes through the same sparse GEMM).
// A convolution's weight is seen as [O, kh*kw*I] in (kh, kw, c) order, the
// order of NHWC im2col rows: its 1x4 blocks are 4 consecutive input channels
// at one tap (pruning/sparsity.h counts them the same way).
// Whether the sparse kernel is faster depends on the shape, the sparsity and
// the CPU, so in "auto" mode convert() times the candidates on this machine,
// for this layer's weight and its input shape at the example input's batch
// (a conv's time includes its im2col), with the current number of intra-op
// threads, and keeps the fastest (docs/quantization.md, "Sparse INT8").
// The sparse result equals the dense one bit for bit (same int32 sums,
// same epilogue), so the choice changes speed only.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "compress/ir/graph.h"

namespace compress::quant {

// QuantizeOptions::sparse: "auto" (measure each candidate layer), "off"
// (dense everywhere), "1x4" or "2:4" (that format wherever the layer fits
// and its weight allows; for tests and comparisons).
void check_sparse_mode(const std::string& mode);

// Empty when `layer` (a planned Conv2d / Linear leaf) can run on the sparse
// kernels (a linear layer, or a convolution with groups 1); otherwise why not.
std::string sparse_kernel_fit(const Node& layer);

struct FormatChoice {
  std::string format = "dense";  // "dense", "sparse_1x4", "sparse_2_4"
  std::string reason;            // why, with the times when measured
  double sparsity = 0;           // of the INT8 weight
  double dense_ms = 0, sparse_1x4_ms = 0, sparse_2_4_ms = 0;  // best of the timed calls (0: not timed)
  at::Tensor packed;             // the sparse packing chosen; undefined for dense
};

// Chooses the packing of an INT8 weight [N, K] (a 1x1 conv's [O, I]) that
// reads `rows` activation rows per call with `input_zero_point`. 1x4 is a
// candidate when some 4-block of a row is all zero, 2:4 when every group of
// 4 has at most 2 non-zeros; in "auto" mode each candidate and the dense
// packing run `repeats` times on random codes, alternating, and the
// fastest best time wins (a sparse one only when at least `margin` faster,
// so timing noise does not flip layers that gain nothing).
FormatChoice choose_weight_format(const at::Tensor& weight_int8, int64_t rows, int64_t input_zero_point,
                                  const std::string& mode, int repeats = 7, double margin = 1.05);

// A convolution's input as the timing runs it: NHWC codes of
// batch x height x width x I (I from the weight), and the conv's geometry.
struct ConvInput {
  int64_t batch = 1, height = 1, width = 1;
  std::vector<int64_t> stride{1, 1}, padding{0, 0}, dilation{1, 1};
};

// choose_weight_format for a convolution with groups 1 (weight [O, I, kh,
// kw]): the candidates are judged on the weight in (kh, kw, c) order, packed
// by pack_conv2d_int8 / pack_conv2d_int8_sparse, and timed as conv2d_int8 /
// conv2d_int8_sparse on `input` (so the sparse time includes its im2col,
// and the dense one whatever direct path the ISA has).
FormatChoice choose_conv_weight_format(const at::Tensor& weight_int8, const ConvInput& input, int64_t input_zero_point,
                                       const std::string& mode, int repeats = 7, double margin = 1.05);

}  // namespace compress::quant
