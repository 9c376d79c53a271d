#pragma once
// Sparse INT8 layers: which packing a quantized layer's weight gets.
//
// A layer whose INT8 weight has zeros may run on the sparse kernels
// (kernels/sparse.h) through compress::linear_int8_sparse: linear layers,
// and 1x1 convolutions with stride 1, no padding and groups 1 (on NHWC
// codes such a convolution is a GEMM over the rows N*H*W, so the linear op
// reads the NHWC tensor directly and writes NHWC). Whether the sparse
// kernel is faster depends on the shape, the sparsity and the CPU, so in
// "auto" mode convert() times the candidates on this machine, for this
// layer's weight and its row count at the example input's batch, with the
// current number of intra-op threads, and keeps the fastest (docs/quantization.md, "Sparse INT8").
// The sparse result equals the dense one bit for bit (same int32 sums,
// same epilogue), so the choice changes speed only.
#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

#include "compress/ir/graph.h"

namespace compress::quant {

// QuantizeOptions::sparse: "auto" (measure each candidate layer), "off"
// (dense everywhere), "1x4" or "2:4" (that format wherever the layer fits
// and its weight allows; for tests and comparisons).
void check_sparse_mode(const std::string& mode);

// Empty when `layer` (a planned Conv2d / Linear leaf) can run on the sparse
// kernels; otherwise why not.
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

}  // namespace compress::quant
