// Per-layer sensitivity and accuracy-driven fallback (sensitivity.h).
#include "compress/quantization/sensitivity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/train/evaluate.h"

namespace compress::quant {

namespace {

nlohmann::json number_or_null(double v) {
  if (std::isnan(v)) return nullptr;
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return std::round(v * 1000) / 1000;
}

double top1_percent(const Graph& g, const data::TensorDataset& eval) {
  torch::jit::Module m = export_module(g);
  return train::evaluate(m, eval).top1 * 100.0;
}

// quantize_static on a copy of `g` with `extra` layers kept in float.
Graph quantized_copy(const Graph& g, const CalibrationData& data, QuantizeOptions options,
                     const std::vector<std::string>& extra, QuantizeReport* report = nullptr) {
  Graph c = g;
  options.exclude.insert(options.exclude.end(), extra.begin(), extra.end());
  QuantizeReport r = quantize_static(c, data, options);
  if (report) *report = std::move(r);
  return c;
}

}  // namespace

std::vector<std::string> SensitivityReport::most_sensitive_first() const {
  std::vector<const LayerSensitivity*> order;
  for (const auto& l : layers) order.push_back(&l);
  std::stable_sort(order.begin(), order.end(), [](const LayerSensitivity* a, const LayerSensitivity* b) {
    bool with_acc = !std::isnan(a->top1_drop) && !std::isnan(b->top1_drop);
    if (with_acc && a->top1_drop != b->top1_drop) return a->top1_drop > b->top1_drop;
    return a->sqnr_db < b->sqnr_db;
  });
  std::vector<std::string> names;
  for (const auto* l : order) names.push_back(l->name);
  return names;
}

nlohmann::json SensitivityReport::to_json() const {
  nlohmann::json j;
  j["eval_samples"] = eval_samples;
  j["float_top1"] = number_or_null(float_top1);
  j["int8_top1"] = number_or_null(int8_top1);
  j["int8_output_sqnr_db"] = number_or_null(int8_sqnr_db);
  j["layers"] = nlohmann::json::array();
  for (const auto& l : layers)
    j["layers"].push_back({{"name", l.name},
                           {"ops", l.ops},
                           {"output_sqnr_db", number_or_null(l.sqnr_db)},
                           {"top1", number_or_null(l.top1)},
                           {"top1_drop", number_or_null(l.top1_drop)}});
  j["most_sensitive_first"] = most_sensitive_first();
  return j;
}

nlohmann::json FallbackReport::to_json() const {
  nlohmann::json j;
  j["max_drop"] = max_drop;
  j["eval_samples"] = eval_samples;
  j["float_top1"] = number_or_null(float_top1);
  j["kept_float"] = kept_float;
  j["top1"] = number_or_null(top1);
  j["top1_drop"] = number_or_null(top1_drop);
  j["steps"] = nlohmann::json::array();
  for (const auto& s : steps)
    j["steps"].push_back(
        {{"kept_float", s.kept_float}, {"top1", number_or_null(s.top1)}, {"top1_drop", number_or_null(s.top1_drop)}});
  return j;
}

SensitivityReport analyze_sensitivity(const Graph& g, const CalibrationData& data, const QuantizeOptions& options,
                                      const data::TensorDataset* eval) {
  if (eval && eval->size() == 0) bad_input("the held-out set for accuracy is empty");
  SensitivityReport s;
  QuantizeReport all;
  Graph whole = quantized_copy(g, data, options, {}, &all);
  s.int8_sqnr_db = all.output_sqnr_db;
  if (eval) {
    s.eval_samples = eval->size();
    s.float_top1 = top1_percent(g, *eval);
    s.int8_top1 = top1_percent(whole, *eval);
  }
  std::vector<const LayerReport*> int8_layers;
  for (const auto& l : all.layers)
    if (l.precision == "int8") int8_layers.push_back(&l);
  for (const LayerReport* l : int8_layers) {
    std::vector<std::string> others;
    for (const LayerReport* o : int8_layers)
      if (o != l) others.push_back(o->name);
    QuantizeReport one;
    Graph q = quantized_copy(g, data, options, others, &one);
    LayerSensitivity ls;
    ls.name = l->name;
    ls.ops = l->ops;
    ls.sqnr_db = one.output_sqnr_db;
    if (eval) {
      ls.top1 = top1_percent(q, *eval);
      ls.top1_drop = s.float_top1 - ls.top1;
    }
    s.layers.push_back(ls);
  }
  return s;
}

QuantizeReport quantize_with_fallback(Graph& g, const CalibrationData& data, const QuantizeOptions& options,
                                      const data::TensorDataset& eval, double max_drop_points,
                                      FallbackReport& fallback) {
  if (!(max_drop_points >= 0)) bad_input("max-drop must be a non-negative number of points");
  if (eval.size() == 0) bad_input("the held-out set for accuracy is empty");
  fallback = FallbackReport{};
  fallback.max_drop = max_drop_points;
  fallback.sensitivity = analyze_sensitivity(g, data, options, &eval);
  const SensitivityReport& s = fallback.sensitivity;
  fallback.float_top1 = s.float_top1;
  fallback.eval_samples = s.eval_samples;
  const std::vector<std::string> ranking = s.most_sensitive_first();
  // k = 0 is the whole model, measured by the analysis already.
  FallbackStep step{{}, s.int8_top1, s.float_top1 - s.int8_top1};
  fallback.steps.push_back(step);
  for (size_t k = 1; step.top1_drop > max_drop_points && k <= ranking.size(); ++k) {
    step.kept_float.assign(ranking.begin(), ranking.begin() + static_cast<std::ptrdiff_t>(k));
    step.top1 = top1_percent(quantized_copy(g, data, options, step.kept_float), eval);
    step.top1_drop = s.float_top1 - step.top1;
    fallback.steps.push_back(step);
  }
  fallback.kept_float = step.kept_float;
  fallback.top1 = step.top1;
  fallback.top1_drop = step.top1_drop;
  QuantizeOptions final_options = options;
  final_options.exclude.insert(final_options.exclude.end(), step.kept_float.begin(), step.kept_float.end());
  QuantizeReport report = quantize_static(g, data, final_options);
  // The report says why: the fallback kept them, not the user.
  for (const auto& name : step.kept_float) {
    const std::string user = "excluded by the user (" + name + ")";
    char why[96];
    std::snprintf(why, sizeof why, "kept in float by the accuracy fallback (max drop %.2f points)", max_drop_points);
    for (auto& l : report.layers)
      if (l.reason == user) l.reason = why;
    for (auto& f : report.float_nodes)
      if (f.second == user) f.second = why;
  }
  return report;
}

}  // namespace compress::quant
