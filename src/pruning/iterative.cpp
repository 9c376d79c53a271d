#include "compress/pruning/iterative.h"

#include <cmath>
#include <map>
#include <string>

#include "compress/error.h"

namespace compress::pruning {

nlohmann::json IterativeStep::to_json() const {
  return {{"step", step}, {"macs_after", macs_after}, {"macs_kept", macs_kept}, {"params_after", params_after}};
}

namespace {

void check(const PruneOptions& o, const IterativeOptions& it) {
  if (it.steps < 1) bad_input("iterative pruning: the number of steps must be at least 1, got " + std::to_string(it.steps));
  if (it.steps > 1 && (!o.target_macs || o.latency_aware || o.ratio || o.target_latency_ms || o.target_speedup || !o.ratios.empty()))
    bad_input("iterative pruning splits a MACs budget into steps: give target_macs alone (without the latency-aware ranking)");
  if (it.steps > 1 && it.prune_step)
    bad_input("iterative pruning: a custom prune step (a measured latency budget) runs in one step only");
  if (it.recalibrate_batches < 0) bad_input("iterative pruning: the batch-norm re-estimation batches must not be negative");
  if (it.recalibrate_batches > 0 && !it.recalibration_data)
    bad_input("iterative pruning: batch-norm re-estimation needs data");
}

// Folds one round's result into the whole run's (round 1's result is the start).
void merge(PruneResult& run, const PruneResult& round, std::map<std::string, size_t>& change_of_group) {
  run.macs_after = round.macs_after;
  run.params_after = round.params_after;
  run.frozen = round.frozen;
  run.ratio_used = round.ratio_used;
  run.seconds.analysis += round.seconds.analysis;
  run.seconds.scores += round.seconds.scores;
  run.seconds.search += round.seconds.search;
  run.seconds.removal += round.seconds.removal;
  for (const GroupChange& c : round.changes) {
    if (auto it = change_of_group.find(c.name); it != change_of_group.end()) {
      run.changes[it->second].after = c.after;
    } else {
      change_of_group[c.name] = run.changes.size();
      run.changes.push_back(c);
    }
  }
}

}  // namespace

IterativeResult prune_iteratively(Graph& graph, const PruneOptions& options, const IterativeOptions& it) {
  check(options, it);
  const auto prune_step = it.prune_step ? it.prune_step : [](Graph& g, const PruneOptions& o) { return prune(g, o); };
  IterativeResult out;
  std::map<std::string, size_t> change_of_group;  // index in out.result.changes
  for (int64_t step = 1; step <= it.steps; ++step) {
    PruneOptions round = options;
    if (it.steps > 1) {
      // target^(step/steps) of the input model's MACs, as a fraction of the current model's.
      const double goal = std::pow(*options.target_macs, double(step) / double(it.steps));
      round.target_macs = step == 1 ? goal : goal * double(out.result.macs_before) / double(out.result.macs_after);
    }
    // An earlier round may have gone past this one's target: then it only fine-tunes.
    const bool prune_now = !round.target_macs || *round.target_macs < 1;
    PruneResult round_result;
    if (prune_now) {
      round_result = prune_step(graph, round);
    } else {
      round_result = out.result;
      round_result.changes.clear();
    }
    IterativeStep record;
    record.step = step;
    record.pruned = prune_now;
    if (prune_now && it.recalibrate_batches > 0) {
      record.batch_norms_recalibrated = recalibrate_batch_norm(graph, *it.recalibration_data, it.recalibrate_batches);
      out.batch_norms_recalibrated = record.batch_norms_recalibrated;
    }
    if (it.fine_tune) it.fine_tune(graph, step, it.steps);
    if (step == 1) {
      out.result = round_result;
      for (size_t i = 0; i < round_result.changes.size(); ++i) change_of_group[round_result.changes[i].name] = i;
    } else {
      merge(out.result, round_result, change_of_group);
    }
    record.macs_after = round_result.macs_after;
    record.params_after = round_result.params_after;
    record.macs_kept = double(round_result.macs_after) / double(out.result.macs_before);
    out.steps.push_back(record);
  }
  return out;
}

}  // namespace compress::pruning
