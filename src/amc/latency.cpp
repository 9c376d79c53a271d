#include "compress/amc/latency.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>

#include "compress/error.h"

namespace compress::amc {

namespace {

int64_t channels_at(int64_t full, int step, int grid) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(full) * (step + 1) / grid));
}

double median_ms(const std::function<void()>& call, int repeats) {
  call();  // allocator and caches
  call();
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    call();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

// One FP32 call of the layer at these widths.
double time_layer(const LayerShape& l, int64_t in, int64_t out, const LatencyOptions& o) {
  if (l.linear) {
    at::Tensor x = at::randn({o.batch, in}), w = at::randn({out, in}), b = at::randn({out});
    return median_ms([&] { at::linear(x, w, b); }, o.repeats);
  }
  const int64_t groups = l.depthwise ? out : 1;
  if (l.depthwise) in = out;
  at::Tensor x = at::randn({o.batch, in, l.input_hw[0], l.input_hw[1]});
  at::Tensor w = at::randn({out, in / groups, l.kernel[0], l.kernel[1]}), b = at::randn({out});
  return median_ms([&] { at::conv2d(x, w, b, l.stride, l.padding, l.dilation, groups); }, o.repeats);
}

}  // namespace

LatencyTable LatencyTable::measure(const std::vector<LayerShape>& layers, const LatencyOptions& options) {
  if (options.grid < 1 || options.repeats < 1 || options.batch < 1 || options.threads < 1)
    bad_input("latency table: grid, repeats, batch and threads must be positive");
  if (options.int8) bad_input("latency table: INT8 timing is not implemented yet (use FP32)");
  LatencyTable table;
  table.options_ = options;
  const int before = at::get_num_threads();
  at::set_num_threads(options.threads);
  torch::NoGradGuard no_grad;
  const int g = options.grid;
  for (const LayerShape& l : layers) {
    LayerTable t;
    t.layer = l;
    t.ms.assign(static_cast<size_t>(g), std::vector<double>(static_cast<size_t>(g), 0.0));
    for (int o = 0; o < g; ++o) {
      for (int i = 0; i < g; ++i) {
        if (l.depthwise && i != o) continue;
        t.ms[i][o] = time_layer(l, channels_at(l.in, i, g), channels_at(l.out, o, g), options);
      }
    }
    // Never faster with more channels (noise on a shared machine).
    for (int i = 0; i < g; ++i) {
      for (int o = 0; o < g; ++o) {
        if (l.depthwise) {
          if (i == o && i > 0) t.ms[i][o] = std::max(t.ms[i][o], t.ms[i - 1][o - 1]);
          continue;
        }
        if (i > 0) t.ms[i][o] = std::max(t.ms[i][o], t.ms[i - 1][o]);
        if (o > 0) t.ms[i][o] = std::max(t.ms[i][o], t.ms[i][o - 1]);
      }
    }
    table.layers_.push_back(std::move(t));
  }
  at::set_num_threads(before);
  return table;
}

double LatencyTable::layer_ms(size_t i, double keep_in, double keep_out) const {
  const LayerTable& t = layers_.at(i);
  const int g = options_.grid;
  // Grid point k holds fraction (k + 1) / g; below 1/g reads the first point.
  auto locate = [&](double f, int& lo, double& w) {
    double p = std::clamp(f * g - 1.0, 0.0, static_cast<double>(g - 1));
    lo = std::min(static_cast<int>(std::floor(p)), g - 1);
    w = p - lo;
  };
  int o0, i0;
  double wo, wi;
  locate(keep_out, o0, wo);
  const int o1 = std::min(o0 + 1, g - 1);
  if (t.layer.depthwise) return (1 - wo) * t.ms[o0][o0] + wo * t.ms[o1][o1];
  locate(keep_in, i0, wi);
  const int i1 = std::min(i0 + 1, g - 1);
  return (1 - wi) * ((1 - wo) * t.ms[i0][o0] + wo * t.ms[i0][o1]) + wi * ((1 - wo) * t.ms[i1][o0] + wo * t.ms[i1][o1]);
}

nlohmann::json LatencyTable::to_json() const {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerTable& t : layers_)
    layers.push_back({{"name", t.layer.name}, {"in", t.layer.in}, {"out", t.layer.out}, {"depthwise", t.layer.depthwise},
                      {"full_ms", t.ms.back().back()}, {"ms", t.ms}});
  return {{"batch", options_.batch}, {"threads", options_.threads}, {"int8", options_.int8}, {"grid", options_.grid},
          {"overhead_ms", overhead_ms_}, {"layers", layers}};
}

}  // namespace compress::amc
