#pragma once
// The compress TorchScript custom ops (also callable directly from C++).
// Conventions:
//   * activations are plain uint8 tensors with their zero point folded into the
//     packed weight at pack time (pack_* take input_zero_point);
//   * packed weights are 1-D uint8 tensors (a kernels::PackedView blob), so a
//     module keeps them as ordinary buffers and saves/loads them as such;
//   * the epilogue computes y = scale[n] * acc + bias[n] (+ residual_scale *
//     (residual - residual_zero_point)), then ReLU, then rounds to output_dtype
//     (uint8 / int8 with output_zero_point, or float32);
//   * convolutions take and return NHWC tensors [N, H, W, C].
// Bad input raises a c10::Error whose first line names the op and the problem.
#include <ATen/core/Tensor.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace compress::ops {

// weight int8 [N, K]; layout "auto" (for this CPU), "ref", "avx2", "avx512vnni" or "amx" (same layout as avx512vnni);
// with the suffix "_u7" ("auto_u7", "avx2_u7") the layout for 7-bit
// activations (0..127, reduce_range), faster on AVX2; such a weight refuses
// inputs above 127.
at::Tensor pack_linear_int8(const at::Tensor& weight, int64_t input_zero_point, const std::string& layout);
// weight int8 [O, I/groups, kh, kw] (PyTorch OIHW); groups 1 or depthwise (groups == O == I).
at::Tensor pack_conv2d_int8(const at::Tensor& weight, int64_t input_zero_point, int64_t groups,
                            const std::string& layout);
// Whether the tensor is one of these ops' packed weights: a 1-D uint8 CPU
// tensor that begins with their blob header's magic number (the rest of the
// blob is checked by the ops that read it). How save_module tells packed
// weights from other byte buffers.
bool is_packed_weight(const at::Tensor& tensor);
// The storage form of a packed weight, which save_module writes: a dense
// weight packed for a CPU's kernels becomes row-major without the kernel
// layouts' padding (kernels::Layout::stored_s8), the same weight in fewer
// bytes and for any CPU. The ops take it wherever they take the packing: at
// its first call it is packed for this CPU's kernels, once, and the packing
// kept while the stored tensor lives unchanged. Any other blob (depthwise,
// sparse, 7-bit, reference layout, already stored) comes back as it is.
at::Tensor packed_weight_for_storage(const at::Tensor& packed_weight);
// The inverse: a weight in the storage form packed for this CPU's kernels
// (any other blob as it is). What the ops run a stored weight with; a
// module's buffers replaced by it (pack_stored_weights in script.h, or a
// loop over named_buffers in Python) hold each weight once instead of the
// stored bytes plus the ops' kept packing.
at::Tensor packed_weight_for_cpu(const at::Tensor& packed_weight);
// How many packings of stored weights the ops keep now (tests, diagnostics).
int64_t repacked_weights_cached();
// weight int8 [N, K] and mask bool/uint8 [N, K]; format "1x4" or "2:4".
at::Tensor pack_linear_int8_sparse(const at::Tensor& weight, const at::Tensor& mask, int64_t input_zero_point,
                                   const std::string& format);
// weight int8 [O, I, kh, kw] (PyTorch OIHW, groups 1) and mask of its shape;
// format "1x4" or "2:4", counted along K = (kh, kw, c): the weight is packed
// OHWI, so a 1x4 block is 4 consecutive input channels at one tap (see
// pruning/sparsity.h). For conv2d_int8_sparse.
at::Tensor pack_conv2d_int8_sparse(const at::Tensor& weight, const at::Tensor& mask, int64_t input_zero_point,
                                   const std::string& format);

at::Tensor linear_int8(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& scale,
                       const c10::optional<at::Tensor>& bias, int64_t output_zero_point, bool relu,
                       c10::ScalarType output_dtype, const c10::optional<at::Tensor>& residual,
                       double residual_scale, int64_t residual_zero_point, int64_t output_quant_max = 255);
// Dynamic INT8 linear, float in and float out: each call quantizes its input
// with one scale for the whole tensor, s = max|x| / 127, to the codes
// q = clamp(nearbyint(x / s) + 128, 0, 255) (symmetric: zero point 128, which
// pack_linear_int8(weight, 128, layout) folds into the packed weight), runs
// the u8 x s8 GEMM and writes y[m][n] = fma(float(acc), s * weight_scale[n],
// bias[n]) (ReLU: max(y, 0)), acc = sum_k (q - 128) * w exact. weight_scale:
// float [N], the per-channel scales of the int8 weight. An all-zero input
// uses s = 1. NaN or infinite inputs are refused (no scale represents them).
at::Tensor linear_int8_dynamic(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& weight_scale,
                               const c10::optional<at::Tensor>& bias, bool relu = false);
// The scale linear_int8_dynamic quantizes `input` with (max|x| / 127, or 1).
double dynamic_input_scale(const at::Tensor& input);
// aten::lstm / aten::gru (eval: no dropout) with dynamic INT8 projections:
// per layer and direction, the input projections of all steps are one
// linear_int8_dynamic GEMM (one scale for the whole sequence), the hidden
// projection one per step (one scale per step), and the gates are computed
// in float as torch.nn.LSTM / GRU define them. `params`: per layer and
// direction (PyTorch's order) packed_ih, scale_ih, packed_hh, scale_hh,
// bias_ih, bias_hh (zeros when the layer has none). Input [T, B, I] ([B, T,
// I] batch_first), hx [layers * directions, B, H]; returns (output, h_n, c_n)
// / (output, h_n) as aten::lstm / aten::gru do.
std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_int8_dynamic(const at::Tensor& input, at::TensorList hx,
                                                                 at::TensorList params, int64_t num_layers,
                                                                 bool bidirectional, bool batch_first);
std::tuple<at::Tensor, at::Tensor> gru_int8_dynamic(const at::Tensor& input, const at::Tensor& hx,
                                                    at::TensorList params, int64_t num_layers, bool bidirectional,
                                                    bool batch_first);
at::Tensor linear_int8_sparse(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& scale,
                              const c10::optional<at::Tensor>& bias, int64_t output_zero_point, bool relu,
                              c10::ScalarType output_dtype, const c10::optional<at::Tensor>& residual,
                              double residual_scale, int64_t residual_zero_point, int64_t output_quant_max = 255);
at::Tensor conv2d_int8(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& scale,
                       const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                       at::IntArrayRef dilation, int64_t output_zero_point, bool relu,
                       c10::ScalarType output_dtype, const c10::optional<at::Tensor>& residual,
                       double residual_scale, int64_t residual_zero_point, int64_t output_quant_max = 255);
// conv2d_int8 with a weight from pack_conv2d_int8_sparse: im2col rows of the
// NHWC input through the sparse GEMM kernels, same arguments, same epilogue,
// and the same result bit for bit as conv2d_int8 on the masked weight.
at::Tensor conv2d_int8_sparse(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& scale,
                              const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                              at::IntArrayRef dilation, int64_t output_zero_point, bool relu,
                              c10::ScalarType output_dtype, const c10::optional<at::Tensor>& residual,
                              double residual_scale, int64_t residual_zero_point, int64_t output_quant_max = 255);

// Max pooling of NHWC uint8 codes [N, H, W, C] -> [N, oh, ow, C], with
// aten::max_pool2d's arguments and output size; exact (quantization is
// monotonic), so the result keeps the input's scale and zero point.
at::Tensor max_pool2d_u8(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode);

// output_quant_max (uint8 output) / quant_max: the largest code, 127 for a
// next layer packed for 7-bit activations.
at::Tensor quantize_u8(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_max = 255);
// quantize_u8 of a float NCHW tensor, returned NHWC [N, H, W, C] (what
// conv2d_int8 reads), in one pass instead of permute + copy + quantize.
at::Tensor quantize_u8_nhwc(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_max = 255);
at::Tensor dequantize_u8(const at::Tensor& input, double scale, int64_t zero_point);

// What a packed weight holds (for compress inspect): its format ("dense",
// "depthwise", "sparse_1x4", "sparse_2_4"), its GEMM sizes n x k (a conv's
// k = kh*kw*c_in) and how many of its n*k weights are non-zero.
struct PackedWeightInfo {
  std::string format;
  int64_t n = 0, k = 0, nonzeros = 0;
};
PackedWeightInfo packed_weight_info(const at::Tensor& packed_weight);

// The ISA the kernels run with ("ref", "avx2", "avx512vnni", "amx").
std::string kernel_isa();

// What `compress info` reports about the kernels on this machine.
struct KernelReport {
  std::string active;                                  // used now (COMPRESS_ISA or best)
  std::string best;                                    // best this CPU + OS supports
  std::vector<std::pair<std::string, bool>> supported; // every ISA the build has, in order
  int threads;                                         // LibTorch intra-op threads the ops use
};
KernelReport kernel_report();

}  // namespace compress::ops
