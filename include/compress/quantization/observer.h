#pragma once
// Observers and calibrators for post-training static quantization.
//
// An Observer sees one value's tensors batch after batch and keeps only
// streaming statistics: the running min / max and a fixed-size histogram
// over a range that widens (by merging whole bins) when a batch falls
// outside it. It never holds an activation. From those statistics a
// calibrator picks the real range [lo, hi] that the uint8 codes will cover:
//
//   minmax      the observed min and max
//   percentile  the p-th and (100 - p)-th percentiles (p = 99.99 by default)
//   entropy     TensorRT's KL calibration: the threshold whose quantized
//               histogram loses the least information (KL(P || Q)); a
//               one-sided range [0, T] for non-negative data (256 levels),
//               a symmetric [-T, T] of |x| otherwise (128 levels). Exact
//               zeros (ReLU's spike) are left out of P and Q: zero is
//               exact at any threshold, and the spike would otherwise
//               drag T down (a group holding it spreads its mass)
//   mse         the range, a scaled-down copy of [min, max], that minimises
//               the expected squared quantization error (clipping + rounding)
//
// Every range is widened to contain 0 (so that zero, padding and ReLU
// floors are exact), and becomes a per-tensor affine uint8 scale and zero
// point (affine_u8). Weights use per-output-channel symmetric int8
// (quantize_weight_per_channel). See docs/quantization.md.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace compress::quant {

enum class Method { MinMax, Percentile, Entropy, Mse };

// "minmax" | "percentile" | "entropy" | "mse"; Error(BadInput) naming the closest otherwise.
Method parse_method(const std::string& name);
const char* method_name(Method m);

// A real interval [lo, hi] (lo <= 0 <= hi once widened to contain zero).
struct Range {
  double lo = 0, hi = 0;
};

// Real value = scale * (code - zero_point), codes 0..255 (0..127 with
// 7-bit activations: QuantizeOptions::activations).
struct QuantParams {
  double scale = 1.0;
  int64_t zero_point = 0;
};

// The affine parameters of codes 0..quant_max covering `r` (widened to
// contain 0). A range of width zero gets a tiny positive scale, so every
// value maps to zero.
QuantParams affine_u8(Range r, int64_t quant_max = 255);

// Streaming statistics of one value. Bins: 2048 over [lo, lo + bins * width).
class Observer {
 public:
  static constexpr int kBins = 2048;

  // Adds a batch (any shape, floating point). NaN and Inf are ignored
  // (counted in `non_finite()`).
  void observe(const at::Tensor& x);

  bool empty() const { return count_ == 0; }
  int64_t count() const { return count_; }
  int64_t non_finite() const { return non_finite_; }
  int64_t zeros() const { return zeros_; }
  double min() const { return min_; }
  double max() const { return max_; }

  // The calibrated range; `percentile` is used by Method::Percentile only,
  // `quant_max` (the codes' top: 255, or 127 for 7-bit) by Method::Mse only.
  // Error(Failure) when nothing was observed.
  Range range(Method method, double percentile = 99.99, int64_t quant_max = 255) const;

  // The pieces, for tests and reports.
  Range minmax_range() const;
  Range percentile_range(double p) const;
  Range entropy_range() const;
  Range mse_range(int64_t quant_max = 255) const;

  const std::vector<double>& histogram() const { return bins_; }
  double hist_lo() const { return lo_; }
  double bin_width() const { return width_; }

 private:
  void widen_to(double new_min, double new_max);

  std::vector<double> bins_;
  double lo_ = 0, width_ = 0;
  double min_ = 0, max_ = 0;
  int64_t count_ = 0, non_finite_ = 0, zeros_ = 0;
};

// Per-output-channel symmetric int8 (dim 0): scale[c] = max|w[c]| / 127,
// q = clamp(round(w / scale), -127, 127). A channel of zeros gets scale 1.
struct QuantizedWeight {
  at::Tensor q;      // int8, the weight's shape
  at::Tensor scale;  // float32 [out_channels]
};
QuantizedWeight quantize_weight_per_channel(const at::Tensor& w);

// Signal-to-quantization-noise ratio in dB: 10 log10(sum ref^2 / sum (ref - x)^2),
// accumulated over several calls. Infinite when the two agree exactly.
class Sqnr {
 public:
  void add(const at::Tensor& ref, const at::Tensor& x);
  double db() const;

 private:
  double signal_ = 0, noise_ = 0;
};

}  // namespace compress::quant
