// Tensor-level wrappers of the kernels: argument checks with one-line
// messages, layout conversion, and LibTorch's thread pool for parallelism.
#include <ATen/Parallel.h>
#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "compress/error.h"
#include "compress/kernels/conv.h"
#include "compress/kernels/gemm.h"
#include "compress/kernels/packed.h"
#include "compress/kernels/pool.h"
#include "compress/kernels/quantize.h"
#include "compress/kernels/sparse.h"
#include "compress/ops/ops.h"
#include "internal.h"

namespace compress::ops {
namespace {

namespace K = compress::kernels;
using detail::blob_tensor;
using detail::empty_activation;
using detail::first_non_finite;
using detail::guarded;
using detail::torch_parallel;
using detail::runnable_view_of;
using detail::view_of;

// "<isa>" or "auto"; the suffix "_u7" asks for the layout of 7-bit
// activations (0..127, reduce_range quantization) where the ISA has one.
K::Layout parse_layout(const char* op, const std::string& layout) {
  const std::string suffix = "_u7";
  const bool u7 = layout.size() > suffix.size() && layout.compare(layout.size() - suffix.size(), suffix.size(), suffix) == 0;
  const std::string isa = u7 ? layout.substr(0, layout.size() - suffix.size()) : layout;
  if (isa == "auto") return K::dense_layout_for(K::active_isa(), u7);
  TORCH_CHECK(isa == "ref" || isa == "avx2" || isa == "avx512vnni" || isa == "amx", op, ": unknown layout '", layout,
              "' (expected auto, ref, avx2, avx512vnni or amx, optionally with _u7 for 7-bit activations)");
  return K::dense_layout_for(K::parse_isa(isa), u7);
}

void check_zero_point(const char* op, int64_t zp) {
  TORCH_CHECK(zp >= 0 && zp <= 255, op, ": input_zero_point must be in 0..255, got ", zp);
}

K::OutType out_type(const char* op, c10::ScalarType t) {
  switch (t) {
    case at::kByte: return K::OutType::u8;
    case at::kChar: return K::OutType::s8;
    case at::kFloat: return K::OutType::f32;
    default: TORCH_CHECK(false, op, ": output_dtype must be uint8, int8 or float32, got ", t);
  }
}

// Epilogue arrays kept alive for the duration of a call.
struct EpilogueTensors {
  at::Tensor scale, bias, residual;
  K::Epilogue ep;
};

EpilogueTensors make_epilogue(const char* op, int64_t n, const at::Tensor& scale,
                              const c10::optional<at::Tensor>& bias, int64_t out_zp, bool relu,
                              c10::ScalarType dtype, const c10::optional<at::Tensor>& residual,
                              at::IntArrayRef out_shape, double residual_scale, int64_t residual_zp,
                              int64_t out_quant_max) {
  EpilogueTensors e;
  TORCH_CHECK(scale.dim() == 1 && scale.numel() == n && scale.is_floating_point(), op,
              ": scale must be a 1-D float tensor of ", n, " per-output-channel values, got shape ", scale.sizes());
  e.scale = scale.to(at::kFloat).contiguous();
  e.ep.scale = e.scale.data_ptr<float>();
  // A non-finite requantization parameter would turn every output of its
  // channel into an unspecified code: refused, naming the channel (the check
  // reads n floats; the layer reads n * K weights).
  if (const int64_t i = first_non_finite(e.ep.scale, n); i >= 0)
    TORCH_CHECK(false, op, ": scale[", i, "] is ", e.ep.scale[i], "; scales must be finite");
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->numel() == n && bias->is_floating_point(), op,
                ": bias must be a 1-D float tensor of ", n, " values, got shape ", bias->sizes());
    e.bias = bias->to(at::kFloat).contiguous();
    e.ep.bias = e.bias.data_ptr<float>();
    if (const int64_t i = first_non_finite(e.ep.bias, n); i >= 0)
      TORCH_CHECK(false, op, ": bias[", i, "] is ", e.ep.bias[i], "; biases must be finite");
  }
  e.ep.out = out_type(op, dtype);
  e.ep.relu = relu;
  if (e.ep.out == K::OutType::u8)
    TORCH_CHECK(out_zp >= 0 && out_zp <= 255, op, ": output_zero_point must be in 0..255 for uint8, got ", out_zp);
  if (e.ep.out == K::OutType::s8)
    TORCH_CHECK(out_zp >= -128 && out_zp <= 127, op, ": output_zero_point must be in -128..127 for int8, got ",
                out_zp);
  e.ep.out_zero_point = static_cast<int32_t>(out_zp);
  if (e.ep.out == K::OutType::u8)
    TORCH_CHECK(out_quant_max >= out_zp && out_quant_max <= 255, op, ": output_quant_max must be in ", out_zp,
                "..255 (output_zero_point..255), got ", out_quant_max);
  e.ep.out_quant_max = static_cast<int32_t>(out_quant_max);
  if (residual.has_value() && residual->defined()) {
    TORCH_CHECK(residual->scalar_type() == dtype, op, ": residual must have the output dtype ", dtype, ", got ",
                residual->scalar_type());
    TORCH_CHECK(residual->sizes() == out_shape, op, ": residual must have the output shape ", out_shape,
                ", got ", residual->sizes());
    e.residual = residual->contiguous();
    e.ep.residual = e.residual.data_ptr();
    e.ep.ld_residual = n;
    TORCH_CHECK(std::isfinite(static_cast<float>(residual_scale)), op, ": residual_scale is ", residual_scale,
                "; it must be finite");
    e.ep.residual_scale = static_cast<float>(residual_scale);
    e.ep.residual_zero_point = static_cast<int32_t>(residual_zp);
  }
  return e;
}

at::Tensor linear_common(const char* op, bool sparse, const at::Tensor& input, const at::Tensor& packed,
                         const at::Tensor& scale, const c10::optional<at::Tensor>& bias, int64_t out_zp,
                         bool relu, c10::ScalarType dtype, const c10::optional<at::Tensor>& residual,
                         double residual_scale, int64_t residual_zp, int64_t out_quant_max) {
  const K::PackedView w = runnable_view_of(op, packed);
  const bool is_sparse = w.kind() == K::PackedKind::sparse_1x4 || w.kind() == K::PackedKind::sparse_2_4;
  TORCH_CHECK(is_sparse == sparse && (sparse || w.kind() == K::PackedKind::gemm), op,
              ": packed_weight was not made by ",
              sparse ? "compress::pack_linear_int8_sparse" : "compress::pack_linear_int8");
  TORCH_CHECK(input.device().is_cpu() && input.scalar_type() == at::kByte, op,
              ": input must be a uint8 CPU tensor (quantized activations), got ", input.scalar_type(), " on ",
              input.device());
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == w.k(), op, ": input's last dimension must be ", w.k(),
              " (in_features), got shape ", input.sizes());
  std::vector<int64_t> out_shape(input.sizes().begin(), input.sizes().end());
  out_shape.back() = w.n();
  const at::Tensor x = input.contiguous();
  const int64_t M = x.numel() / w.k();
  EpilogueTensors e = make_epilogue(op, w.n(), scale, bias, out_zp, relu, dtype, residual, out_shape,
                                    residual_scale, residual_zp, out_quant_max);
  at::Tensor out = empty_activation(out_shape, dtype);
  guarded(op, [&] {
    if (sparse)
      K::sparse_gemm_u8s8s32(M, x.data_ptr<uint8_t>(), w.k(), w, out.data_ptr(), w.n(), e.ep, torch_parallel());
    else
      K::gemm_u8s8s32(M, x.data_ptr<uint8_t>(), w.k(), w, out.data_ptr(), w.n(), e.ep, torch_parallel());
    return 0;
  });
  return out;
}

}  // namespace

at::Tensor pack_linear_int8(const at::Tensor& weight, int64_t input_zero_point, const std::string& layout) {
  const char* op = "compress::pack_linear_int8";
  TORCH_CHECK(weight.scalar_type() == at::kChar && weight.dim() == 2, op,
              ": weight must be a 2-D int8 tensor [out_features, in_features], got ", weight.scalar_type(),
              " of shape ", weight.sizes());
  check_zero_point(op, input_zero_point);
  const K::Layout l = parse_layout(op, layout);
  const at::Tensor w = weight.contiguous().cpu();
  return guarded(op, [&] {
    return blob_tensor(K::pack_gemm_u8s8(w.data_ptr<int8_t>(), w.size(0), w.size(1),
                                         static_cast<int32_t>(input_zero_point), l));
  });
}

at::Tensor pack_conv2d_int8(const at::Tensor& weight, int64_t input_zero_point, int64_t groups,
                            const std::string& layout) {
  const char* op = "compress::pack_conv2d_int8";
  TORCH_CHECK(weight.scalar_type() == at::kChar && weight.dim() == 4, op,
              ": weight must be a 4-D int8 tensor [out, in/groups, kh, kw], got ", weight.scalar_type(),
              " of shape ", weight.sizes());
  check_zero_point(op, input_zero_point);
  const int64_t O = weight.size(0), Ig = weight.size(1), kh = weight.size(2), kw = weight.size(3);
  const K::Layout l = parse_layout(op, layout);
  if (groups == 1) {
    // OIHW -> OHWI: the im2col rows of NHWC activations are (kh, kw, c).
    const at::Tensor w = weight.permute({0, 2, 3, 1}).contiguous().cpu();
    return guarded(op, [&] {
      return blob_tensor(K::pack_conv_u8s8(w.data_ptr<int8_t>(), O, kh, kw, Ig,
                                           static_cast<int32_t>(input_zero_point), l));
    });
  }
  TORCH_CHECK(Ig == 1 && groups == O, op, ": groups=", groups,
              " is supported only as depthwise (groups == out_channels == in_channels, weight [C, 1, kh, kw]); got "
              "weight shape ",
              weight.sizes());
  const at::Tensor w = weight.contiguous().cpu();
  return guarded(op, [&] {
    return blob_tensor(K::pack_depthwise_u8s8(w.data_ptr<int8_t>(), O, kh, kw, static_cast<int32_t>(input_zero_point)));
  });
}

namespace {

// The arguments both sparse packers take besides the weight's own shape.
void check_sparse_packing(const char* op, const at::Tensor& weight, const at::Tensor& mask, int64_t input_zero_point,
                          const std::string& format) {
  TORCH_CHECK(mask.sizes() == weight.sizes(), op, ": mask must have the weight's shape ", weight.sizes(), ", got ",
              mask.sizes());
  TORCH_CHECK(format == "1x4" || format == "2:4", op, ": format must be \"1x4\" or \"2:4\", got \"", format, "\"");
  check_zero_point(op, input_zero_point);
}

}  // namespace

at::Tensor pack_linear_int8_sparse(const at::Tensor& weight, const at::Tensor& mask, int64_t input_zero_point,
                                   const std::string& format) {
  const char* op = "compress::pack_linear_int8_sparse";
  TORCH_CHECK(weight.scalar_type() == at::kChar && weight.dim() == 2, op,
              ": weight must be a 2-D int8 tensor [out_features, in_features], got ", weight.scalar_type(),
              " of shape ", weight.sizes());
  check_sparse_packing(op, weight, mask, input_zero_point, format);
  const at::Tensor w = weight.contiguous().cpu();
  const at::Tensor m = mask.ne(0).to(at::kByte).contiguous().cpu();
  return guarded(op, [&] {
    const auto zp = static_cast<int32_t>(input_zero_point);
    return blob_tensor(format == "1x4"
                           ? K::pack_sparse_1x4_u8s8(w.data_ptr<int8_t>(), m.data_ptr<uint8_t>(), w.size(0), w.size(1), zp)
                           : K::pack_sparse_2_4_u8s8(w.data_ptr<int8_t>(), m.data_ptr<uint8_t>(), w.size(0), w.size(1), zp));
  });
}

at::Tensor pack_conv2d_int8_sparse(const at::Tensor& weight, const at::Tensor& mask, int64_t input_zero_point,
                                   const std::string& format) {
  const char* op = "compress::pack_conv2d_int8_sparse";
  TORCH_CHECK(weight.scalar_type() == at::kChar && weight.dim() == 4, op,
              ": weight must be a 4-D int8 tensor [out, in, kh, kw] (groups 1), got ", weight.scalar_type(),
              " of shape ", weight.sizes());
  check_sparse_packing(op, weight, mask, input_zero_point, format);
  // OIHW -> OHWI: K in (kh, kw, c) order, the im2col rows of NHWC activations.
  const at::Tensor w = weight.permute({0, 2, 3, 1}).contiguous().cpu();
  const at::Tensor m = mask.ne(0).permute({0, 2, 3, 1}).to(at::kByte).contiguous().cpu();
  return guarded(op, [&] {
    return blob_tensor(K::pack_sparse_conv_u8s8(w.data_ptr<int8_t>(), m.data_ptr<uint8_t>(), w.size(0), w.size(1),
                                                w.size(2), w.size(3), static_cast<int32_t>(input_zero_point),
                                                format == "1x4" ? K::PackedKind::sparse_1x4 : K::PackedKind::sparse_2_4));
  });
}

at::Tensor linear_int8(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& scale,
                       const c10::optional<at::Tensor>& bias, int64_t output_zero_point, bool relu,
                       c10::ScalarType output_dtype, const c10::optional<at::Tensor>& residual,
                       double residual_scale, int64_t residual_zero_point, int64_t output_quant_max) {
  return linear_common("compress::linear_int8", false, input, packed_weight, scale, bias, output_zero_point, relu,
                       output_dtype, residual, residual_scale, residual_zero_point, output_quant_max);
}

at::Tensor linear_int8_sparse(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& scale,
                              const c10::optional<at::Tensor>& bias, int64_t output_zero_point, bool relu,
                              c10::ScalarType output_dtype, const c10::optional<at::Tensor>& residual,
                              double residual_scale, int64_t residual_zero_point, int64_t output_quant_max) {
  return linear_common("compress::linear_int8_sparse", true, input, packed_weight, scale, bias, output_zero_point,
                       relu, output_dtype, residual, residual_scale, residual_zero_point, output_quant_max);
}

namespace {

at::Tensor conv_common(const char* op, bool sparse, const at::Tensor& input, const at::Tensor& packed_weight,
                       const at::Tensor& scale, const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef dilation, int64_t output_zero_point, bool relu,
                       c10::ScalarType output_dtype, const c10::optional<at::Tensor>& residual,
                       double residual_scale, int64_t residual_zero_point, int64_t output_quant_max) {
  const K::PackedView w = runnable_view_of(op, packed_weight);
  const bool sparse_blob = w.kind() == K::PackedKind::sparse_1x4 || w.kind() == K::PackedKind::sparse_2_4;
  const bool conv_blob = w.kind() == K::PackedKind::conv || w.kind() == K::PackedKind::depthwise;
  TORCH_CHECK(sparse ? sparse_blob : conv_blob, op, ": packed_weight was not made by ",
              sparse ? "compress::pack_conv2d_int8_sparse" : "compress::pack_conv2d_int8");
  TORCH_CHECK(input.device().is_cpu() && input.scalar_type() == at::kByte && input.dim() == 4, op,
              ": input must be a 4-D uint8 NHWC CPU tensor [N, H, W, C], got ", input.scalar_type(), " of shape ",
              input.sizes());
  TORCH_CHECK(input.size(3) == w.c_in(), op, ": input has ", input.size(3), " channels (NHWC, last dim), the weight expects ",
              w.c_in());
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2, op,
              ": stride, padding and dilation must have 2 values each");
  K::ConvGeometry g;
  g.batch = input.size(0); g.height = input.size(1); g.width = input.size(2);
  g.stride_h = stride[0]; g.stride_w = stride[1];
  g.pad_h = padding[0]; g.pad_w = padding[1];
  g.dil_h = dilation[0]; g.dil_w = dilation[1];
  TORCH_CHECK(g.stride_h > 0 && g.stride_w > 0 && g.dil_h > 0 && g.dil_w > 0 && g.pad_h >= 0 && g.pad_w >= 0, op,
              ": stride and dilation must be positive and padding non-negative");
  const int64_t oh = K::conv_output_size(g.height, w.kh(), g.stride_h, g.pad_h, g.dil_h);
  const int64_t ow = K::conv_output_size(g.width, w.kw(), g.stride_w, g.pad_w, g.dil_w);
  TORCH_CHECK(oh > 0 && ow > 0, op, ": the ", w.kh(), "x", w.kw(), " kernel does not fit the padded ", g.height, "x",
              g.width, " input");
  const std::vector<int64_t> out_shape = {g.batch, oh, ow, w.n()};
  EpilogueTensors e = make_epilogue(op, w.n(), scale, bias, output_zero_point, relu, output_dtype, residual,
                                    out_shape, residual_scale, residual_zero_point, output_quant_max);
  const at::Tensor x = input.contiguous();
  at::Tensor out = empty_activation(out_shape, output_dtype);
  guarded(op, [&] {
    if (sparse)
      K::sparse_conv2d_u8s8(x.data_ptr<uint8_t>(), g, w, out.data_ptr(), e.ep, torch_parallel());
    else
      K::conv2d_u8s8(x.data_ptr<uint8_t>(), g, w, out.data_ptr(), e.ep, torch_parallel());
    return 0;
  });
  return out;
}

}  // namespace

at::Tensor conv2d_int8(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& scale,
                       const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                       at::IntArrayRef dilation, int64_t output_zero_point, bool relu,
                       c10::ScalarType output_dtype, const c10::optional<at::Tensor>& residual,
                       double residual_scale, int64_t residual_zero_point, int64_t output_quant_max) {
  return conv_common("compress::conv2d_int8", false, input, packed_weight, scale, bias, stride, padding, dilation,
                     output_zero_point, relu, output_dtype, residual, residual_scale, residual_zero_point,
                     output_quant_max);
}

at::Tensor conv2d_int8_sparse(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& scale,
                              const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                              at::IntArrayRef dilation, int64_t output_zero_point, bool relu,
                              c10::ScalarType output_dtype, const c10::optional<at::Tensor>& residual,
                              double residual_scale, int64_t residual_zero_point, int64_t output_quant_max) {
  return conv_common("compress::conv2d_int8_sparse", true, input, packed_weight, scale, bias, stride, padding,
                     dilation, output_zero_point, relu, output_dtype, residual, residual_scale, residual_zero_point,
                     output_quant_max);
}

at::Tensor max_pool2d_u8(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  const char* op = "compress::max_pool2d_u8";
  TORCH_CHECK(input.device().is_cpu() && input.scalar_type() == at::kByte && input.dim() == 4, op,
              ": input must be a 4-D uint8 NHWC CPU tensor [N, H, W, C], got ", input.scalar_type(), " of shape ",
              input.sizes());
  // aten::max_pool2d's conventions: one value means both sides, no stride means the kernel size.
  auto pair = [&](at::IntArrayRef v, const char* what, at::IntArrayRef fallback) -> std::pair<int64_t, int64_t> {
    if (v.empty()) v = fallback;
    TORCH_CHECK(v.size() == 1 || v.size() == 2, op, ": ", what, " must have 1 or 2 values, got ", v.size());
    return {v[0], v.size() == 2 ? v[1] : v[0]};
  };
  K::PoolGeometry g;
  g.batch = input.size(0); g.height = input.size(1); g.width = input.size(2); g.channels = input.size(3);
  std::tie(g.kh, g.kw) = pair(kernel_size, "kernel_size", {});
  std::tie(g.stride_h, g.stride_w) = pair(stride, "stride", kernel_size);
  std::tie(g.pad_h, g.pad_w) = pair(padding, "padding", {});
  std::tie(g.dil_h, g.dil_w) = pair(dilation, "dilation", {});
  g.ceil_mode = ceil_mode;
  const auto [oh, ow] = guarded(op, [&] {
    return std::make_pair(K::pool_output_size(g.height, g.kh, g.stride_h, g.pad_h, g.dil_h, ceil_mode),
                          K::pool_output_size(g.width, g.kw, g.stride_w, g.pad_w, g.dil_w, ceil_mode));
  });
  const at::Tensor x = input.contiguous();
  at::Tensor out = empty_activation({g.batch, oh, ow, g.channels}, at::kByte);
  guarded(op, [&] {
    K::max_pool2d_u8(x.data_ptr<uint8_t>(), g, out.data_ptr<uint8_t>(), torch_parallel());
    return 0;
  });
  return out;
}

namespace {

// The parameters of quantize_u8 and quantize_u8_nhwc: a positive finite
// scale, a u8 zero point, and quant_max in zero_point..255.
void check_activation_quantization(const char* op, double scale, int64_t zero_point, int64_t quant_max) {
  TORCH_CHECK(scale > 0 && std::isfinite(scale), op, ": scale must be positive and finite, got ", scale);
  check_zero_point(op, zero_point);
  TORCH_CHECK(quant_max >= zero_point && quant_max <= 255, op, ": quant_max must be in ", zero_point,
              "..255 (zero_point..255), got ", quant_max);
}

}  // namespace

at::Tensor quantize_u8(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_max) {
  const char* op = "compress::quantize_u8";
  TORCH_CHECK(input.device().is_cpu() && input.is_floating_point(), op, ": input must be a float CPU tensor, got ",
              input.scalar_type());
  check_activation_quantization(op, scale, zero_point, quant_max);
  const at::Tensor x = input.to(at::kFloat).contiguous();
  at::Tensor q = empty_activation(x.sizes(), at::kByte);
  const float* src = x.data_ptr<float>();
  uint8_t* dst = q.data_ptr<uint8_t>();
  at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    K::quantize_f32_u8(src + b, e - b, static_cast<float>(scale), static_cast<int32_t>(zero_point), dst + b,
                       static_cast<int32_t>(quant_max));
  });
  return q;
}

at::Tensor quantize_u8_nhwc(const at::Tensor& input, double scale, int64_t zero_point, int64_t quant_max) {
  const char* op = "compress::quantize_u8_nhwc";
  TORCH_CHECK(input.device().is_cpu() && input.is_floating_point() && input.dim() == 4, op,
              ": input must be a 4-D float NCHW CPU tensor, got ", input.scalar_type(), " of shape ", input.sizes());
  check_activation_quantization(op, scale, zero_point, quant_max);
  // Already NHWC in memory (a float op between INT8 layers, e.g. a
  // squeeze-excitation multiply or a residual add on an INT8 layer's float
  // output, keeps its input's channels-last layout): its NHWC view is
  // contiguous, and quantize_u8 quantizes it in memory order. Making it
  // NCHW-contiguous first and transposing back cost 10x as much (the zoo
  // senet at batch 32: 0.55 ms a call against 0.05).
  if (input.is_contiguous(at::MemoryFormat::ChannelsLast))
    return quantize_u8(input.permute({0, 2, 3, 1}), scale, zero_point, quant_max);
  const at::Tensor x = input.to(at::kFloat).contiguous();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor q = empty_activation({n, h, w, c}, at::kByte);
  const float* src = x.data_ptr<float>();
  uint8_t* dst = q.data_ptr<uint8_t>();
  at::parallel_for(0, n * h, 1, [&](int64_t b, int64_t e) {
    K::quantize_f32_u8_nchw_to_nhwc(src, c, h, w, b, e, static_cast<float>(scale), static_cast<int32_t>(zero_point),
                                    dst, static_cast<int32_t>(quant_max));
  });
  return q;
}

at::Tensor dequantize_u8(const at::Tensor& input, double scale, int64_t zero_point) {
  const char* op = "compress::dequantize_u8";
  TORCH_CHECK(input.device().is_cpu() && input.scalar_type() == at::kByte, op, ": input must be a uint8 CPU tensor, got ",
              input.scalar_type());
  // The same rule as quantize_u8's scale: a NaN or infinite one would make every output NaN or infinite.
  TORCH_CHECK(scale > 0 && std::isfinite(scale), op, ": scale must be positive and finite, got ", scale);
  check_zero_point(op, zero_point);
  // NCHW-contiguous, whatever the input's layout: the float ops after it are
  // the model's own, traced on contiguous tensors (a view() among them fails
  // on a channels-last one).
  const at::Tensor q = input.contiguous();
  at::Tensor x = empty_activation(q.sizes(), at::kFloat);
  const uint8_t* src = q.data_ptr<uint8_t>();
  float* dst = x.data_ptr<float>();
  at::parallel_for(0, q.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    K::dequantize_u8_f32(src + b, e - b, static_cast<float>(scale), static_cast<int32_t>(zero_point), dst + b);
  });
  return x;
}

PackedWeightInfo packed_weight_info(const at::Tensor& packed_weight) {
  const K::PackedView w = view_of("compress::packed_weight_info", packed_weight);
  PackedWeightInfo info;
  switch (w.kind()) {
    case K::PackedKind::sparse_1x4: info.format = "sparse_1x4"; break;
    case K::PackedKind::sparse_2_4: info.format = "sparse_2_4"; break;
    case K::PackedKind::depthwise: info.format = "depthwise"; break;
    default: info.format = "dense";
  }
  const std::vector<int8_t> rows = guarded("compress::packed_weight_info", [&] { return K::unpack_weight_rowmajor(w); });
  info.n = w.n();
  info.k = rows.size() / std::max<int64_t>(w.n(), 1);
  for (int8_t v : rows) info.nonzeros += v != 0;
  return info;
}

std::string kernel_isa() { return K::isa_name(K::active_isa()); }

KernelReport kernel_report() {
  KernelReport r;
  r.active = K::isa_name(K::active_isa());
  r.best = K::isa_name(K::best_isa());
  for (K::Isa isa : {K::Isa::ref, K::Isa::avx2, K::Isa::avx512vnni, K::Isa::amx})
    r.supported.emplace_back(K::isa_name(isa), K::cpu_supports(isa));
  r.threads = at::get_num_threads();
  return r;
}

}  // namespace compress::ops
