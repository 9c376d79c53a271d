#pragma once
// Iterative pruning: reach a MACs budget in N rounds of prune, re-estimate
// the batch norms, fine-tune. Round k keeps at most target^(k/N) of the
// input model's MACs (each round removes the same fraction of what is left),
// and the criterion scores the weights the previous round's fine-tuning left.
//
//   pruning::PruneOptions o;
//   o.target_macs = 0.5;
//   pruning::IterativeOptions it;
//   it.steps = 2;
//   it.recalibration_data = &train_set;  it.recalibrate_batches = 16;
//   it.fine_tune = [&](Graph& g, int64_t step, int64_t steps) { ... train g, leave its weights in g ... };
//   pruning::IterativeResult r = pruning::prune_iteratively(graph, o, it);
//
// One step (the default) is prune(), then the re-estimation and the
// fine-tuning: the same driver serves one-shot pruning with recovery.
#include <cstdint>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data/dataset.h"
#include "compress/ir/graph.h"
#include "compress/pruning/prune.h"

namespace compress::pruning {

struct IterativeOptions {
  // Rounds; more than one needs options.target_macs (not latency_aware).
  int64_t steps = 1;
  // After each round's pruning, re-estimate every batch norm from this many
  // batches of `recalibration_data` (0: not; see recalibrate_batch_norm).
  int64_t recalibrate_batches = 0;
  const data::TensorDataset* recalibration_data = nullptr;
  // Called after each round's pruning and re-estimation with the pruned
  // graph, the round (1-based) and the number of rounds; empty: no
  // fine-tuning. Before the last round it must leave the fine-tuned weights
  // in `graph` (the next round scores and prunes them); in the last round it
  // may keep the trained model elsewhere (the caller's).
  std::function<void(Graph& graph, int64_t step, int64_t steps)> fine_tune;
  // Prunes one round (default: prune()); for budgets checked by measurement
  // (prune_to_latency) in a one-round run.
  std::function<PruneResult(Graph& graph, const PruneOptions& options)> prune_step;
};

struct IterativeStep {
  int64_t step = 0;
  bool pruned = false;  // false when an earlier round already reached this round's target
  int64_t macs_after = 0, params_after = 0;
  double macs_kept = 0;  // of the input model's MACs
  int batch_norms_recalibrated = 0;
  nlohmann::json to_json() const;  // {"step", "macs_after", "macs_kept", "params_after"}
};

struct IterativeResult {
  // The whole run: before = the input model, after = the last round; each
  // group's width before the first round that shrank it and after the last;
  // the rounds' step times summed.
  PruneResult result;
  std::vector<IterativeStep> steps;
  int batch_norms_recalibrated = 0;  // by the last round that pruned
};

// Prunes `graph` in place. Error(BadInput) for steps < 1, steps > 1 without
// target_macs or with latency_aware or another budget, recalibrate_batches
// without data, and whatever prune() refuses.
IterativeResult prune_iteratively(Graph& graph, const PruneOptions& options, const IterativeOptions& iterative);

}  // namespace compress::pruning
