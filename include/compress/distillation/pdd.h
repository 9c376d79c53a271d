#pragma once
// PDD, pruning during distillation (Dan et al., Cognitive Computation 2024):
// every prunable channel group of the student (pruning's dependency groups)
// gets a learnable gate per channel, binary in the forward pass (open when
// the gate is > 0) with the ApproxSign surrogate gradient in the backward
// pass; gates and weights train together under cross-entropy + KD. Unlike
// the published code, a MACs budget drives the gates: a penalty
// budget_weight * |gated MACs / MACs - target| outside a dead band below the
// target, with a per-group floor, its push split over the gates evenly or by
// each channel's importance. Closed channels are then removed physically (the
// pruning engine) and the smaller student is fine-tuned under the same
// teacher, on its own learning-rate schedule or continuing the search's.
//
//   distillation::PddOptions o;
//   o.target_macs = 0.6;
//   o.budget_by_importance = true;  // from a fresh student: docs/distillation.md
//   o.one_schedule = true;
//   distillation::PddResult r = distillation::pdd(teacher, student_graph, o, {1, 28, 28}, train, search, finetune);
//   save_module(export_module(student_graph), "student.pdd.pt");
#include <cstdint>
#include <string>
#include <vector>

#include <torch/script.h>

#include "compress/distillation/distill.h"
#include "compress/pruning/prune.h"

namespace compress::distillation {

struct PddOptions {
  DistillOptions distill;       // the KD settings of both phases (no feature losses)
  double target_macs = 0.6;     // keep at most this fraction of the student's MACs, in (0, 1)
  double budget_weight = 5.0;   // weight of the MACs penalty, > 0
  // The penalty is two-sided with a dead band: it pushes the gates down
  // while the gated MACs exceed the target, up (reopening closed channels)
  // while they are more than `budget_tolerance` below it, and not at all in
  // between, where the task loss alone moves the gates.
  double budget_tolerance = 0.05;
  // Learning rate of the gates (SGD with the run's momentum and schedule, no
  // weight decay): 0.05 with momentum 0.9 carried whole groups far past the budget.
  double gate_lr = 0.005;
  // Gates start at gate_init (> 0: open, < 0: closed) and are clipped to
  // [-|gate_init|, |gate_init|] after each step, where ApproxSign's gradient
  // (1 - |gate|) is at least 1 - |gate_init|: a closed gate can always reopen.
  double gate_init = 0.5;
  // Every group keeps at least this fraction of its channels open (at least
  // one channel), in (0, 1]: the penalty alone emptied the first layer.
  double min_group_keep = 0.25;
  // The learning-rate schedule of the two phases. false: the fine-tuning
  // restarts its own schedule at its own rate (`finetune`'s). true: one
  // schedule at the search's rate and settings runs over the epochs of both
  // phases: the search takes its first epochs, the fine-tuning continues
  // where the search stopped, as training for the same total epochs in one
  // run would (the fair protocol for PDD from a fresh student).
  bool one_schedule = false;
  // How the budget's push on a group is split over its gates. false: evenly
  // (each gate pushed by its group's MAC share over its width: the layer
  // whose channels cost most per channel, often the first, empties down to
  // its floor first). true: each gate's share is scaled by the mean
  // importance of all gated channels over its own (within [1/8, 8]), the
  // importance being a running mean of |d task loss / d mask| (first-order
  // Taylor), so channels that carry little close before ones that carry
  // much, whatever layer they are in.
  bool budget_by_importance = false;

  // Error(BadInput) for a target outside (0, 1), a non-positive weight or
  // rate, a tolerance outside [0, target), an initial gate of 0 or outside (-1, 1), a floor outside (0, 1], or feature
  // losses (PDD gates channels; hints would pin them).
  void validate() const;
};

struct PddGroupResult {
  std::string name;
  int64_t before = 0, after = 0;
};

struct PddResult {
  DistillResult search;                // gates and weights together
  std::vector<double> gated_macs;      // fraction of the MACs the binary gates kept, at each epoch's end
  std::vector<PddGroupResult> groups;  // every gated group
  pruning::PruneResult prune;          // the physical removal
  DistillResult finetune;              // empty when no fine-tuning epochs
  std::vector<double> epoch_lr;        // the learning rate of each epoch's first step, search then fine-tuning
};

// Runs PDD on `student` in place: on return it is the pruned, fine-tuned
// student. `search` trains the gates (its epochs are PDD's `--epochs`);
// `finetune` trains the pruned student (epochs 0: skip; with
// options.one_schedule its rate and schedule give way to the search's). When
// the gates end above the budget, the open channels with the smallest gates
// close until it is met; then the closed channels with the largest gates
// reopen while it stays met; every group keeps its floor. Error(BadInput)
// when the floor alone keeps more than the target.
PddResult pdd(torch::jit::Module teacher, Graph& student, const PddOptions& options, std::vector<int64_t> input_shape,
              const data::TensorDataset& train, const train::TrainConfig& search, const train::TrainConfig& finetune);

}  // namespace compress::distillation
