// The compress op namespace: schemas and their CPU implementations.
// Loading this library (C++ link, or torch.ops.load_library in Python) is all
// a model saved with these ops needs.
#include <torch/library.h>

#include "compress/cpu_block_cache.h"
#include "compress/ops/ops.h"

TORCH_LIBRARY(compress, m) {
  m.def("version() -> int", []() -> int64_t { return 1; });
  m.def("kernel_isa() -> str", &compress::ops::kernel_isa);
  m.def("pack_linear_int8(Tensor weight, int input_zero_point, str layout=\"auto\") -> Tensor",
        &compress::ops::pack_linear_int8);
  m.def("pack_conv2d_int8(Tensor weight, int input_zero_point, int groups=1, str layout=\"auto\") -> Tensor",
        &compress::ops::pack_conv2d_int8);
  m.def("packed_weight_for_storage(Tensor packed_weight) -> Tensor", &compress::ops::packed_weight_for_storage);
  m.def("packed_weight_for_cpu(Tensor packed_weight) -> Tensor", &compress::ops::packed_weight_for_cpu);
  m.def("pack_linear_int8_sparse(Tensor weight, Tensor mask, int input_zero_point, str format) -> Tensor",
        &compress::ops::pack_linear_int8_sparse);
  m.def("linear_int8(Tensor input, Tensor packed_weight, Tensor scale, Tensor? bias, int output_zero_point, "
        "bool relu, ScalarType output_dtype, Tensor? residual=None, float residual_scale=1.0, "
        "int residual_zero_point=0, int output_quant_max=255) -> Tensor",
        &compress::ops::linear_int8);
  m.def("linear_int8_sparse(Tensor input, Tensor packed_weight, Tensor scale, Tensor? bias, "
        "int output_zero_point, bool relu, ScalarType output_dtype, Tensor? residual=None, "
        "float residual_scale=1.0, int residual_zero_point=0, int output_quant_max=255) -> Tensor",
        &compress::ops::linear_int8_sparse);
  m.def("linear_int8_dynamic(Tensor input, Tensor packed_weight, Tensor weight_scale, Tensor? bias, bool relu=False) "
        "-> Tensor",
        &compress::ops::linear_int8_dynamic);
  m.def("lstm_int8_dynamic(Tensor input, Tensor[] hx, Tensor[] params, int num_layers, bool bidirectional, "
        "bool batch_first) -> (Tensor, Tensor, Tensor)",
        &compress::ops::lstm_int8_dynamic);
  m.def("gru_int8_dynamic(Tensor input, Tensor hx, Tensor[] params, int num_layers, bool bidirectional, "
        "bool batch_first) -> (Tensor, Tensor)",
        &compress::ops::gru_int8_dynamic);
  m.def("conv2d_int8(Tensor input, Tensor packed_weight, Tensor scale, Tensor? bias, int[2] stride, "
        "int[2] padding, int[2] dilation, int output_zero_point, bool relu, ScalarType output_dtype, "
        "Tensor? residual=None, float residual_scale=1.0, int residual_zero_point=0, int output_quant_max=255) -> Tensor",
        &compress::ops::conv2d_int8);
  m.def("pack_conv2d_int8_sparse(Tensor weight, Tensor mask, int input_zero_point, str format) -> Tensor",
        &compress::ops::pack_conv2d_int8_sparse);
  m.def("conv2d_int8_sparse(Tensor input, Tensor packed_weight, Tensor scale, Tensor? bias, int[2] stride, "
        "int[2] padding, int[2] dilation, int output_zero_point, bool relu, ScalarType output_dtype, "
        "Tensor? residual=None, float residual_scale=1.0, int residual_zero_point=0, int output_quant_max=255) -> Tensor",
        &compress::ops::conv2d_int8_sparse);
  m.def("max_pool2d_u8(Tensor input, int[] kernel_size, int[] stride=[], int[] padding=[0], int[] dilation=[1], "
        "bool ceil_mode=False) -> Tensor",
        &compress::ops::max_pool2d_u8);
  m.def("quantize_u8(Tensor input, float scale, int zero_point, int quant_max=255) -> Tensor", &compress::ops::quantize_u8);
  m.def("quantize_u8_nhwc(Tensor input, float scale, int zero_point, int quant_max=255) -> Tensor",
        &compress::ops::quantize_u8_nhwc);
  m.def("dequantize_u8(Tensor input, float scale, int zero_point) -> Tensor", &compress::ops::dequantize_u8);
  // The CPU block cache the ops' outputs come from (compress/cpu_block_cache.h),
  // for Python: its limit, the free bytes it holds, whether it serves every
  // CPU tensor; and a new limit (0: hand every held block back now, cache no more).
  m.def("cpu_block_cache_stats() -> (int limit_bytes, int cached_bytes, bool installed)", []() {
    return std::make_tuple(static_cast<int64_t>(compress::cpu_block_cache_limit_bytes()),
                           static_cast<int64_t>(compress::cpu_block_cache_cached_bytes()),
                           compress::cpu_block_cache_installed());
  });
  m.def("set_cpu_block_cache_limit(int limit_bytes) -> ()", [](int64_t limit_bytes) {
    TORCH_CHECK(limit_bytes >= 0, "set_cpu_block_cache_limit: limit_bytes must not be negative, got ", limit_bytes);
    compress::set_cpu_block_cache_limit_bytes(static_cast<size_t>(limit_bytes));
  });
}
