// Dynamic INT8 ops: float in, float out; activations quantized per call with
// a scale taken from the values themselves (ops.h). Linear layers, and LSTM /
// GRU layers whose input and hidden projections are such GEMMs with the gate
// arithmetic in float.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "compress/kernels/gemm.h"
#include "compress/kernels/packed.h"
#include "compress/kernels/quantize.h"
#include "compress/kernels/rnn_cell.h"
#include "compress/ops/ops.h"
#include "internal.h"

namespace compress::ops {
namespace {

using detail::empty_activation;
using detail::first_non_finite;
using detail::guarded;
using detail::torch_parallel;
using detail::runnable_view_of;
namespace K = compress::kernels;

constexpr int32_t kDynamicZeroPoint = 128;

// The scale of dynamic symmetric quantization of x (n floats); refuses a
// NaN or infinite value, which no scale represents.
float dynamic_scale(const char* op, const float* x, int64_t n) {
  const float m = K::max_abs_f32(x, n);
  TORCH_CHECK(std::isfinite(m), op, ": the input holds NaN or infinite values; dynamic quantization needs finite ones");
  return m > 0.f ? m / 127.f : 1.f;
}

// A packed weight the dynamic ops read: dense, packed for zero point 128.
K::PackedView dynamic_weight(const char* op, const at::Tensor& packed, const char* what) {
  const K::PackedView w = runnable_view_of(op, packed);
  TORCH_CHECK(w.kind() == K::PackedKind::gemm && w.a_zero_point() == kDynamicZeroPoint, op, ": ", what,
              " must be made by compress::pack_linear_int8 with input_zero_point ", kDynamicZeroPoint);
  return w;
}

// A 1-D float32 tensor of n values (per output channel), contiguous.
const float* channel_values(const char* op, const at::Tensor& t, int64_t n, const char* what) {
  TORCH_CHECK(t.dim() == 1 && t.numel() == n && t.scalar_type() == at::kFloat && t.is_contiguous(), op, ": ", what,
              " must be a contiguous 1-D float32 tensor of ", n, " values, got ", t.scalar_type(), " of shape ",
              t.sizes());
  return t.data_ptr<float>();
}

// out[m][n] (row stride ldo) = dynamic INT8 x[m][:] . W[n][:] * (s * wscale[n]) + bias[n]
// for m < M, x rows of w.k() floats; s from all of x.
void dynamic_gemm(const char* op, const float* x, int64_t M, const K::PackedView& w, const float* wscale,
                  const float* bias, bool relu, float* out, int64_t ldo) {
  const int64_t N = w.n(), Kd = w.k();
  const float s = dynamic_scale(op, x, M * Kd);
  // Codes and per-call scales live in per-thread buffers: a call at batch 1
  // allocates nothing.
  thread_local std::vector<uint8_t> codes;
  thread_local std::vector<float> scale;
  codes.resize(static_cast<size_t>(M * Kd));
  scale.resize(static_cast<size_t>(N));
  K::quantize_f32_u8(x, M * Kd, s, kDynamicZeroPoint, codes.data(), 255);
  for (int64_t n = 0; n < N; ++n) scale[n] = s * wscale[n];
  if (const int64_t i = first_non_finite(scale.data(), N); i >= 0)
    TORCH_CHECK(false, op, ": weight_scale[", i, "] gives the non-finite scale ", scale[i]);
  K::Epilogue ep;
  ep.scale = scale.data();
  ep.bias = bias;
  ep.relu = relu;
  ep.out = K::OutType::f32;
  guarded(op, [&] {
    K::gemm_u8s8s32(M, codes.data(), Kd, w, out, ldo, ep, torch_parallel());
    return 0;
  });
}

// One layer's weights and biases in one direction, as the RNN ops take them.
struct DirectionWeights {
  K::PackedView w_ih, w_hh;
  const float *scale_ih, *scale_hh, *b_ih, *b_hh;
};

// Common checks and layout of the recurrent ops. `gates`: 4 (LSTM) or 3 (GRU).
struct RecurrentSetup {
  at::Tensor x;  // time-major [T, B, I], contiguous
  int64_t T = 0, B = 0, H = 0, D = 1;
  std::vector<DirectionWeights> dirs;  // [layer * D + d]
};

RecurrentSetup recurrent_setup(const char* op, const at::Tensor& input, at::TensorList params, int64_t gates,
                               int64_t num_layers, bool bidirectional, bool batch_first) {
  TORCH_CHECK(input.device().is_cpu() && input.scalar_type() == at::kFloat && input.dim() == 3, op,
              ": input must be a 3-D float32 CPU tensor, got ", input.scalar_type(), " of shape ", input.sizes());
  TORCH_CHECK(num_layers >= 1, op, ": num_layers must be at least 1, got ", num_layers);
  RecurrentSetup s;
  s.D = bidirectional ? 2 : 1;
  TORCH_CHECK(static_cast<int64_t>(params.size()) == num_layers * s.D * 6, op, ": params must hold 6 tensors per layer ",
              "and direction (packed_ih, scale_ih, packed_hh, scale_hh, bias_ih, bias_hh), ", num_layers * s.D * 6,
              " in all, got ", params.size());
  s.x = batch_first ? input.transpose(0, 1).contiguous() : input.contiguous();
  s.T = s.x.size(0);
  s.B = s.x.size(1);
  int64_t in_features = s.x.size(2);
  for (int64_t l = 0; l < num_layers; ++l) {
    for (int64_t d = 0; d < s.D; ++d) {
      const at::Tensor* p = &params[static_cast<size_t>((l * s.D + d) * 6)];
      DirectionWeights w{dynamic_weight(op, p[0], "packed_ih"), dynamic_weight(op, p[2], "packed_hh"), nullptr,
                         nullptr, nullptr, nullptr};
      if (l == 0 && d == 0) {
        TORCH_CHECK(w.w_hh.n() % gates == 0, op, ": the hidden weight has ", w.w_hh.n(), " rows, not ", gates,
                    " x hidden_size");
        s.H = w.w_hh.n() / gates;
      }
      TORCH_CHECK(w.w_ih.n() == gates * s.H && w.w_hh.n() == gates * s.H && w.w_hh.k() == s.H, op, ": layer ", l,
                  ": weights must be [", gates * s.H, ", in] and [", gates * s.H, ", ", s.H, "], got [", w.w_ih.n(),
                  ", ", w.w_ih.k(), "] and [", w.w_hh.n(), ", ", w.w_hh.k(), "]");
      TORCH_CHECK(w.w_ih.k() == in_features, op, ": layer ", l, " reads ", w.w_ih.k(), " features, its input has ",
                  in_features);
      w.scale_ih = channel_values(op, p[1], gates * s.H, "scale_ih");
      w.scale_hh = channel_values(op, p[3], gates * s.H, "scale_hh");
      w.b_ih = channel_values(op, p[4], gates * s.H, "bias_ih");
      w.b_hh = channel_values(op, p[5], gates * s.H, "bias_hh");
      s.dirs.push_back(w);
    }
    in_features = s.D * s.H;
  }
  return s;
}

// hx[L * D, B, H] as a contiguous float tensor.
at::Tensor initial_state(const char* op, const at::Tensor& h, const RecurrentSetup& s, int64_t num_layers,
                         const char* what) {
  TORCH_CHECK(h.scalar_type() == at::kFloat && h.dim() == 3 && h.size(0) == num_layers * s.D && h.size(1) == s.B &&
                  h.size(2) == s.H,
              op, ": ", what, " must be float32 [", num_layers * s.D, ", ", s.B, ", ", s.H, "], got ",
              h.scalar_type(), " of shape ", h.sizes());
  return h.contiguous().clone();
}

// Runs every layer and direction; `step` updates one direction's state for
// one time step from its input projection gi [B, G*H] and hidden projection
// gh [B, G*H], writing h into h_out [B, H] (row stride ld_out).
template <typename Step>
at::Tensor run_recurrent(const char* op, const RecurrentSetup& s, int64_t num_layers, int64_t gates, bool batch_first,
                         Step&& step) {
  const int64_t T = s.T, B = s.B, H = s.H, G = gates * H;
  at::Tensor layer_in = s.x;
  std::vector<float> gi(static_cast<size_t>(T * B * G)), gh(static_cast<size_t>(B * G));
  for (int64_t l = 0; l < num_layers; ++l) {
    at::Tensor layer_out = empty_activation({T, B, s.D * H}, at::kFloat);
    float* out = layer_out.data_ptr<float>();
    for (int64_t d = 0; d < s.D; ++d) {
      const DirectionWeights& w = s.dirs[static_cast<size_t>(l * s.D + d)];
      // The input projections of all steps in one GEMM.
      dynamic_gemm(op, layer_in.data_ptr<float>(), T * B, w.w_ih, w.scale_ih, w.b_ih, false, gi.data(), G);
      for (int64_t i = 0; i < T; ++i) {
        const int64_t t = d == 0 ? i : T - 1 - i;
        step(l * s.D + d, gi.data() + t * B * G, gh.data(), w, out + t * B * s.D * H + d * H, s.D * H);
      }
    }
    layer_in = layer_out;
  }
  return batch_first ? layer_in.transpose(0, 1).contiguous() : layer_in;
}

}  // namespace

double dynamic_input_scale(const at::Tensor& input) {
  const at::Tensor x = input.to(at::kFloat).contiguous();
  return dynamic_scale("compress::dynamic_input_scale", x.data_ptr<float>(), x.numel());
}

at::Tensor linear_int8_dynamic(const at::Tensor& input, const at::Tensor& packed_weight, const at::Tensor& weight_scale,
                               const c10::optional<at::Tensor>& bias, bool relu) {
  const char* op = "compress::linear_int8_dynamic";
  const K::PackedView w = dynamic_weight(op, packed_weight, "packed_weight");
  TORCH_CHECK(input.device().is_cpu() && input.scalar_type() == at::kFloat, op,
              ": input must be a float32 CPU tensor, got ", input.scalar_type(), " on ", input.device());
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == w.k(), op, ": input's last dimension must be ", w.k(),
              " (in_features), got shape ", input.sizes());
  const int64_t N = w.n();
  const float* ws = channel_values(op, weight_scale, N, "weight_scale");
  const float* b = bias.has_value() && bias->defined() ? channel_values(op, *bias, N, "bias") : nullptr;
  const at::Tensor x = input.contiguous();
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = N;
  at::Tensor out = empty_activation(out_shape, at::kFloat);
  dynamic_gemm(op, x.data_ptr<float>(), x.numel() / w.k(), w, ws, b, relu, out.data_ptr<float>(), N);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_int8_dynamic(const at::Tensor& input, at::TensorList hx,
                                                                 at::TensorList params, int64_t num_layers,
                                                                 bool bidirectional, bool batch_first) {
  const char* op = "compress::lstm_int8_dynamic";
  const RecurrentSetup s = recurrent_setup(op, input, params, 4, num_layers, bidirectional, batch_first);
  TORCH_CHECK(hx.size() == 2, op, ": hx must be [h0, c0], got ", hx.size(), " tensors");
  at::Tensor h = initial_state(op, hx[0], s, num_layers, "h0"), c = initial_state(op, hx[1], s, num_layers, "c0");
  const int64_t B = s.B, H = s.H;
  auto step = [&](int64_t ld, const float* gi, float* gh, const DirectionWeights& w, float* h_out, int64_t ld_out) {
    float* hp = h.data_ptr<float>() + ld * B * H;
    float* cp = c.data_ptr<float>() + ld * B * H;
    dynamic_gemm(op, hp, B, w.w_hh, w.scale_hh, w.b_hh, false, gh, 4 * H);
    for (int64_t b = 0; b < B; ++b) {
      K::lstm_cell_f32(gi + b * 4 * H, gh + b * 4 * H, H, cp + b * H, hp + b * H);
      std::copy(hp + b * H, hp + (b + 1) * H, h_out + b * ld_out);
    }
  };
  at::Tensor out = run_recurrent(op, s, num_layers, 4, batch_first, step);
  return {out, h, c};
}

std::tuple<at::Tensor, at::Tensor> gru_int8_dynamic(const at::Tensor& input, const at::Tensor& hx,
                                                    at::TensorList params, int64_t num_layers, bool bidirectional,
                                                    bool batch_first) {
  const char* op = "compress::gru_int8_dynamic";
  const RecurrentSetup s = recurrent_setup(op, input, params, 3, num_layers, bidirectional, batch_first);
  at::Tensor h = initial_state(op, hx, s, num_layers, "hx");
  const int64_t B = s.B, H = s.H;
  auto step = [&](int64_t ld, const float* gi, float* gh, const DirectionWeights& w, float* h_out, int64_t ld_out) {
    float* hp = h.data_ptr<float>() + ld * B * H;
    dynamic_gemm(op, hp, B, w.w_hh, w.scale_hh, w.b_hh, false, gh, 3 * H);
    for (int64_t b = 0; b < B; ++b) {
      K::gru_cell_f32(gi + b * 3 * H, gh + b * 3 * H, H, hp + b * H);
      std::copy(hp + b * H, hp + (b + 1) * H, h_out + b * ld_out);
    }
  };
  at::Tensor out = run_recurrent(op, s, num_layers, 3, batch_first, step);
  return {out, h};
}

}  // namespace compress::ops
