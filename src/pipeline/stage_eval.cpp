// eval: accuracy of the current model on a split of the data, with the
// confusion matrix (every model-making stage already reports test top-1).
#include <ATen/Parallel.h>

#include "compress/io.h"
#include "compress/train/evaluate.h"
#include "compress/threads.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class EvalStage : public Stage {
 public:
  std::string split = "test";
  int64_t batch_size = 500;

  bool makes_model() const override { return false; }
  bool needs_data() const override { return true; }
  nlohmann::json options() const override { return {{"split", split}, {"batch_size", batch_size}}; }

  void run(StageContext& ctx) override {
    compress::set_num_threads(ctx.recipe.threads);
    torch::jit::Module m = load_module(ctx.input_model);
    const data::TensorDataset& ds = split == "train" ? ctx.data.train() : ctx.data.test();
    train::EvalResult ev = train::evaluate(m, ds, batch_size);
    const bool fmnist = ctx.data.spec().source == "fashion-mnist";
    ctx.details = nlohmann::json::parse(ev.to_json(fmnist ? data::fashion_mnist_class_names() : nullptr));
    ctx.details["split"] = split;
  }
};

}  // namespace

std::unique_ptr<Stage> parse_eval_stage(Fields& f, const ParseInfo&) {
  auto s = std::make_unique<EvalStage>();
  s->split = f.string("split", "test", {"test", "train"});
  s->batch_size = f.integer("batch_size", 500, 1, 1 << 20);
  return s;
}

}  // namespace compress::pipeline
