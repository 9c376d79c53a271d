// calibrate: observers fed batch by batch through an export with taps (quantize.h).
#include <set>

#include <torch/csrc/autograd/grad_mode.h>

#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/quantization/quantize.h"

namespace compress::quant {

namespace {

// The values whose ranges the conversion needs: what INT8 layers read (input,
// residual) and write.
std::vector<ValueId> observed_values(const std::vector<FusedLayer>& plan) {
  std::vector<ValueId> values;
  std::set<ValueId> seen;
  auto add = [&](ValueId v) {
    if (v >= 0 && seen.insert(v).second) values.push_back(v);
  };
  for (const FusedLayer& f : plan) {
    if (!f.int8()) continue;
    add(f.input());
    add(f.residual);
    add(f.output());
  }
  return values;
}

}  // namespace

std::map<ValueId, Observer> calibrate(const Graph& g, const std::vector<FusedLayer>& plan,
                                      const CalibrationData& data) {
  if (data.empty()) bad_input("the calibration set is empty (no batches)");
  std::vector<ValueId> values = observed_values(plan);
  std::map<ValueId, Observer> observers;
  if (values.empty()) return observers;
  ExportOptions options;
  for (ValueId v : values) options.taps.push_back(g.name_of(v));
  torch::jit::Module module = export_module(g, options);
  module.eval();
  torch::NoGradGuard no_grad;
  const size_t n_out = g.outputs().size();
  for (int64_t i = 0; i < data.num_batches; ++i) {
    std::vector<c10::IValue> x = data.arguments(i);
    std::string shapes;
    for (const c10::IValue& t : x) {
      if (!t.isTensor() || !t.toTensor().defined() || t.toTensor().numel() == 0)
        bad_input("calibration batch " + std::to_string(i) + " is empty");
      shapes += (shapes.empty() ? "" : ", ") + c10::str(t.toTensor().sizes());
    }
    c10::IValue out;
    try {
      out = module.forward(std::move(x));
    } catch (const c10::Error& e) {
      bad_input("calibration batch " + std::to_string(i) + " of shape " + shapes +
                " does not fit the model: " + first_line_of(e));
    }
    const auto& elems = out.toTupleRef().elements();
    for (size_t k = 0; k < values.size(); ++k) observers[values[k]].observe(elems.at(n_out + k).toTensor());
  }
  return observers;
}

}  // namespace compress::quant
