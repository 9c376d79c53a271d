#pragma once
// PQK (Kim, Chang, Kwak, Interspeech 2021): pruning, quantization and
// knowledge distillation in two phases, with no separately trained teacher.
//
//   Phase 1, iterative pruning with quantization-aware training: the model
//   (batch norm folded, fake quantization as in qat.h, LSQ scales) trains
//   while whole channels of its pruning dependency groups are masked to zero
//   on a schedule, `prune_steps` times, the kept MACs falling from 1 to
//   `target_macs` along the cubic curve of Zhu & Gupta's gradual pruning;
//   the last step comes at `prune_end` of the phase, the rest of it lets the
//   student recover. Each step ranks the channels by `criterion` on the
//   current weights (already masked channels stay masked) and takes the
//   per-group widths `pruning::prune` would choose for that MACs fraction.
//   The values of the masked weights at the moment they were masked are kept.
//   The masked channels are then removed physically (pruning::prune_channels).
//
//   Teacher repair: the teacher is the unpruned network again: the kept
//   channels carry the phase-1 trained weights and the removed ones their
//   kept values (restored). Those two sets of weights were never trained
//   together (the kept ones adapted to a network without the others), so
//   the restored network is worse than the student it should teach. The
//   repair trains the restored entries alone, in float, on a random
//   `repair_fraction` of the training set, every kept entry frozen, so the
//   teacher still contains the student exactly.
//
//   Phase 2, distillation: the pruned student, freshly calibrated fake
//   quantization on its new shapes, trains under KD from the teacher (KL
//   with the T^2 factor + cross-entropy by alpha, distill.h); the teacher
//   runs in float and stays frozen. With `kd_gate`, KD runs only when the
//   teacher beats the student on `check_samples` training samples the
//   repair did not see; otherwise phase 2 is plain cross-entropy.
//
//   `phase1_kd` distils phase 1 too, from the input model.
//
//   `phase1_float` trains phase 1 in float instead (the model as given,
//   batch norms unfolded and learning, the same masks; masking a channel
//   zeroes its batch norm's scale, shift and statistics too, so it still
//   outputs zero), re-estimates the batch norms after the removal and
//   fake-quantizes only in phase 2: the final widths get float training
//   before QAT, as in prune-then-QAT.
//
//   `teacher = PqkTeacher::Input` takes the float model the user gave, as it
//   was before phase 1, as the teacher instead (no repair): still no
//   separately trained teacher, and the only one that keeps what the unpruned
//   network knew before phase 1 spent its epochs adapting the kept channels
//   to a smaller network (docs/distillation.md, PQK on the zoo resnet).
//
// The result converts to the real INT8 model like `compress qat`:
//
//   distillation::PqkOptions o;                // target_macs 0.5, KD T = 4, alpha = 0.9
//   distillation::PqkResult r = distillation::pqk(import_module(m), o, {1, 28, 28}, calib, train, phase1, phase2);
//   save_module(export_module(quant::convert_qat(r.student)), "model.pqk.pt");
//
// Why masks during phase 1 and not physical removal at every step: a masked
// channel outputs exactly zero through the folded convolution, its ReLU and
// its fake quantizer (zero is a code), so the masked network computes what
// the physically pruned one does, while the training module, the optimizer
// state and the learned quantization scales stay the same across steps, and
// the removed weights stay where the phase-2 teacher needs them.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/script.h>

#include "compress/distillation/distill.h"
#include "compress/ir/graph.h"
#include "compress/pruning/prune.h"
#include "compress/quantization/qat.h"

namespace compress::distillation {

// Where phase 2's teacher comes from.
enum class PqkTeacher {
  Restored,  // the paper's: the phase-1 network with the removed weights restored (then repaired)
  Input,     // the float model given to pqk(), unchanged, as it was before phase 1
};

// "restored" or "input"; Error(BadInput) naming --teacher for anything else.
PqkTeacher parse_pqk_teacher(const std::string& name);

struct PqkOptions {
  double target_macs = 0.5;  // keep at most this fraction of the model's MACs, in (0, 1)
  int64_t prune_steps = 4;   // masking steps in phase 1, >= 1; the first one before any training
  double prune_end = 0.5;    // the last step comes after this fraction of phase 1's steps, in [0, 1]
  pruning::Criterion criterion = pruning::Criterion::L1;
  DistillOptions distill;    // phase 2's KD settings (logits only)
  quant::QatOptions qat;     // lsq only (the distiller exports the student without taps)
  double scale_lr = 0.005;   // learning rate of the quantization scales, both phases
  // Teacher repair: the fraction of one epoch (a random subset of the
  // training set) spent training the restored weights, in [0, 1]; 0: off.
  double repair_fraction = 0.25;  // only for PqkTeacher::Restored
  PqkTeacher teacher = PqkTeacher::Restored;
  // Phase 1 also distils, from the input model (the only teacher that
  // exists before phase 1), with `distill`'s settings; no gate.
  bool phase1_kd = false;
  bool kd_gate = true;          // KD only when the teacher beats the student on the check samples
  int64_t check_samples = 2000;  // training samples outside the repair subset, for the gate and the report
  // Phase 1 in float: the network as given (batch norms unfolded, training)
  // learns under the same masks with no fake quantization; after the
  // physical removal its batch norms are re-estimated on
  // `recalibrate_batches` batches of 64 training samples (0: not), and
  // fake quantization starts with phase 2 (calibrated afresh, no scales
  // carried over). What prune-then-QAT does: float training at the final
  // widths, then QAT.
  bool phase1_float = false;
  int64_t recalibrate_batches = 20;  // >= 0; only with phase1_float

  // Error(BadInput) for a target outside (0, 1), fewer than one prune step,
  // prune_end outside [0, 1], bad KD settings, feature losses, the ste method,
  // a non-positive scale learning rate, repair_fraction outside [0, 1], a
  // negative check_samples or a negative recalibrate_batches.
  void validate() const;
};

// One masking step of phase 1.
struct PqkPruneStep {
  int64_t after_steps = 0;   // optimizer steps taken before it
  double target = 1;         // the MACs fraction asked for
  double macs_kept = 1;      // the fraction the masked network computes
};

struct PqkResult {
  train::TrainResult phase1;
  std::vector<EpochTerms> phase1_terms;  // with phase1_kd: the loss terms per epoch (empty without)
  std::vector<PqkPruneStep> prune_steps;
  std::map<std::string, std::vector<int64_t>> kept_channels;  // per shrunk group, indices into the unpruned group
  pruning::PruneResult prune;  // the physical removal after phase 1 (MACs of the folded float graphs)
  Graph stale_teacher;         // the unpruned network as restored, before the repair (whichever teacher is used)
  Graph teacher;               // phase 2's teacher: stale_teacher after the repair (the same without one), or the input
  train::TrainResult repair;   // the repair's training (no steps without one)
  // Top-1 on the check samples (training samples the repair did not use;
  // 0..1; -1 when check_samples is 0): the teacher before and after the
  // repair (the restored network and phase 2's teacher, which is the input
  // model with PqkTeacher::Input) and the fake-quant student as phase 2
  // starts from it.
  int64_t check_samples = 0;   // how many (check_samples, at most half the training set)
  double stale_teacher_check_top1 = -1, teacher_check_top1 = -1, student_check_top1 = -1;
  bool kd_used = false;        // phase 2 distilled (false: cross-entropy alone, by the gate or alpha = 0, or no phase 2)
  Graph phase1_student;        // the pruned float student as phase 1 left it (folded; with phase1_float unfolded,
                               // batch norms re-estimated)
  int batch_norms_recalibrated = 0;  // phase1_float: batch norms re-estimated after the removal
  DistillResult phase2;
  quant::QatModel student;     // the pruned student after phase 2: quant::convert_qat(student) is the INT8 model
};

// Runs both phases on `model` (a float classifier; left unchanged).
// `input_shape`: one sample without the batch dimension; `calibration`
// starts the fake quantizers of both phases (from the same inputs).
// `phase1` and `phase2` are the two trainings (epochs, optimizer, schedule,
// threads...); phase 2 with 0 epochs keeps phase 1's student (no repair, no
// KD). The repair trains with phase 2's optimizer settings for one pass over
// its subset.
PqkResult pqk(const Graph& model, const PqkOptions& options, std::vector<int64_t> input_shape,
              const quant::CalibrationData& calibration, const data::TensorDataset& train,
              const train::TrainConfig& phase1, const train::TrainConfig& phase2);

}  // namespace compress::distillation
