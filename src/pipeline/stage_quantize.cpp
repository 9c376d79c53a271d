// quantize: post-training static INT8 quantization (calibrated on the
// training data, or on random inputs when the recipe has none), or with
// "dynamic": true dynamic INT8 (weights INT8, activation scales computed at
// run time: LSTM, GRU, Linear and attention projections; no calibration).
#include <ATen/Parallel.h>

#include "compress/analysis/inputs.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/quantization/dynamic.h"
#include "compress/quantization/quantize.h"
#include "compress/threads.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class QuantizeStage : public Stage {
 public:
  quant::QuantizeOptions quantize;
  bool dynamic = false;
  bool measure = true;  // dynamic: time each layer in float and INT8, keep the faster
  std::string calib;  // "data" or "random"
  int64_t calib_batches = 8, calib_batch_size = 32;
  uint64_t seed = 0;

  nlohmann::json options() const override {
    if (dynamic) return {{"dynamic", true}, {"measure", measure}, {"exclude", quantize.exclude}, {"seed", seed}};
    return {{"dynamic", false}, {"method", quant::method_name(quantize.method)}, {"percentile", quantize.percentile},
            {"exclude", quantize.exclude}, {"calib", calib}, {"calib_batches", calib_batches},
            {"calib_batch_size", calib_batch_size}, {"seed", seed}, {"sparse", quantize.sparse},
            {"activations", quantize.activations}};
  }
  bool needs_data() const override { return !dynamic && calib == "data"; }

  void run(StageContext& ctx) override {
    compress::set_num_threads(ctx.recipe.threads);
    Shape shape{calib_batch_size};
    shape.insert(shape.end(), ctx.sample_shape.begin(), ctx.sample_shape.end());
    Graph graph = load_graph(ctx.input_model, ctx.sample_shape, ctx.sample_dtype);
    graph.set_example_inputs({InputSpec{shape, ctx.sample_dtype}});
    if (dynamic) {
      quant::DynamicOptions o;
      o.exclude = quantize.exclude;
      o.seed = seed;
      o.measure = measure;
      ctx.details = quant::quantize_dynamic(graph, o).to_json();
      save_module(export_module(graph), ctx.output_model);
      keep_work_metrics(ctx);
      return;
    }
    quant::CalibrationData data;
    if (calib == "random") {  // integer inputs: ids within the embedding they index
      const InputSynthesizer synthesize(graph);
      const uint64_t s = seed;
      data = {calib_batches, quant::CalibrationData::Inputs([synthesize, s](int64_t i) { return synthesize(s + uint64_t(i)); })};
    } else {
      data = quant::CalibrationData::first_batches(ctx.data.train().inputs.to(ctx.sample_dtype), calib_batch_size,
                                                   calib_batches);
    }
    quant::QuantizeReport report = quant::quantize_static(graph, data, quantize);
    save_module(export_module(graph), ctx.output_model);
    ctx.details = report.to_json();
    keep_work_metrics(ctx);
  }

 private:
  // Quantization changes the arithmetic, not the work: the float model's counts stand.
  static void keep_work_metrics(StageContext& ctx) {
    for (const char* k : {"macs", "params"})
      if (ctx.input_metrics.contains(k)) ctx.metrics[k] = ctx.input_metrics[k];
  }
};

}  // namespace

std::unique_ptr<Stage> parse_quantize_stage(Fields& f, const ParseInfo&) {
  auto s = std::make_unique<QuantizeStage>();
  s->dynamic = f.boolean("dynamic", false);
  if (s->dynamic) {
    for (const char* k : {"method", "percentile", "calib", "calib_batches", "calib_batch_size", "sparse", "activations"})
      if (f.has(k)) f.error(k, "does not apply to dynamic quantization (no calibration, dense weights)");
    s->measure = f.boolean("measure", true);
  } else if (f.has("measure")) {
    f.error("measure", "applies to dynamic quantization only (\"dynamic\": true)");
  }
  s->quantize.method = quant::parse_method(f.string("method", "percentile", {"minmax", "percentile", "entropy", "mse"}));
  s->quantize.percentile = f.number("percentile", 99.99, 50, 100, false, false);
  s->quantize.exclude = f.strings("exclude");
  s->calib = f.string("calib", "data", {"data", "random"});
  s->calib_batches = f.integer("calib_batches", 8, 1, 100000);
  s->calib_batch_size = f.integer("calib_batch_size", 32, 1, 1 << 16);
  s->seed = uint64_t(f.integer("seed", 0, 0));
  // As `compress quantize --sparse`: auto times dense against the sparse
  // kernels for each layer with zero weights (after a sparsify stage).
  s->quantize.sparse = f.string("sparse", "auto", {"auto", "off", "1x4", "2:4"});
  // As `compress quantize --activations`: auto is 7-bit codes on AVX2 kernels.
  s->quantize.activations = f.string("activations", "auto", {"auto", "u8", "u7"});
  return s;
}

}  // namespace compress::pipeline
