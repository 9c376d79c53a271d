#pragma once
// The float gate arithmetic of one recurrent step for one sample, given the
// input projection gi and the hidden projection gh (biases included), in
// torch.nn's gate order:
//   LSTM (gi, gh: [4H] as i, f, g, o):
//     c = sigmoid(f) * c + sigmoid(i) * tanh(g);  h = sigmoid(o) * tanh(c)
//   GRU (gi, gh: [3H] as r, z, n):
//     r = sigmoid(gi_r + gh_r); z = sigmoid(gi_z + gh_z);
//     n = tanh(gi_n + r * gh_n); h = (1 - z) * n + z * h
// On AVX2 eight channels at a time with a polynomial exp (relative error
// below 2e-7), the rest with libm: results agree with libm's to ~1e-6, not
// bit for bit.
#include <cstdint>

namespace compress::kernels {

void lstm_cell_f32(const float* gi, const float* gh, int64_t hidden, float* c, float* h);
void gru_cell_f32(const float* gi, const float* gh, int64_t hidden, float* h);

}  // namespace compress::kernels
