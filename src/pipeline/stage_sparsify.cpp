// sparsify: fine-grained sparsity (unstructured, 1x4 blocks or N:M), one-shot
// or along an AGP ramp while fine-tuning; a later quantize stage packs the
// zeros for the sparse INT8 kernels where they are faster.
#include <ATen/Parallel.h>

#include "compress/io.h"
#include "compress/pruning/sparsity.h"
#include "compress/threads.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class SparsifyStage : public Stage {
 public:
  sparsity::SparsifyOptions sparsify;
  TrainingOptions finetune;  // epochs 0: no fine-tuning

  nlohmann::json options() const override {
    nlohmann::json j = sparsify.to_json();
    j["finetune"] = finetune.to_json();
    return j;
  }
  bool needs_data() const override { return finetune.recipe.epochs > 0; }

  void run(StageContext& ctx) override {
    compress::set_num_threads(ctx.recipe.threads);
    torch::jit::Module model = load_module(ctx.input_model);
    sparsity::SparsifyResult res;
    if (finetune.recipe.epochs > 0) {
      const data::TensorDataset& train_set = ctx.data.train();
      train::TrainConfig cfg = finetune.config(train_set.size(), ctx.recipe.threads, ctx.work_dir, ctx.key, ctx.quiet);
      auto curve = std::make_shared<LossCurve>();
      res = sparsity::sparsify(model, sparsify, nullptr, &cfg, &train_set, nullptr, {curve});
      ctx.details["loss_curve"] = curve->to_json();
    } else {
      res = sparsity::sparsify(model, sparsify);
    }
    save_module(res.model, ctx.output_model);
    for (const auto& kv : res.report.items()) ctx.details[kv.key()] = kv.value();
  }
};

}  // namespace

std::unique_ptr<Stage> parse_sparsify_stage(Fields& f, const ParseInfo&) {
  auto s = std::make_unique<SparsifyStage>();
  auto& o = s->sparsify;
  const std::string pattern = f.string("pattern", "unstructured", {"unstructured", "1x4", "2:4"});
  o.pattern = sparsity::parse_pattern(pattern);
  const double max = o.pattern.max_sparsity();
  if (o.pattern.kind == sparsity::PatternKind::NofM) {
    o.sparsity = f.number("sparsity", max, 0, max, false, false);
  } else {
    if (!f.has("sparsity")) f.error("", "missing \"sparsity\" (the fraction of the selected weights to zero, in [0, 1))");
    o.sparsity = f.number("sparsity", 0.5, 0, 1, false, true);
  }
  o.global = f.boolean("global", false);
  if (o.global && o.pattern.kind == sparsity::PatternKind::NofM)
    f.error("global", "global ranking does not apply to " + pattern + " (N:M is per group by definition)");
  o.selection.include_first_last = f.boolean("include_first_last", false);
  o.selection.exclude = f.strings("exclude");
  s->finetune = read_finetune(f);
  const bool finetuning = s->finetune.recipe.epochs > 0;
  const std::string schedule = f.string("schedule", finetuning ? "agp" : "oneshot", {"agp", "oneshot"});
  o.schedule = schedule == "agp" ? sparsity::Schedule::Agp : sparsity::Schedule::OneShot;
  if (o.schedule == sparsity::Schedule::Agp && !finetuning)
    f.error("schedule", "agp prunes gradually while fine-tuning: it needs \"finetune\": {\"epochs\": N}");
  o.ramp = f.number("ramp", 0.75, 0, 1, true, false);
  o.mask_updates = f.integer("mask_updates", 20, 1, 1 << 20);
  return s;
}

}  // namespace compress::pipeline
