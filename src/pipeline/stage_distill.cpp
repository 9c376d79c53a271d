// distill: trains the current model (the student) under a frozen teacher.
#include <algorithm>

#include <ATen/Parallel.h>

#include "compress/distillation/distill.h"
#include "compress/io.h"
#include "compress/threads.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class DistillStage : public Stage {
 public:
  ModelRef teacher;
  distillation::DistillOptions distill;
  TrainingOptions training;

  nlohmann::json options() const override {
    std::vector<std::string> losses, features;
    for (auto l : distill.losses) losses.push_back(distillation::loss_name(l));
    for (const auto& p : distill.features) features.push_back(p.student + "=" + p.teacher);
    nlohmann::json j = training.to_json();
    j["teacher"] = teacher.text();
    j["loss"] = losses;
    j["features"] = features;
    j["temperature"] = distill.temperature;
    j["alpha"] = distill.alpha;
    j["hint_weight"] = distill.hint_weight;
    j["at_beta"] = distill.at_beta;
    return j;
  }
  std::vector<ModelRef> model_refs() const override { return {teacher}; }
  bool needs_data() const override { return true; }

  void run(StageContext& ctx) override {
    const data::TensorDataset& train_set = ctx.data.train();
    compress::set_num_threads(ctx.recipe.threads);
    distillation::Distiller distiller(load_module(ctx.ref_models.at(0)), load_graph(ctx.input_model, ctx.sample_shape),
                                      distill, ctx.sample_shape);
    auto curve = std::make_shared<LossCurve>();
    distiller.add_callback(curve);
    train::TrainConfig cfg = training.config(train_set.size(), ctx.recipe.threads, ctx.work_dir,
                                             ctx.key, ctx.quiet);
    distillation::DistillResult res = distiller.fit(train_set, cfg);
    save_module(distiller.student_module(), ctx.output_model);
    nlohmann::json epochs = nlohmann::json::array();
    for (const auto& t : res.terms)
      epochs.push_back({{"total", t.total}, {"cross_entropy", t.cross_entropy}, {"kd", t.kd}, {"hint", t.hint},
                        {"attention", t.attention}});
    ctx.details["epochs"] = epochs;
    ctx.details["loss_curve"] = curve->to_json();
    ctx.details["train_seconds"] = res.train.seconds;
    ctx.details["teacher_cached"] = res.teacher_cached;
  }
};

}  // namespace

std::unique_ptr<Stage> parse_distill_stage(Fields& f, const ParseInfo& info) {
  auto s = std::make_unique<DistillStage>();
  if (auto ref = parse_model_ref(f, "teacher", info.index, info.base_dir)) s->teacher = *ref;
  auto& d = s->distill;
  d.losses.clear();
  for (const auto& l : f.strings("loss", {"kd"}, {"kd", "fitnet", "at"})) d.losses.push_back(distillation::parse_loss(l));
  for (const auto& p : f.strings("features")) {
    if (p.find('=') == std::string::npos) f.error("features", "'" + p + "' is not STUDENT_VALUE=TEACHER_VALUE");
    else d.features.push_back(distillation::parse_feature_pair(p));
  }
  d.temperature = f.number("temperature", 4.0, 0, 1000, /*lo_open=*/true);
  d.alpha = f.number("alpha", 0.9, 0, 1);
  d.hint_weight = f.number("hint_weight", 1.0, 0);
  d.at_beta = f.number("at_beta", 1000.0, 0);
  const bool feature_loss = std::count(d.losses.begin(), d.losses.end(), distillation::Loss::KD) != long(d.losses.size());
  if (feature_loss && d.features.empty()) f.error("features", "fitnet and at need feature pairs");
  if (!feature_loss && !d.features.empty()) f.error("features", "feature pairs need the loss fitnet or at");
  s->training.read(f, default_training(f, info));
  return s;
}

}  // namespace compress::pipeline
