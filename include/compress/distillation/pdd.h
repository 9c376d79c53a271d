#pragma once
// PDD, pruning during distillation (Dan et al., Cognitive Computation 2024):
// every prunable channel group of the student (pruning's dependency groups)
// gets a learnable gate per channel, binary in the forward pass (open when
// the gate is > 0) with the ApproxSign surrogate gradient in the backward
// pass; gates and weights train together under cross-entropy + KD. Unlike
// the published code, a MACs budget drives the gates: a penalty
// budget_weight * max(0, gated MACs / MACs - target) while the gated model is
// over budget. Closed channels are then removed physically (the pruning
// engine) and the smaller student is fine-tuned under the same teacher.
//
//   distillation::PddOptions o;
//   o.target_macs = 0.6;
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
  double gate_lr = 0.05;        // learning rate of the gates (SGD with the run's momentum, no decay)
  double gate_init = 0.5;       // gates start open, inside ApproxSign's (-1, 1) where gradients flow

  // Error(BadInput) for a target outside (0, 1), a non-positive weight, rate
  // or initial gate, or feature losses (PDD gates channels; hints would pin them).
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
};

// Runs PDD on `student` in place: on return it is the pruned, fine-tuned
// student. `search` trains the gates (its epochs are PDD's `--epochs`);
// `finetune` trains the pruned student (epochs 0: skip). When the gates end
// above the budget, the open channels with the smallest gates close until it
// is met; every group keeps at least one channel.
PddResult pdd(torch::jit::Module teacher, Graph& student, const PddOptions& options, std::vector<int64_t> input_shape,
              const data::TensorDataset& train, const train::TrainConfig& search, const train::TrainConfig& finetune);

}  // namespace compress::distillation
