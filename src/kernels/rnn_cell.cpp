// Recurrent cell arithmetic (rnn_cell.h): AVX2 for whole blocks of 8
// channels where the CPU has it, libm for the rest.
#include "compress/kernels/rnn_cell.h"

#include <cmath>

#include "compress/kernels/isa.h"
#include "internal.h"

namespace compress::kernels {

namespace {
inline float sigmoid(float v) { return 1.f / (1.f + std::exp(-v)); }
}  // namespace

void lstm_cell_f32(const float* gi, const float* gh, int64_t H, float* c, float* h) {
  const int64_t done = cpu_supports(Isa::avx2) ? detail::lstm_cell_f32_avx2(gi, gh, H, c, h) : 0;
  for (int64_t j = done; j < H; ++j) {
    const float i = sigmoid(gi[j] + gh[j]), f = sigmoid(gi[H + j] + gh[H + j]);
    const float g = std::tanh(gi[2 * H + j] + gh[2 * H + j]), o = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
    c[j] = f * c[j] + i * g;
    h[j] = o * std::tanh(c[j]);
  }
}

void gru_cell_f32(const float* gi, const float* gh, int64_t H, float* h) {
  const int64_t done = cpu_supports(Isa::avx2) ? detail::gru_cell_f32_avx2(gi, gh, H, h) : 0;
  for (int64_t j = done; j < H; ++j) {
    const float r = sigmoid(gi[j] + gh[j]), z = sigmoid(gi[H + j] + gh[H + j]);
    const float n = std::tanh(gi[2 * H + j] + r * gh[2 * H + j]);
    h[j] = (1.f - z) * n + z * h[j];
  }
}

}  // namespace compress::kernels
