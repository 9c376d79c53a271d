// The stage kinds a recipe may use. Adding one: a stage_<kind>.cpp with a
// Stage subclass and its parser (see stage_prune.cpp), declared and listed here.
#include "compress/pipeline/recipe.h"

namespace compress::pipeline {

std::unique_ptr<Stage> parse_train_stage(Fields& f, const ParseInfo& info);
std::unique_ptr<Stage> parse_prune_stage(Fields& f, const ParseInfo& info);
std::unique_ptr<Stage> parse_amc_stage(Fields& f, const ParseInfo& info);
std::unique_ptr<Stage> parse_sparsify_stage(Fields& f, const ParseInfo& info);
std::unique_ptr<Stage> parse_distill_stage(Fields& f, const ParseInfo& info);
std::unique_ptr<Stage> parse_pdd_stage(Fields& f, const ParseInfo& info);
std::unique_ptr<Stage> parse_pqk_stage(Fields& f, const ParseInfo& info);
std::unique_ptr<Stage> parse_qat_stage(Fields& f, const ParseInfo& info);
std::unique_ptr<Stage> parse_quantize_stage(Fields& f, const ParseInfo& info);
std::unique_ptr<Stage> parse_eval_stage(Fields& f, const ParseInfo& info);
std::unique_ptr<Stage> parse_bench_stage(Fields& f, const ParseInfo& info);

const std::vector<StageKind>& stage_kinds() {
  static const std::vector<StageKind> kinds = {
      {"train", "train (or fine-tune) the model", parse_train_stage},
      {"prune", "structured pruning under a MACs or ratio budget, optional fine-tuning", parse_prune_stage},
      {"amc", "per-group keep ratios learned by a DDPG agent under a MACs budget (AMC), optional fine-tuning", parse_amc_stage},
      {"sparsify", "fine-grained sparsity (unstructured, 1x4, 2:4), one-shot or AGP while fine-tuning", parse_sparsify_stage},
      {"distill", "knowledge distillation from a teacher into the current model", parse_distill_stage},
      {"pdd", "pruning during distillation (learned gates under a MACs budget)", parse_pdd_stage},
      {"pqk", "pruning with QAT, then KD from the unpruned network with removed weights restored; INT8", parse_pqk_stage},
      {"qat", "quantization-aware training, then INT8 conversion", parse_qat_stage},
      {"quantize", "post-training INT8 quantization", parse_quantize_stage},
      {"eval", "accuracy and confusion matrix of the current model", parse_eval_stage},
      {"bench", "latency of every model so far, side by side", parse_bench_stage},
  };
  return kinds;
}

}  // namespace compress::pipeline
