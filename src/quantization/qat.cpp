// Quantization-aware training: prepare, train hooks, convert (qat.h).
#include "compress/quantization/qat.h"

#include <algorithm>
#include <cmath>

#include <torch/csrc/autograd/grad_mode.h>

#include "compress/error.h"
#include "compress/train/evaluate.h"

namespace compress::quant {

QatMethod parse_qat_method(const std::string& name) {
  if (name == "lsq") return QatMethod::Lsq;
  if (name == "ste") return QatMethod::Ste;
  bad_input("unknown QAT method '" + name + "' (lsq or ste)");
}

const char* qat_method_name(QatMethod m) { return m == QatMethod::Lsq ? "lsq" : "ste"; }

std::vector<std::string> QatModel::scale_names() const {
  std::vector<std::string> names;
  if (options.method != QatMethod::Lsq) return names;
  for (const auto& w : weights) names.push_back(w.scale);
  for (const auto& a : activations) names.push_back(a.scale);
  return names;
}

train::ParamGroup QatModel::scale_group(double lr) const {
  train::ParamGroup group;
  group.name = "quantization scales";
  group.match = scale_names();
  group.lr = lr;
  group.weight_decay = 0.0;
  return group;
}

QatModel prepare_qat(const Graph& g, const CalibrationData& data, const QatOptions& options) {
  if (g.example_inputs().empty()) bad_input("qat: the model's input shape is unknown (give an input shape)");
  if (data.empty()) bad_input("the calibration set is empty (no batches)");
  check_finite_parameters(g);
  QatModel m;
  m.options = options;
  m.plan_report.method = std::string("qat-") + qat_method_name(options.method);
  m.plan_report.calibration_batches = data.num_batches;
  Graph work = g;
  prepare_float_graph(work, m.plan_report);
  std::vector<FusedLayer> plan = plan_layers(work, options.calibration.exclude);
  std::map<ValueId, Observer> observers = calibrate(work, plan, data);
  m.base = work;  // before the fake quantizers: value ids agree between the two graphs
  insert_fake_quant(work, plan, observers, m);
  m.graph = std::move(work);
  return m;
}

ExportOptions qat_export_options(const QatModel& m) {
  ExportOptions o;
  if (m.options.method != QatMethod::Ste) return o;
  for (const auto& a : m.activations)
    if (m.graph.producer(m.graph.value_named(a.observed))) o.taps.push_back(a.observed);
  return o;
}

namespace {

std::map<std::string, at::Tensor> tensors_by_name(const torch::jit::Module& module) {
  std::map<std::string, at::Tensor> t;
  for (auto& p : train::named_parameters(module)) t[p.name] = p.value;
  for (auto& b : train::named_buffers(module)) t[b.name] = b.value;
  return t;
}

at::Tensor& tensor_named(std::map<std::string, at::Tensor>& tensors, const std::string& name) {
  auto it = tensors.find(name);
  if (it == tensors.end()) bad_input("qat: the trained module has no parameter or buffer '" + name + "'");
  return it->second;
}

// Keeps the scales positive; with ste also follows the weights and the
// activations' running ranges.
class QatCallback : public train::Callback {
 public:
  explicit QatCallback(const QatModel& m) : options_(m.options), weights_(m.weights) {
    for (const auto& a : m.activations) activation_scales_.push_back(a.scale);
    if (options_.method != QatMethod::Ste) return;
    for (const auto& a : m.activations) {
      if (!m.graph.producer(m.graph.value_named(a.observed))) continue;  // the model input: its calibrated range stays
      Tracked t;
      t.point = a;
      const double s = m.graph.param(a.scale).item<double>();
      const double zp = m.graph.param(a.zero_point).item<double>();
      t.lo = -zp * s;
      t.hi = (255.0 - zp) * s;
      tracked_.push_back(t);
    }
  }

  void after_step(train::StepContext& ctx) override {
    torch::NoGradGuard no_grad;
    auto tensors = tensors_by_name(*ctx.module);
    if (options_.method == QatMethod::Ste) {
      for (const auto& w : weights_)
        tensor_named(tensors, w.scale).copy_(quantize_weight_per_channel(tensor_named(tensors, w.weight)).scale);
      // The batch's range of every tracked value: [-min, max] pairs, taken
      // over the whole global batch when data-parallel (every rank then
      // keeps the same ranges, those one process would).
      const size_t tracked = std::min(tracked_.size(), ctx.features.size());
      at::Tensor ranges = at::empty({int64_t(2 * tracked)}, at::kDouble);
      for (size_t k = 0; k < tracked; ++k) {
        ranges[int64_t(2 * k)] = -ctx.features[k].min().item<double>();
        ranges[int64_t(2 * k + 1)] = ctx.features[k].max().item<double>();
      }
      if (ctx.group && tracked > 0) ctx.group->all_reduce_max(ranges, "qat range all-reduce");
      const double* r = ranges.data_ptr<double>();
      for (size_t k = 0; k < tracked; ++k) {
        Tracked& t = tracked_[k];
        const double m = options_.ema_momentum;
        t.lo = (1 - m) * t.lo + m * -r[2 * k];
        t.hi = (1 - m) * t.hi + m * r[2 * k + 1];
        QuantParams p = affine_u8(Range{std::max(t.lo, t.point.clamp_lo), std::min(t.hi, t.point.clamp_hi)});
        tensor_named(tensors, t.point.scale).fill_(p.scale);
        tensor_named(tensors, t.point.zero_point).fill_(static_cast<double>(p.zero_point));
      }
    }
    for (const auto& w : weights_) tensor_named(tensors, w.scale).clamp_min_(options_.min_scale);
    for (const auto& s : activation_scales_) tensor_named(tensors, s).clamp_min_(options_.min_scale);
  }

 private:
  struct Tracked {
    FakeQuantActivation point;
    double lo = 0, hi = 0;
  };
  QatOptions options_;
  std::vector<FakeQuantWeight> weights_;
  std::vector<std::string> activation_scales_;
  std::vector<Tracked> tracked_;
};

}  // namespace

std::shared_ptr<train::Callback> qat_callback(const QatModel& m) { return std::make_shared<QatCallback>(m); }

void load_trained(QatModel& m, const torch::jit::Module& trained) {
  torch::NoGradGuard no_grad;
  auto tensors = tensors_by_name(trained);
  for (const auto& name : m.graph.param_order)
    m.graph.set_param(name, tensor_named(tensors, name).detach().clone().contiguous());
}

nlohmann::json Agreement::to_json() const {
  return {{"count", count},
          {"top1_a", top1_a},
          {"top1_b", top1_b},
          {"top1_difference", top1_b - top1_a},
          {"argmax_agree", argmax_agree},
          {"max_abs_logit_diff", max_abs_logit_diff},
          {"logit_sqnr_db", std::isinf(logit_sqnr_db) ? nlohmann::json("inf") : nlohmann::json(logit_sqnr_db)}};
}

Agreement compare_classifiers(torch::jit::Module& a, torch::jit::Module& b, const at::Tensor& inputs,
                              const at::Tensor& labels, int64_t batch_size) {
  if (inputs.size(0) == 0 || inputs.size(0) != labels.size(0))
    bad_input("compare_classifiers: no samples, or inputs and labels of different lengths");
  torch::NoGradGuard no_grad;
  a.eval();
  b.eval();
  Agreement r;
  Sqnr sqnr;
  int64_t correct_a = 0, correct_b = 0, agree = 0;
  for (int64_t start = 0; start < inputs.size(0); start += batch_size) {
    const int64_t n = std::min(batch_size, inputs.size(0) - start);
    at::Tensor x = inputs.narrow(0, start, n).to(at::kFloat), y = labels.narrow(0, start, n);
    at::Tensor la = train::logits_of(a.forward({x})), lb = train::logits_of(b.forward({x}));
    at::Tensor pa = la.argmax(1), pb = lb.argmax(1);
    correct_a += pa.eq(y).sum().item<int64_t>();
    correct_b += pb.eq(y).sum().item<int64_t>();
    agree += pa.eq(pb).sum().item<int64_t>();
    r.max_abs_logit_diff = std::max(r.max_abs_logit_diff, (la - lb).abs().max().item<double>());
    sqnr.add(la, lb);
  }
  r.count = inputs.size(0);
  r.top1_a = 100.0 * static_cast<double>(correct_a) / static_cast<double>(r.count);
  r.top1_b = 100.0 * static_cast<double>(correct_b) / static_cast<double>(r.count);
  r.argmax_agree = static_cast<double>(agree) / static_cast<double>(r.count);
  r.logit_sqnr_db = sqnr.db();
  return r;
}

Graph convert_qat(const QatModel& m, QuantizeReport* report) {
  torch::NoGradGuard no_grad;
  Graph g = m.base;
  for (const auto& name : g.param_order)
    if (m.graph.has_param(name)) g.set_param(name, m.graph.param(name));
  check_finite_parameters(g);
  FixedParams fixed;
  for (const auto& a : m.activations) {
    QuantParams p;
    p.scale = std::max(m.graph.param(a.scale).item<double>(), m.options.min_scale);
    // PyTorch's learnable fake quantizer rounds and clamps its zero point.
    p.zero_point = std::min<int64_t>(255, std::max<int64_t>(0, std::llround(m.graph.param(a.zero_point).item<double>())));
    fixed.activations[a.value] = p;
  }
  for (const auto& w : m.weights) fixed.weight_scales[w.layer] = m.graph.param(w.scale).clamp_min(m.options.min_scale);
  std::vector<FusedLayer> plan = plan_layers(g, m.options.calibration.exclude);
  QuantizeReport r;
  r.method = m.plan_report.method;
  r.calibration_batches = m.plan_report.calibration_batches;
  r.fold_batch_norm = m.plan_report.fold_batch_norm;
  convert(g, plan, /*observers=*/{}, m.options.calibration, r, &fixed);
  if (report) *report = std::move(r);
  return g;
}

}  // namespace compress::quant
