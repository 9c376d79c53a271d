// pqk: pruning + quantization-aware training (phase 1; in float with
// phase1_float), then distillation from the unpruned network with the
// removed weights restored and repaired, or from the input model (phase 2),
// converted to INT8 (distillation/pqk.h, docs/distillation.md "PQK").
#include <ATen/Parallel.h>

#include "compress/distillation/pqk.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/threads.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class PqkStage : public Stage {
 public:
  distillation::PqkOptions pqk;
  TrainingOptions training;  // phase 1; phase 2 the same with its own epochs and rate
  int64_t finetune_epochs = 1;
  double finetune_lr = 0.01;
  int64_t calib_batches = 8;

  nlohmann::json options() const override {
    nlohmann::json j = training.to_json();
    j["target_macs"] = pqk.target_macs;
    j["prune_steps"] = pqk.prune_steps;
    j["prune_end"] = pqk.prune_end;
    j["criterion"] = pruning::criterion_name(pqk.criterion);
    j["temperature"] = pqk.distill.temperature;
    j["alpha"] = pqk.distill.alpha;
    j["repair_fraction"] = pqk.repair_fraction;
    j["check_samples"] = pqk.check_samples;
    j["kd_gate"] = pqk.kd_gate;
    j["teacher"] = pqk.teacher == distillation::PqkTeacher::Input ? "input" : "restored";
    j["phase1_kd"] = pqk.phase1_kd;
    j["phase1_float"] = pqk.phase1_float;
    j["recalibrate_bn"] = pqk.recalibrate_batches;
    j["scale_lr"] = pqk.scale_lr;
    j["calib_method"] = quant::method_name(pqk.qat.calibration.method);
    j["calib_batches"] = calib_batches;
    j["finetune_epochs"] = finetune_epochs;
    j["finetune_lr"] = finetune_lr;
    return j;
  }
  bool needs_data() const override { return true; }

  void run(StageContext& ctx) override {
    compress::set_num_threads(ctx.recipe.threads);
    const data::TensorDataset& train_set = ctx.data.train();
    const int64_t batch = training.recipe.batch_size;
    Graph graph = load_graph(ctx.input_model, ctx.sample_shape);
    const quant::CalibrationData calib =
        quant::CalibrationData::first_batches(train_set.inputs.to(at::kFloat), batch, calib_batches);
    // No work folder, hence no checkpoints: the two phases train different
    // modules in one call, so an interrupted pqk stage starts again.
    train::TrainConfig phase1 = training.config(train_set.size(), ctx.recipe.threads, "", ctx.key, ctx.quiet);
    train::TrainConfig phase2 = phase1;
    phase2.epochs = finetune_epochs;
    phase2.optimizer.lr = finetune_lr;
    distillation::PqkResult res = distillation::pqk(graph, pqk, ctx.sample_shape, calib, train_set, phase1, phase2);
    quant::QuantizeReport report;
    Graph int8 = quant::convert_qat(res.student, &report);
    save_module(export_module(int8), ctx.output_model);
    ctx.details = report.to_json();
    ctx.details["result"] = res.prune.to_json();
    nlohmann::json phase1_loss = nlohmann::json::array();
    for (const auto& e : res.phase1.history) phase1_loss.push_back(e.train_loss);
    ctx.details["phase1_loss_per_epoch"] = phase1_loss;
    ctx.details["phase1_seconds"] = res.phase1.seconds;
    ctx.details["repair_steps"] = res.repair.steps;
    ctx.details["repair_seconds"] = res.repair.seconds;
    ctx.details["phase2_seconds"] = res.phase2.train.seconds;
    ctx.details["kd_used"] = res.kd_used;
    ctx.details["batch_norms_recalibrated"] = res.batch_norms_recalibrated;
    ctx.details["check"] = {{"samples", res.check_samples},
                            {"stale_teacher_top1", res.stale_teacher_check_top1},
                            {"teacher_top1", res.teacher_check_top1},
                            {"student_top1", res.student_check_top1}};
    // The INT8 model's MACs are those of the pruned float graph.
    ctx.metrics["macs"] = res.prune.macs_after;
  }
};

}  // namespace

std::unique_ptr<Stage> parse_pqk_stage(Fields& f, const ParseInfo&) {
  auto s = std::make_unique<PqkStage>();
  auto& o = s->pqk;
  if (!f.has("target_macs")) f.error("", "missing \"target_macs\" (the fraction of the MACs to keep, in (0, 1))");
  o.target_macs = f.number("target_macs", 0.5, 0, 1, true, true);
  o.prune_steps = f.integer("prune_steps", 4, 1, 1000);
  o.prune_end = f.number("prune_end", 0.5, 0, 1);
  o.criterion = pruning::parse_criterion(f.string("criterion", "l1", {"l1", "l2", "fpgm", "taylor", "random"}));
  o.distill.temperature = f.number("temperature", 4, 0, 1000, true, false);
  o.distill.alpha = f.number("alpha", 0.9, 0, 1);
  o.repair_fraction = f.number("repair_fraction", 0.25, 0, 1);
  o.check_samples = f.integer("check_samples", 2000, 0, int64_t(1) << 40);
  o.kd_gate = f.boolean("kd_gate", true);
  o.teacher = distillation::parse_pqk_teacher(f.string("teacher", "restored", {"restored", "input"}));
  o.phase1_kd = f.boolean("phase1_kd", false);
  o.phase1_float = f.boolean("phase1_float", false);
  o.recalibrate_batches = f.integer("recalibrate_bn", 20, 0, 100000);
  o.qat.calibration.method =
      quant::parse_method(f.string("calib_method", "percentile", {"minmax", "percentile", "entropy", "mse"}));
  s->calib_batches = f.integer("calib_batches", 8, 1, 100000);
  models::Recipe d;  // compress pqk's defaults: 1 epoch, SGD momentum 0.9, lr 0.01, cosine, no decay
  d.epochs = 1;
  d.lr = 0.01;
  d.weight_decay = 0;
  d.nesterov = false;
  s->training.read(f, d);
  o.scale_lr = f.number("scale_lr", s->training.recipe.lr / 2, 0, 100, true, false);
  s->finetune_epochs = f.integer("finetune_epochs", 1, 0, 10000);
  s->finetune_lr = f.number("finetune_lr", s->training.recipe.lr, 0, 100, true, false);
  return s;
}

}  // namespace compress::pipeline
