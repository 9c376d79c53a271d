// qat: quantization-aware training (LSQ or STE), then the INT8 conversion.
#include <ATen/Parallel.h>

#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/quantization/qat.h"
#include "compress/threads.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class QatStage : public Stage {
 public:
  quant::QatOptions qat;
  TrainingOptions training;
  int64_t calib_batches = 8;

  nlohmann::json options() const override {
    nlohmann::json j = training.to_json();
    j["method"] = quant::qat_method_name(qat.method);
    j["calib_method"] = quant::method_name(qat.calibration.method);
    j["calib_batches"] = calib_batches;
    j["exclude"] = qat.calibration.exclude;
    return j;
  }
  bool needs_data() const override { return true; }

  void run(StageContext& ctx) override {
    compress::set_num_threads(ctx.recipe.threads);
    const data::TensorDataset& train_set = ctx.data.train();
    const int64_t batch = training.recipe.batch_size;
    Graph graph = load_graph(ctx.input_model, ctx.sample_shape);
    Shape shape{batch};
    shape.insert(shape.end(), ctx.sample_shape.begin(), ctx.sample_shape.end());
    graph.set_example_inputs({InputSpec{shape}});
    const quant::CalibrationData calib =
        quant::CalibrationData::first_batches(train_set.inputs.to(at::kFloat), batch, calib_batches);
    quant::QatModel model = quant::prepare_qat(graph, calib, qat);
    train::TrainConfig cfg = training.config(train_set.size(), ctx.recipe.threads, ctx.work_dir,
                                             ctx.key, ctx.quiet);
    if (!model.scale_names().empty()) cfg.optimizer.groups.push_back(model.scale_group(training.recipe.lr));
    train::Trainer trainer(export_module(model.graph, quant::qat_export_options(model)), cfg);
    trainer.add_callback(quant::qat_callback(model));
    auto curve = std::make_shared<LossCurve>();
    trainer.add_callback(curve);
    train::TrainResult res = trainer.fit(train_set);
    quant::load_trained(model, trainer.module());
    quant::QuantizeReport report;
    Graph int8 = quant::convert_qat(model, &report);
    save_module(export_module(int8), ctx.output_model);
    ctx.details = report.to_json();
    ctx.details["loss_curve"] = curve->to_json();
    ctx.details["train_seconds"] = res.seconds;
    for (const char* k : {"macs", "params"})
      if (ctx.input_metrics.contains(k)) ctx.metrics[k] = ctx.input_metrics[k];
  }
};

}  // namespace

std::unique_ptr<Stage> parse_qat_stage(Fields& f, const ParseInfo&) {
  auto s = std::make_unique<QatStage>();
  s->qat.method = quant::parse_qat_method(f.string("method", "lsq", {"lsq", "ste"}));
  s->qat.calibration.method =
      quant::parse_method(f.string("calib_method", "percentile", {"minmax", "percentile", "entropy", "mse"}));
  s->qat.calibration.exclude = f.strings("exclude");
  s->calib_batches = f.integer("calib_batches", 8, 1, 100000);
  models::Recipe d;  // the CLI's defaults: 1 epoch, SGD momentum 0.9, lr 0.005, cosine, no decay
  d.epochs = 1;
  d.lr = 0.005;
  d.weight_decay = 0;
  d.nesterov = false;
  s->training.read(f, d);
  return s;
}

}  // namespace compress::pipeline
