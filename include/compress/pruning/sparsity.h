#pragma once
// Fine-grained sparsity: magnitude masks on conv / linear weights, kept in
// the weights themselves (a masked weight is an exact 0.0f), so a saved float
// model stays exactly sparse and `compress quantize` can pack it for the
// sparse INT8 kernels (docs/pruning.md, "Sparsity").
//
//   Graph g = import_module(load_module("cnn.pt"));
//   auto layers = sparsity::select_layers(g, {});             // first conv and last linear skipped
//   auto weights = sparsity::graph_weights(g, layers);
//   sparsity::Pattern p = sparsity::parse_pattern("1x4");
//   sparsity::Masks m = sparsity::magnitude_masks(weights, 0.8, p, /*global=*/false);
//   sparsity::apply_masks(weights, m);                        // weights *= mask, in place
//
// Gradual pruning while fine-tuning: a SparsityCallback on the trainer
// (train/trainer.h) recomputes the masks on the AGP schedule and re-applies
// them after every optimizer step.
//
// Patterns are defined on each layer's GEMM rows, the weight as the INT8
// kernels see it: a linear weight [N, K] as is; a conv weight [O, I, kh, kw]
// as [O, kh*kw*I] in (kh, kw, c) order (NHWC im2col rows, what
// pack_conv2d_int8 and pack_conv2d_int8_sparse pack), so a conv's 1x4 block
// is 4 consecutive input channels at one (kh, kw) tap when I is a multiple
// of 4 (otherwise the row is one flat K and a block may span two taps, as
// the sparse conv kernel reads it):
//   unstructured  any weight;
//   1x4           blocks of 4 consecutive weights along K in one row, pruned
//                 whole (the 1x4 block-sparse kernel skips them);
//   N:M ("2:4")   at most N non-zeros in every group of M consecutive weights
//                 along K (the 2:4 kernel's format).
// K need not be a multiple of 4 (or M): the last block / group of a row is
// padded with zeros, as the kernels' packers pad K; a padded group of r < M
// real weights keeps at most N of them.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/script.h>

#include "compress/data/dataset.h"
#include "compress/ir/graph.h"
#include "compress/train/trainer.h"

namespace compress::sparsity {

enum class PatternKind { Unstructured, Block, NofM };

struct Pattern {
  PatternKind kind = PatternKind::Unstructured;
  int64_t block = 4;     // Block: 1 x block along K
  int64_t n = 2, m = 4;  // NofM: keep at most n of every m
  // "unstructured", "1x4", "2:4"
  std::string name() const;
  // The largest sparsity the pattern reaches: 1 - n/m for N:M; below 1 otherwise.
  double max_sparsity() const;
};

// "unstructured", "1xB" (B in 1..64; the kernels pack 1x4), "N:M" (0 < N < M <= 64).
// Anything else: Error(BadInput) naming the accepted spellings.
Pattern parse_pattern(const std::string& text);

// A conv / linear layer whose weight sparsify prunes.
struct SparseLayer {
  std::string module;         // "features.4"
  std::string weight;         // its state_dict name, "features.4.weight"
  bool conv = false;
  std::vector<int64_t> shape; // the weight's shape
  int64_t rows = 0, k = 0;    // its GEMM view [rows, k]
};

struct LayerSelection {
  // The first conv/linear layer (it reads the raw input: few weights, most
  // sensitive) and the last one (the classifier) are left dense unless asked.
  bool include_first_last = false;
  // Module paths (a path excludes everything under it) or weight names to leave dense.
  std::vector<std::string> exclude;
};

// Conv2d (groups 1) and Linear leaves of `g`, in graph order, minus what
// `sel` leaves out. Each left-out layer is added to `skipped` (when given)
// as {module, why}. A name in sel.exclude that matches no layer is
// Error(BadInput) with the closest name.
std::vector<SparseLayer> select_layers(const Graph& g, const LayerSelection& sel,
                                       std::vector<std::pair<std::string, std::string>>* skipped = nullptr);

// A weight to prune, by state_dict name (a handle: edits reach the model).
struct NamedWeight {
  std::string name;
  at::Tensor weight;
};
std::vector<NamedWeight> graph_weights(const Graph& g, const std::vector<SparseLayer>& layers);
// The same weights in a module (e.g. one exported from the graph, under training).
std::vector<NamedWeight> module_weights(const torch::jit::Module& m, const std::vector<SparseLayer>& layers);

// The GEMM rows of a weight: 2-D as is; 4-D [O, I, kh, kw] -> [O, kh*kw*I].
at::Tensor gemm_rows(const at::Tensor& weight);
// Inverse of gemm_rows for a tensor of the weight's `shape`.
at::Tensor from_gemm_rows(const at::Tensor& rows, at::IntArrayRef shape);

// Weight name -> bool mask of the weight's shape (true = kept).
using Masks = std::map<std::string, at::Tensor>;

// Magnitude masks pruning `sparsity` (in [0, 1), at most the pattern's
// max_sparsity) of the weights: the smallest |w| (unstructured), the blocks
// with the smallest L2 norm (1xB), or, for N:M, every group's M - N smallest
// in the fraction sparsity / max_sparsity of groups whose pruning removes the
// least magnitude (so a ramp reaches exact N:M at its end). Per layer, or
// with `global` ranked across all layers together (raw magnitudes;
// unstructured and 1xB only: N:M is per group by definition). Counts are
// rounded to the nearest whole weight / block / group. Error(BadInput) for
// a sparsity outside the range.
Masks magnitude_masks(const std::vector<NamedWeight>& weights, double sparsity, const Pattern& pattern, bool global);
// The checks magnitude_masks makes on its arguments (for early refusal).
void check_sparsity(double sparsity, const Pattern& pattern, bool global);

// Every mask names one of `weights`, has its shape and is bool (or 0/1);
// otherwise Error(BadInput) naming the mask and the problem.
void check_masks(const std::vector<NamedWeight>& weights, const Masks& masks);
// weight *= mask, in place (no autograd), for every weight with a mask.
void apply_masks(const std::vector<NamedWeight>& weights, const Masks& masks);

// Masks as a pickled Dict[str, Tensor] (torch.load reads it); written atomically.
void save_masks(const Masks& masks, const std::string& path);
// Error(BadInput) naming the file when it is not such a dict.
Masks load_masks(const std::string& path);

// What a weight's zeros allow.
struct WeightSparsity {
  int64_t numel = 0, zeros = 0;
  double sparsity = 0;        // zeros / numel
  double block_sparsity = 0;  // fraction of 1x4 blocks (GEMM rows, K padded) that are all zero
  bool two_of_four = false;   // every group of 4 along K has at most 2 non-zeros
  nlohmann::json to_json() const;
};
WeightSparsity measure(const at::Tensor& weight);

// How each conv / linear layer of a float or INT8 graph stores its weight
// (compress inspect): "float" for Conv2d / Linear leaves; for INT8 layers
// (compress::linear_int8[_sparse], conv2d_int8[_sparse]) the packed format, "dense",
// "depthwise", "sparse_1x4" or "sparse_2_4", read from the packed blob.
struct LayerStorage {
  std::string name, format;
  int64_t numel = 0, zeros = 0;
  double sparsity = 0;
  double block_sparsity = -1;  // float weights only (-1: not computed)
  bool two_of_four = false;    // float weights only
};
std::vector<LayerStorage> describe_layers(const Graph& g);

// Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3 for
// t in [t0, t0 + n dt]; s_i before, s_f after. Masks change only at
// t0, t0 + dt, ..., t0 + n dt.
struct AgpSchedule {
  double initial_sparsity = 0, final_sparsity = 0;
  int64_t begin_step = 0;  // t0
  int64_t frequency = 1;   // dt (steps between mask updates), >= 1
  int64_t updates = 1;     // n (mask updates after t0), >= 1
  int64_t end_step() const { return begin_step + updates * frequency; }
  // The sparsity in force after `step` optimizer steps.
  double at(int64_t step) const;
  // Whether masks are recomputed after `step` optimizer steps.
  bool updates_at(int64_t step) const;
};

// A schedule ramping from 0 to `final_sparsity` over the first `ramp`
// fraction of `total_steps`, in `updates` mask updates (at least one step apart).
AgpSchedule agp_over(double final_sparsity, int64_t total_steps, double ramp, int64_t updates);

// Keeps `weights` of the module under training sparse: after every
// optimizer step the masks are re-applied (momentum and weight decay move
// pruned weights off zero), and pruned weights' gradients are zeroed after
// backward (their momentum stays zero); on the schedule's update steps the
// masks are recomputed from the current magnitudes. Without masks at the
// first step (none set), it computes them for the schedule's sparsity then.
class SparsityCallback : public train::Callback {
 public:
  SparsityCallback(std::vector<SparseLayer> layers, Pattern pattern, bool global, AgpSchedule schedule);
  // Fixed masks (one-shot or given): never recomputed when the schedule is constant.
  void set_masks(Masks masks);

  void after_backward(train::StepContext& ctx) override;
  void after_step(train::StepContext& ctx) override;

  const Masks& masks() const { return masks_; }
  double current_sparsity() const { return current_; }
  int64_t mask_updates() const { return updates_; }

 private:
  void bind(const torch::jit::Module& m);

  std::vector<SparseLayer> layers_;
  Pattern pattern_;
  bool global_;
  AgpSchedule schedule_;
  std::vector<NamedWeight> weights_;
  Masks masks_;
  double current_ = -1;
  int64_t updates_ = 0;
};

// The whole pass, as `compress sparsify` and the pipeline's sparsify stage
// run it: select the layers, compute (or take) the masks, optionally
// fine-tune with them kept (recomputed along an AGP ramp, or fixed), and
// describe the result.
enum class Schedule { OneShot, Agp };
struct SparsifyOptions {
  double sparsity = 0.5;  // fraction of the selected weights to zero (checked as magnitude_masks does)
  Pattern pattern;
  bool global = false;
  LayerSelection selection;
  Schedule schedule = Schedule::OneShot;  // Agp: from 0 to `sparsity` while fine-tuning (needs fine-tuning)
  double ramp = 0.75;                     // Agp: reach the target after this fraction of the steps, in (0, 1]
  int64_t mask_updates = 20;              // Agp: mask updates along the ramp, >= 1
  nlohmann::json to_json() const;
};

struct SparsifyResult {
  torch::jit::Module model;  // the sparse model, eval mode
  std::vector<SparseLayer> layers;
  std::vector<std::pair<std::string, std::string>> skipped;  // {module, why} left dense
  Masks masks;               // the final masks
  int64_t mask_updates = 0;  // recomputations during fine-tuning
  // "layers" (per layer: name, weight, shape and measure()'s fields),
  // "skipped", "selected_sparsity", "model_sparsity", with fine-tuning
  // "agp" (its steps) and "mask_updates", with a test set "accuracy_pruned"
  // (top-1 with the masks applied, before fine-tuning).
  nlohmann::json report;
};

// `model` is not modified. `given`: masks to apply instead of computing them
// (every selected layer with a mask is pruned, and only those; first and last
// layers are selectable then). `finetune` with epochs > 0: fine-tunes on
// `train_set` (required then) with `callbacks` added to the trainer.
// Error(BadInput) for options the checks above refuse, no layer left to
// prune, masks that do not match, or an AGP schedule without fine-tuning.
SparsifyResult sparsify(const torch::jit::Module& model, const SparsifyOptions& options, const Masks* given = nullptr,
                        const train::TrainConfig* finetune = nullptr, const data::TensorDataset* train_set = nullptr,
                        const data::TensorDataset* test_set = nullptr,
                        const std::vector<std::shared_ptr<train::Callback>>& callbacks = {});

}  // namespace compress::sparsity
