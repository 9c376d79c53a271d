// Streaming observers and the four calibrators (observer.h).
#include "compress/quantization/observer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "compress/error.h"

namespace compress::quant {

Method parse_method(const std::string& name) {
  static const std::vector<std::string> names = {"minmax", "percentile", "entropy", "mse"};
  for (size_t i = 0; i < names.size(); ++i)
    if (name == names[i]) return static_cast<Method>(i);
  std::string close = closest_name(name, names);
  bad_input("unknown calibration method '" + name + "' (minmax, percentile, entropy or mse" +
            (close.empty() ? ")" : "; did you mean '" + close + "'?)"));
}

const char* method_name(Method m) {
  switch (m) {
    case Method::MinMax: return "minmax";
    case Method::Percentile: return "percentile";
    case Method::Entropy: return "entropy";
    case Method::Mse: return "mse";
  }
  return "?";
}

QuantParams affine_u8(Range r, int64_t quant_max) {
  double lo = std::min(r.lo, 0.0), hi = std::max(r.hi, 0.0);
  QuantParams p;
  p.scale = (hi - lo) / static_cast<double>(quant_max);
  if (!(p.scale > 1e-12) || !std::isfinite(p.scale)) p.scale = std::isfinite(p.scale) ? 1e-8 : 1.0;
  p.zero_point = std::clamp<int64_t>(static_cast<int64_t>(std::nearbyint(-lo / p.scale)), 0, quant_max);
  return p;
}

// ---- the streaming histogram ----

void Observer::widen_to(double new_min, double new_max) {
  double hi = lo_ + kBins * width_;
  if (new_min >= lo_ && new_max < hi) return;
  // New bins are whole multiples k of the old width, starting t old bins
  // lower: old bin i lands entirely in new bin (i + t) / k, so merging is exact.
  double t = new_min < lo_ ? std::ceil((lo_ - new_min) / width_) : 0.0;
  double new_lo = lo_ - t * width_;
  double need = std::max(new_max, hi) - new_lo;
  double k = std::max(1.0, std::ceil(need / (kBins * width_) * (1 + 1e-9)));
  if (new_lo + kBins * k * width_ <= std::max(new_max, hi)) k += 1;  // rounding of the line above
  std::vector<double> merged(kBins, 0.0);
  for (int i = 0; i < kBins; ++i) {
    if (bins_[i] == 0) continue;
    auto j = static_cast<int64_t>((i + t) / k);
    merged[static_cast<size_t>(std::min<int64_t>(j, kBins - 1))] += bins_[i];
  }
  bins_ = std::move(merged);
  lo_ = new_lo;
  width_ *= k;
}

void Observer::observe(const at::Tensor& batch) {
  at::Tensor x = batch.detach().to(at::kFloat).reshape({-1});
  at::Tensor finite = at::isfinite(x);
  int64_t n_finite = finite.sum().item<int64_t>();
  non_finite_ += x.numel() - n_finite;
  if (n_finite == 0) return;
  if (n_finite != x.numel()) x = x.masked_select(finite);
  double bmin = x.min().item<double>(), bmax = x.max().item<double>();
  if (count_ == 0) {
    bins_.assign(kBins, 0.0);
    min_ = bmin;
    max_ = bmax;
    lo_ = bmin;
    width_ = (bmax - bmin) / kBins;
    if (!(width_ > 0)) width_ = std::max(std::abs(bmin) * 1e-7, 1e-12);
    width_ *= 1 + 1e-9;  // keeps bmax inside the last bin
  } else {
    min_ = std::min(min_, bmin);
    max_ = std::max(max_, bmax);
    widen_to(min_, max_);
  }
  at::Tensor idx = ((x.to(at::kDouble) - lo_) / width_).floor().clamp(0, kBins - 1).to(at::kLong);
  at::Tensor counts = at::bincount(idx, {}, kBins).to(at::kDouble).contiguous();
  const double* c = counts.data_ptr<double>();
  for (int i = 0; i < kBins; ++i) bins_[i] += c[i];
  count_ += n_finite;
  zeros_ += (x == 0).sum().item<int64_t>();
}

Range Observer::range(Method method, double percentile, int64_t quant_max) const {
  if (empty()) failure("observer: no finite value was observed, so there is no range to calibrate");
  switch (method) {
    case Method::MinMax: return minmax_range();
    case Method::Percentile: return percentile_range(percentile);
    case Method::Entropy: return entropy_range();
    case Method::Mse: return mse_range(quant_max);
  }
  return minmax_range();
}

Range Observer::minmax_range() const { return {min_, max_}; }

Range Observer::percentile_range(double p) const {
  if (!(p > 50 && p <= 100)) bad_input("percentile must be in (50, 100], got " + std::to_string(p));
  double total = 0;
  for (double b : bins_) total += b;
  // The value below which `mass` of the counts lie, interpolating inside a bin.
  auto quantile = [&](double mass) {
    double seen = 0;
    for (int i = 0; i < kBins; ++i) {
      if (seen + bins_[i] >= mass && bins_[i] > 0) {
        double frac = (mass - seen) / bins_[i];
        return lo_ + (i + frac) * width_;
      }
      seen += bins_[i];
    }
    return lo_ + kBins * width_;
  };
  double lo = quantile(total * (100 - p) / 100), hi = quantile(total * p / 100);
  return {std::clamp(lo, min_, max_), std::clamp(hi, min_, max_)};
}

namespace {

// The histogram re-binned over [0, top) in `n` bins, of x itself (one-sided)
// or of |x|; each source bin's count spread evenly over what it overlaps.
std::vector<double> magnitude_histogram(const std::vector<double>& bins, double lo, double width, double top,
                                        int n, bool absolute) {
  std::vector<double> out(static_cast<size_t>(n), 0.0);
  double w = top / n;
  auto spread = [&](double a, double b, double count) {  // [a, b) with 0 <= a < b, count spread over it
    if (count <= 0 || b <= a) return;
    double density = count / (b - a);
    for (double x = a; x < b;) {
      auto j = std::min<int64_t>(static_cast<int64_t>(x / w), n - 1);
      double end = std::min(b, (j + 1) * w);
      if (j == n - 1 || end <= x) end = b;
      out[static_cast<size_t>(j)] += density * (end - x);
      x = end;
    }
  };
  for (size_t i = 0; i < bins.size(); ++i) {
    double a = lo + static_cast<double>(i) * width, b = a + width, c = bins[i];
    if (c == 0) continue;
    if (!absolute) {
      spread(std::max(a, 0.0), std::max(b, 0.0), b <= 0 ? 0 : c * (b - std::max(a, 0.0)) / (b - a));
    } else if (a >= 0) {
      spread(a, b, c);
    } else if (b <= 0) {
      spread(-b, -a, c);
    } else {
      spread(0, b, c * b / (b - a));
      spread(0, -a, c * -a / (b - a));
    }
  }
  return out;
}

// TensorRT's threshold search: the number of bins i (levels <= i <= n) whose
// clipped histogram P and its `levels`-level quantization Q are closest in KL.
int kl_best_bins(const std::vector<double>& hist, int levels) {
  const int n = static_cast<int>(hist.size());
  double best = std::numeric_limits<double>::infinity();
  int best_i = n;
  std::vector<double> p, q;
  for (int i = levels; i <= n; ++i) {
    p.assign(hist.begin(), hist.begin() + i);
    for (int j = i; j < n; ++j) p[static_cast<size_t>(i - 1)] += hist[static_cast<size_t>(j)];
    q.assign(static_cast<size_t>(i), 0.0);
    // Each of `levels` groups of bins keeps its total, spread evenly over its non-empty bins.
    for (int g = 0; g < levels; ++g) {
      int start = static_cast<int>(static_cast<int64_t>(g) * i / levels);
      int stop = static_cast<int>(static_cast<int64_t>(g + 1) * i / levels);
      double mass = 0;
      int nonzero = 0;
      for (int b = start; b < stop; ++b) {
        mass += hist[static_cast<size_t>(b)];
        nonzero += p[static_cast<size_t>(b)] > 0;
      }
      if (nonzero == 0) continue;
      for (int b = start; b < stop; ++b)
        if (p[static_cast<size_t>(b)] > 0) q[static_cast<size_t>(b)] = mass / nonzero;
    }
    double sp = 0, sq = 0;
    for (int b = 0; b < i; ++b) {
      sp += p[static_cast<size_t>(b)];
      sq += q[static_cast<size_t>(b)];
    }
    if (sp <= 0) continue;
    double kl = 0;
    for (int b = 0; b < i; ++b) {
      double pb = p[static_cast<size_t>(b)] / sp;
      if (pb <= 0) continue;
      double qb = sq > 0 ? q[static_cast<size_t>(b)] / sq : 0;
      kl += pb * std::log(pb / std::max(qb, 1e-12));
    }
    if (kl < best) {
      best = kl;
      best_i = i;
    }
  }
  return best_i;
}

}  // namespace

Range Observer::entropy_range() const {
  bool one_sided = min_ >= 0;
  double top = one_sided ? max_ : std::max(std::abs(min_), std::abs(max_));
  if (!(top > 0)) return minmax_range();
  std::vector<double> source = bins_;
  auto zero_bin = static_cast<int64_t>(std::floor((0 - lo_) / width_));
  if (zero_bin >= 0 && zero_bin < kBins)
    source[static_cast<size_t>(zero_bin)] = std::max(0.0, source[static_cast<size_t>(zero_bin)] - static_cast<double>(zeros_));
  std::vector<double> hist = magnitude_histogram(source, lo_, width_, top, kBins, !one_sided);
  int i = kl_best_bins(hist, one_sided ? 256 : 128);
  double t = i * (top / kBins);  // the edge of the last kept bin
  if (one_sided) return {min_, std::min(t, max_)};
  return {std::max(-t, min_), std::min(t, max_)};
}

Range Observer::mse_range(int64_t quant_max) const {
  double lo0 = std::min(min_, 0.0), hi0 = std::max(max_, 0.0);
  Range best{lo0, hi0};
  double best_err = std::numeric_limits<double>::infinity();
  for (int step = 1; step <= 200; ++step) {
    double a = step / 200.0;
    Range r{lo0 * a, hi0 * a};
    QuantParams qp = affine_u8(r, quant_max);
    double qlo = qp.scale * (0 - qp.zero_point), qhi = qp.scale * (static_cast<double>(quant_max) - qp.zero_point);
    double err = 0;
    // Inside the range: rounding noise scale^2 / 12; outside: the clipping error.
    for (int i = 0; i < kBins; ++i) {
      double c = bins_[i];
      if (c == 0) continue;
      double x = lo_ + (i + 0.5) * width_;
      if (x < qlo) err += c * (x - qlo) * (x - qlo);
      else if (x > qhi) err += c * (x - qhi) * (x - qhi);
      else err += c * qp.scale * qp.scale / 12;
    }
    if (err < best_err) {
      best_err = err;
      best = r;
    }
  }
  return best;
}

// ---- weights, SQNR ----

QuantizedWeight quantize_weight_per_channel(const at::Tensor& w) {
  at::Tensor wf = w.detach().to(at::kFloat).contiguous();
  at::Tensor amax = wf.reshape({wf.size(0), -1}).abs().amax(1);
  at::Tensor scale = at::where(amax > 0, amax / 127.0, at::ones_like(amax));
  std::vector<int64_t> bshape(static_cast<size_t>(wf.dim()), 1);
  bshape[0] = wf.size(0);
  at::Tensor q = (wf / scale.reshape(bshape)).round().clamp(-127, 127).to(at::kChar);
  return {q, scale.contiguous()};
}

void Sqnr::add(const at::Tensor& ref, const at::Tensor& x) {
  at::Tensor r = ref.detach().to(at::kDouble), d = r - x.detach().to(at::kDouble);
  signal_ += (r * r).sum().item<double>();
  noise_ += (d * d).sum().item<double>();
}

double Sqnr::db() const {
  if (noise_ == 0) return std::numeric_limits<double>::infinity();
  if (signal_ == 0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal_ / noise_);
}

}  // namespace compress::quant
