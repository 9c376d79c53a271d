#include "compress/analysis/latency.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <functional>

#include "compress/analysis/inputs.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ops/ops.h"
#include "compress/threads.h"

namespace compress::latency {

namespace {

int64_t channels_at(int64_t full, int step, int grid) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(full) * (step + 1) / grid));
}

// CPU time of the calling thread (one thread) or of the whole process (more).
double cpu_ms(bool whole_process) {
  timespec ts{};
  clock_gettime(whole_process ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

double median_ms(const std::function<void()>& call, int repeats, int threads) {
  return time_call_ms(call, repeats, 1, threads);
}

}  // namespace

double time_call_ms(const std::function<void()>& call, int repeats, int rounds, int threads) {
  call();  // allocator and caches
  call();
  double best = 0;
  for (int round = 0; round < rounds; ++round) {
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
      if (threads == 1) {
        const double start = cpu_ms(false);
        call();
        t.push_back(cpu_ms(false) - start);
      } else {
        auto start = std::chrono::steady_clock::now();
        call();
        t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      }
    }
    std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
    best = round == 0 ? t[t.size() / 2] : std::min(best, t[t.size() / 2]);
  }
  return best;
}

namespace {

// The INT8 kernels as a quantized model runs them: uint8 activations (NHWC
// for convolutions) in, uint8 out with a fused ReLU, weights packed for this CPU.
double time_layer_int8(const LayerShape& l, int64_t in, int64_t out, const LatencyOptions& o) {
  at::Tensor scale = at::full({out}, 0.01f), bias = at::zeros({out});
  if (l.linear) {
    at::Tensor x = at::randint(0, 256, {o.batch, in}, at::kByte);
    at::Tensor packed = ops::pack_linear_int8(at::randint(-127, 128, {out, in}, at::kChar), 128, "auto");
    return median_ms([&] { ops::linear_int8(x, packed, scale, bias, 0, true, at::kByte, c10::nullopt, 0, 0); },
                     o.repeats, o.threads);
  }
  const int64_t groups = l.depthwise ? out : l.groups;
  if (l.depthwise) in = out;
  at::Tensor x = at::randint(0, 256, {o.batch, l.input_hw[0], l.input_hw[1], in}, at::kByte);
  at::Tensor w = at::randint(-127, 128, {out, in / groups, l.kernel[0], l.kernel[1]}, at::kChar);
  at::Tensor packed = ops::pack_conv2d_int8(w, 128, groups, "auto");
  return median_ms([&] {
    ops::conv2d_int8(x, packed, scale, bias, l.stride, l.padding, l.dilation, 0, true, at::kByte, c10::nullopt, 0, 0);
  }, o.repeats, o.threads);
}

// One FP32 call of the layer at these widths.
double time_layer(const LayerShape& l, int64_t in, int64_t out, const LatencyOptions& o) {
  if (o.int8) return time_layer_int8(l, in, out, o);
  if (l.linear) {
    at::Tensor x = at::randn({o.batch, in}), w = at::randn({out, in}), b = at::randn({out});
    return median_ms([&] { at::linear(x, w, b); }, o.repeats, o.threads);
  }
  const int64_t groups = l.depthwise ? out : l.groups;
  if (l.depthwise) in = out;
  at::Tensor x = at::randn({o.batch, in, l.input_hw[0], l.input_hw[1]});
  at::Tensor w = at::randn({out, in / groups, l.kernel[0], l.kernel[1]}), b = at::randn({out});
  return median_ms([&] { at::conv2d(x, w, b, l.stride, l.padding, l.dilation, groups); }, o.repeats, o.threads);
}

}  // namespace

LatencyTable LatencyTable::measure(const std::vector<LayerShape>& layers, const LatencyOptions& options) {
  if (options.grid < 1 || options.repeats < 1 || options.rounds < 1 || options.batch < 1 || options.threads < 1)
    bad_input("latency table: grid, repeats, rounds, batch and threads must be positive");
  LatencyTable table;
  table.options_ = options;
  compress::ScopedThreads threads(options.threads);
  torch::NoGradGuard no_grad;
  const int g = options.grid;
  for (const LayerShape& l : layers) {
    LayerTable t;
    t.layer = l;
    t.ms.assign(static_cast<size_t>(g), std::vector<double>(static_cast<size_t>(g), 0.0));
    table.layers_.push_back(std::move(t));
  }
  for (int round = 0; round < options.rounds; ++round) {
    for (LayerTable& t : table.layers_) {
      const LayerShape& l = t.layer;
      for (int o = 0; o < g; ++o) {
        for (int i = 0; i < g; ++i) {
          if (l.depthwise && i != o) continue;
          // A grouped layer keeps its groups: widths in whole multiples of them.
          auto width = [&](int64_t full, int k) { return channels_at(full / l.groups, k, g) * l.groups; };
          const double ms = time_layer(l, width(l.in, i), width(l.out, o), options);
          t.ms[i][o] = round == 0 ? ms : std::min(t.ms[i][o], ms);
        }
      }
    }
  }
  // Never faster with more channels: each entry becomes the smallest time
  // at its widths or more (a minimum from the top), since noise on a shared
  // machine only ever adds time; a running maximum from the bottom would
  // spread one spoiled entry over every wider one.
  for (LayerTable& t : table.layers_) {
    for (int i = g - 1; i >= 0; --i) {
      for (int o = g - 1; o >= 0; --o) {
        if (t.layer.depthwise) {
          if (i == o && i + 1 < g) t.ms[i][o] = std::min(t.ms[i][o], t.ms[i + 1][o + 1]);
          continue;
        }
        if (i + 1 < g) t.ms[i][o] = std::min(t.ms[i][o], t.ms[i + 1][o]);
        if (o + 1 < g) t.ms[i][o] = std::min(t.ms[i][o], t.ms[i][o + 1]);
      }
    }
  }
  return table;
}

LatencyTable::LatencyTable(std::vector<LayerTable> layers, LatencyOptions options)
    : layers_(std::move(layers)), options_(options) {
  const size_t g = static_cast<size_t>(std::max(options_.grid, 1));
  for (const LayerTable& t : layers_) {
    bool square = t.ms.size() == g;
    for (const auto& row : t.ms) square = square && row.size() == g;
    if (!square) bad_input("latency table: layer '" + t.layer.name + "' needs " + std::to_string(g) + " x " + std::to_string(g) + " times");
  }
}

double LatencyTable::layers_ms_at_full_width() const {
  double total = 0;
  for (size_t i = 0; i < layers_.size(); ++i) total += layer_ms(i, 1, 1);
  return total;
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

void LatencyTable::set_overhead_ms(double unpruned, double smallest) {
  if (!std::isfinite(unpruned) || !std::isfinite(smallest)) bad_input("latency table: an overhead that is not finite");
  if (smallest > unpruned) unpruned = smallest = (unpruned + smallest) / 2;
  overhead_ms_ = unpruned;
  overhead_smallest_ms_ = smallest;
}

nlohmann::json LatencyTable::to_json() const {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerTable& t : layers_) {
    const LayerShape& l = t.layer;
    layers.push_back({{"name", l.name}, {"linear", l.linear}, {"in", l.in}, {"out", l.out}, {"depthwise", l.depthwise},
                      {"groups", l.groups}, {"input_hw", l.input_hw}, {"kernel", l.kernel}, {"stride", l.stride}, {"padding", l.padding},
                      {"dilation", l.dilation}, {"full_ms", t.ms.back().back()}, {"ms", t.ms}});
  }
  return {{"batch", options_.batch}, {"threads", options_.threads}, {"int8", options_.int8}, {"grid", options_.grid},
          {"overhead_ms", overhead_ms_}, {"overhead_smallest_ms", overhead_smallest_ms_}, {"layers", layers}};
}

LatencyTable LatencyTable::from_json(const nlohmann::json& j, const std::string& source) {
  try {
    LatencyOptions o;
    o.batch = j.at("batch").get<int64_t>();
    o.threads = j.at("threads").get<int>();
    o.int8 = j.at("int8").get<bool>();
    o.grid = j.at("grid").get<int>();
    if (o.grid < 1 || o.batch < 1 || o.threads < 1) bad_input(source + ": grid, batch and threads must be positive");
    std::vector<LayerTable> layers;
    for (const auto& e : j.at("layers")) {
      LayerTable t;
      LayerShape& l = t.layer;
      l.name = e.at("name").get<std::string>();
      l.linear = e.value("linear", false);
      l.depthwise = e.at("depthwise").get<bool>();
      l.groups = e.value("groups", int64_t{1});
      if (l.groups < 1) bad_input(source + ": layer '" + l.name + "' has groups < 1");
      l.in = e.at("in").get<int64_t>();
      l.out = e.at("out").get<int64_t>();
      for (auto [key, field] : {std::pair{"input_hw", &l.input_hw}, {"kernel", &l.kernel}, {"stride", &l.stride},
                                {"padding", &l.padding}, {"dilation", &l.dilation}})
        if (e.contains(key)) *field = e.at(key).get<std::vector<int64_t>>();
      t.ms = e.at("ms").get<std::vector<std::vector<double>>>();
      layers.push_back(std::move(t));
    }
    LatencyTable table(std::move(layers), o);
    table.set_overhead_ms(j.at("overhead_ms").get<double>(), j.value("overhead_smallest_ms", -1.0));
    return table;
  } catch (const nlohmann::json::exception& e) {
    bad_input(source + ": not a latency table (" + e.what() + ")");
  }
}

namespace {

bool is_depthwise(const Node* n) {
  if (!n->is_leaf(LeafKind::Conv2d)) return false;
  const auto& c = std::get<ConvAttrs>(n->attrs);
  return c.groups > 1 && c.groups == c.in_channels && c.groups == c.out_channels;
}

}  // namespace

std::vector<LayerShape> latency_layers(const Graph& graph) {
  ModelProfile profile = profile_model(graph);
  std::vector<LayerShape> out;
  for (const NodeProfile& np : profile.nodes) {
    const Node* n = np.node;
    if (np.macs <= 0 || !n->is_leaf() || !n->params.count("weight") ||
        !(n->is_leaf(LeafKind::Conv2d) || n->is_leaf(LeafKind::Linear)))
      continue;
    LayerShape l;
    l.name = np.name;
    const Shape& in_shape = graph.shape(n->input().value);
    if (n->is_leaf(LeafKind::Linear)) {
      const auto& a = std::get<LinearAttrs>(n->attrs);
      l.linear = true;
      l.in = a.in_features;
      l.out = a.out_features;
    } else {
      const auto& c = std::get<ConvAttrs>(n->attrs);
      l.depthwise = is_depthwise(n);
      l.groups = l.depthwise ? 1 : c.groups;
      l.in = c.in_channels;
      l.out = c.out_channels;
      l.input_hw = {in_shape[in_shape.size() - 2], in_shape[in_shape.size() - 1]};
      l.kernel = c.kernel;
      l.stride = c.stride;
      l.padding = c.padding;
      l.dilation = c.dilation;
    }
    out.push_back(std::move(l));
  }
  return out;
}

double measure_model_ms(torch::jit::Module& module, const Graph& graph, const LatencyOptions& options, int repeats) {
  if (graph.example_inputs().empty()) bad_input("latency: the model has no example input shape (--input-shape)");
  const std::vector<at::Tensor> inputs = InputSynthesizer(graph)(/*seed=*/0, options.batch);
  const std::vector<c10::IValue> x(inputs.begin(), inputs.end());
  compress::ScopedThreads threads(options.threads);
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 3; ++i) module.forward(x);  // the profiling executor optimises over the first calls
  const double ms = time_call_ms([&] { module.forward(x); }, repeats, options.rounds, options.threads);
  return ms;
}

}  // namespace compress::latency
