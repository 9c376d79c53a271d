// quantize_static: fold -> plan -> calibrate -> convert -> measure (quantize.h).
#include "compress/quantization/quantize.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <torch/csrc/autograd/grad_mode.h>

#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ops/ops.h"
#include "compress/passes/fold_batch_norm.h"
#include "compress/passes/strip_dropout.h"
#include "compress/quantization/dynamic.h"
#include "module_path.h"

namespace compress::quant {

using detail::under_module;

namespace {

nlohmann::json db_json(double db) {
  if (std::isinf(db)) return db > 0 ? "inf" : "-inf";
  return std::round(db * 100) / 100;
}

nlohmann::json params_json(const QuantParams& p) { return {{"scale", p.scale}, {"zero_point", p.zero_point}}; }

// The result of a forward call with taps: (outputs..., taps...).
std::vector<at::Tensor> run_tapped(torch::jit::Module& m, std::vector<c10::IValue> x) {
  c10::IValue out = m.forward(std::move(x));
  std::vector<at::Tensor> ts;
  if (out.isTensor()) return {out.toTensor()};
  for (const auto& e : out.toTupleRef().elements()) ts.push_back(e.isTensor() ? e.toTensor() : at::Tensor());
  return ts;
}

// A layer's INT8 result as float NCHW, comparable to the float model's value.
at::Tensor as_float(const LayerReport& l, const at::Tensor& t) {
  at::Tensor f = t;
  if (l.int8_value_u8) f = (t.to(at::kFloat) - l.output.zero_point) * l.output.scale;
  if (l.int8_value_nhwc) f = f.permute({0, 3, 1, 2});
  return f;
}

// Output SQNR and each INT8 layer's SQNR against the float graph `ref`.
void measure(const Graph& ref, const Graph& q, const CalibrationData& data, int64_t batches, QuantizeReport& report) {
  ExportOptions ref_taps, q_taps;
  std::vector<LayerReport*> measured;
  for (LayerReport& l : report.layers) {
    if (l.precision != "int8") continue;
    measured.push_back(&l);
    ref_taps.taps.push_back(l.float_value);
    q_taps.taps.push_back(l.int8_value);
  }
  torch::jit::Module fm = export_module(ref, ref_taps), qm = export_module(q, q_taps);
  torch::NoGradGuard no_grad;
  Sqnr output;
  std::vector<Sqnr> layers(measured.size());
  const size_t n_out = ref.outputs().size();
  for (int64_t i = 0; i < std::min(batches, data.num_batches); ++i) {
    const std::vector<c10::IValue> x = data.arguments(i);
    std::vector<at::Tensor> a = run_tapped(fm, x), b = run_tapped(qm, x);
    output.add(a.at(0), b.at(0));
    for (size_t k = 0; k < measured.size(); ++k)
      layers[k].add(a.at(n_out + k), as_float(*measured[k], b.at(n_out + k)));
  }
  report.output_sqnr_db = output.db();
  for (size_t k = 0; k < measured.size(); ++k) measured[k]->sqnr_db = layers[k].db();
}

}  // namespace

CalibrationData CalibrationData::first_batches(const at::Tensor& samples, int64_t batch, int64_t max_batches) {
  return {std::min(max_batches, (samples.size(0) + batch - 1) / batch), [samples, batch](int64_t i) {
            const int64_t start = i * batch;
            return samples.narrow(0, start, std::min(batch, samples.size(0) - start));
          }};
}

std::vector<c10::IValue> CalibrationData::arguments(int64_t i) const {
  if (inputs) {
    std::vector<at::Tensor> ts = inputs(i);
    return std::vector<c10::IValue>(ts.begin(), ts.end());
  }
  return {batch(i)};
}

void check_finite_parameters(const Graph& g) {
  for (const auto& name : g.param_order) {
    const at::Tensor& t = g.param(name);
    if (!t.is_floating_point()) continue;
    if (!at::isfinite(t).all().item<bool>())
      bad_input("parameter '" + name + "' holds NaN or Inf values; it cannot be quantized");
  }
}

ActivationCodes resolve_activations(const std::string& activations) {
  if (activations == "u8") return {255, "u8", "asked for (--activations u8)"};
  if (activations == "u7") return {127, "u7", "asked for (--activations u7)"};
  if (activations != "auto") bad_input("--activations '" + activations + "': expected auto, u8 or u7");
  const std::string isa = ops::kernel_isa();
  if (isa == "avx2")
    return {127, "u7", "auto: the kernels are AVX2, whose 7-bit layout needs 3 multiplies per 64 MACs instead of 4"};
  return {255, "u8", "auto: the kernels are " + isa + (isa == "ref" ? "" : ", which multiply u8 x s8 natively")};
}

nlohmann::json QuantizeReport::to_json() const {
  nlohmann::json j;
  j["method"] = method;
  j["activations"] = {{"codes", activations.name}, {"quant_max", activations.quant_max}, {"reason", activations.reason}};
  j["calibration_batches"] = calibration_batches;
  j["output_sqnr_db"] = db_json(output_sqnr_db);
  j["size"] = {{"bytes_before", bytes_before},
               {"bytes_after", bytes_after},
               {"ratio", bytes_before > 0 ? static_cast<double>(bytes_after) / static_cast<double>(bytes_before) : 0.0}};
  int int8_layers = 0;
  j["layers"] = nlohmann::json::array();
  for (const LayerReport& l : layers) {
    nlohmann::json e = {{"name", l.name}, {"ops", l.ops}, {"precision", l.precision}};
    if (l.precision == "int8") {
      ++int8_layers;
      e["input"] = params_json(l.input);
      e["output"] = l.float_output ? nlohmann::json("float32") : params_json(l.output);
      e["weight_scale"] = {{"min", l.weight_scale_min}, {"max", l.weight_scale_max}};
      e["sqnr_db"] = db_json(l.sqnr_db);
      e["weight_format"] = l.weight_format;
      e["format_reason"] = l.format_reason;
      e["weight_sparsity"] = l.weight_sparsity;
    } else {
      e["reason"] = l.reason;
    }
    j["layers"].push_back(e);
  }
  j["int8_layers"] = int8_layers;
  j["float_nodes"] = nlohmann::json::array();
  for (const auto& f : float_nodes) j["float_nodes"].push_back({{"node", f.first}, {"reason", f.second}});
  j["dynamic_layers"] = nlohmann::json::array();
  for (const auto& l : dynamic_layers) j["dynamic_layers"].push_back(l.to_json());
  j["fold_batch_norm"] = fold_batch_norm;
  return j;
}

void prepare_float_graph(Graph& g, QuantizeReport& report) {
  strip_dropout(g);  // the identity in eval mode: nothing to keep in float
  PassResult folded = fold_batch_norm(g);
  for (const auto& c : folded.changes) report.fold_batch_norm.push_back(c);
  for (const auto& s : folded.skipped) report.fold_batch_norm.push_back("left alone: " + s);
}

namespace {

// The attention leaves static conversion left in float (no static kernel)
// get dynamic INT8 projections; an excluded one (or one with an excluded
// part) stays float as it was.
void attention_to_dynamic(Graph& g, const QuantizeOptions& options, QuantizeReport& report) {
  std::map<std::string, std::string> leaves;  // module -> its node's description
  for (const Node& n : g.nodes()) {
    if (!n.is_leaf(LeafKind::MultiheadAttention)) continue;
    std::string excluded_by;
    for (const auto& e : options.exclude)
      if (excluded_by.empty() && (under_module(n.module, e) || under_module(e, n.module))) excluded_by = e;
    if (excluded_by.empty()) {
      leaves[n.module] = n.describe();
      continue;
    }
    for (auto& f : report.float_nodes)
      if (f.first == n.describe()) f.second = "excluded by the user (" + excluded_by + ")";
  }
  if (leaves.empty()) return;
  DynamicOptions d;
  for (const auto& kv : leaves) d.only.push_back(kv.first);
  d.measure = false;  // as the static layers: converted, not timed against float
  DynamicReport dr = quantize_dynamic(g, d);
  std::set<std::string> converted;
  for (const auto& l : dr.layers) {
    if (l.precision != "int8") continue;
    report.dynamic_layers.push_back(l);
    for (const auto& kv : leaves)
      if (under_module(l.name, kv.first)) converted.insert(kv.first);
  }
  for (const auto& module : converted) {
    auto& nodes = report.float_nodes;
    nodes.erase(std::remove_if(nodes.begin(), nodes.end(),
                               [&](const auto& f) { return f.first == leaves.at(module); }),
                nodes.end());
    nodes.push_back({module + " (attention core: q k^T, softmax, weights x v)",
                     "no static INT8 kernel for attention: the core runs in float, its in_proj and out_proj in "
                     "dynamic INT8 (compress::linear_int8_dynamic, dynamic_layers)"});
  }
}

}  // namespace

QuantizeReport quantize_static(Graph& g, const CalibrationData& data, const QuantizeOptions& options) {
  if (g.example_inputs().empty()) bad_input("quantize: the model's input shape is unknown (give an input shape)");
  if (data.empty()) bad_input("the calibration set is empty (no batches)");
  check_finite_parameters(g);
  QuantizeReport report;
  report.method = method_name(options.method);
  report.calibration_batches = data.num_batches;
  report.bytes_before = saved_size(export_module(g));

  prepare_float_graph(g, report);
  std::vector<FusedLayer> plan = plan_layers(g, options.exclude);
  std::map<ValueId, Observer> observers = calibrate(g, plan, data);
  Graph reference = g;
  convert(g, plan, observers, options, report);
  attention_to_dynamic(g, options, report);
  measure(reference, g, data, options.sqnr_batches, report);
  report.bytes_after = saved_size(export_module(g));
  return report;
}

}  // namespace compress::quant
