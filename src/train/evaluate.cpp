#include "compress/train/evaluate.h"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>

#include "compress/error.h"
#include "compress/threads.h"

namespace compress::train {

using Clock = std::chrono::steady_clock;

std::string EvalResult::to_json(const char* const* class_names) const {
  nlohmann::json j;
  j["count"] = count;
  j["loss"] = loss;
  j["top1"] = top1;
  j["top5"] = top5;
  j["seconds"] = seconds;
  nlohmann::json classes = nlohmann::json::array();
  for (size_t i = 0; i < confusion.size(); ++i) {
    classes.push_back(class_names ? std::string(class_names[i]) : std::to_string(i));
  }
  j["confusion"] = {{"rows", "true label"}, {"columns", "predicted label"}, {"classes", classes},
                    {"matrix", confusion}};
  return j.dump();
}

EvalResult evaluate(torch::jit::Module& module, const data::TensorDataset& ds, int64_t batch_size,
                    const at::Tensor& mean, const at::Tensor& std) {
  if (ds.size() == 0) bad_input(ds.name + ": nothing to evaluate (empty dataset)");
  const bool was_training = module.is_training();
  module.eval();
  at::NoGradGuard no_grad;
  auto start = Clock::now();
  EvalResult r;
  const int64_t k = ds.num_classes;
  r.confusion.assign(size_t(k), std::vector<int64_t>(size_t(k), 0));
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  for (int64_t s = 0; s < ds.size(); s += batch_size) {
    const int64_t n = std::min(batch_size, ds.size() - s);
    at::Tensor x = ds.inputs.narrow(0, s, n);
    if (mean.defined()) {
      std::vector<int64_t> shape(size_t(x.dim()), 1);
      shape[1] = -1;
      x = (x - mean.view(shape)) / std.view(shape);
    }
    at::Tensor y = ds.labels.narrow(0, s, n);
    at::Tensor logits;
    try {
      logits = logits_of(module.forward({x}));
    } catch (const std::exception& e) {
      bad_input("the model cannot run on " + ds.name + " inputs of shape " + c10::str(x.sizes()) + ": " +
                first_line_of(e));
    }
    if (logits.dim() != 2 || logits.size(1) != k) {
      bad_input("the model gives outputs of shape " + c10::str(logits.sizes()) + "; " + ds.name + " needs [N, " +
                std::to_string(k) + "] logits");
    }
    loss_sum += at::cross_entropy_loss(logits, y, {}, at::Reduction::Sum).item<double>();
    at::Tensor pred = logits.argmax(1);
    top1 += pred.eq(y).sum().item<int64_t>();
    at::Tensor best = std::get<1>(logits.topk(std::min<int64_t>(5, k), 1));
    top5 += best.eq(y.unsqueeze(1)).any(1).sum().item<int64_t>();
    auto pa = pred.accessor<int64_t, 1>();
    auto ya = y.accessor<int64_t, 1>();
    for (int64_t i = 0; i < n; ++i) ++r.confusion[size_t(ya[i])][size_t(pa[i])];
  }
  r.count = ds.size();
  r.loss = loss_sum / double(r.count);
  r.top1 = double(top1) / double(r.count);
  r.top5 = double(top5) / double(r.count);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  module.train(was_training);
  return r;
}

std::vector<LatencyPoint> measure_latency(torch::jit::Module& module, const std::vector<int64_t>& sample_shape,
                                          const LatencyOptions& opt) {
  const LatencyInputs random = [&sample_shape](int64_t b) {
    std::vector<int64_t> shape{b};
    shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
    return std::vector<c10::IValue>{at::rand(shape)};
  };
  return measure_latency(module, random, opt);
}

std::vector<LatencyPoint> measure_latency(torch::jit::Module& module, const LatencyInputs& make_inputs,
                                          const LatencyOptions& opt) {
  if (opt.repeats < 1) bad_input("latency: repeats must be at least 1");
  const bool was_training = module.is_training();
  module.eval();
  compress::ScopedThreads restore_threads(0);
  std::vector<LatencyPoint> out;
  at::NoGradGuard no_grad;
  for (int threads : opt.thread_counts) {
    if (threads < 1) bad_input("latency: thread count must be at least 1");
    compress::set_num_threads(threads);
    for (int64_t b : opt.batch_sizes) {
      if (b < 1) bad_input("latency: batch size must be at least 1");
      const std::vector<c10::IValue> x = make_inputs(b);
      for (int i = 0; i < opt.warmup; ++i) module.forward(x);
      std::vector<double> ms;
      for (int i = 0; i < opt.repeats; ++i) {
        auto t0 = Clock::now();
        module.forward(x);
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      LatencyPoint p;
      p.batch = b;
      p.threads = threads;
      const size_t n = ms.size();
      p.median_ms = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
      p.min_ms = ms.front();
      p.p90_ms = ms[std::min(n - 1, size_t(0.9 * double(n)))];
      p.samples_per_s = double(b) * 1000.0 / p.median_ms;
      out.push_back(p);
    }
  }
  module.train(was_training);
  return out;
}

std::string latency_to_json(const std::vector<LatencyPoint>& points) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& p : points) {
    a.push_back({{"batch", p.batch}, {"threads", p.threads}, {"median_ms", p.median_ms}, {"min_ms", p.min_ms},
                 {"p90_ms", p.p90_ms}, {"samples_per_s", p.samples_per_s}});
  }
  return a.dump();
}

at::Tensor logits_of(const c10::IValue& output, std::vector<at::Tensor>* features) {
  if (output.isTensor()) return output.toTensor();
  if (output.isTuple()) {
    const auto& elems = output.toTupleRef().elements();
    if (!elems.empty() && elems[0].isTensor()) {
      for (size_t i = 1; features && i < elems.size(); ++i) {
        if (!elems[i].isTensor()) bad_input("the model returns a tuple whose element " + std::to_string(i) + " is no tensor");
        features->push_back(elems[i].toTensor());
      }
      return elems[0].toTensor();
    }
  }
  bad_input("the model returns " + output.tagKind() + ", not logits (a tensor, or a tuple starting with one)");
}

}  // namespace compress::train
