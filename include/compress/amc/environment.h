#pragma once
// AMC's pruning environment: one step per prunable channel group (see
// compress/pruning/groups.h) in graph order; the action is the group's keep
// ratio; at the end of an episode the model is pruned with those ratios by
// the structured pruning engine (magnitude criterion, no fine-tuning),
// optionally its batch norms are re-estimated on a few training batches, and
// it is evaluated on a held-out validation set. docs/amc.md.
//
// The budget is a fraction of the MACs or a latency in ms predicted from a
// LatencyTable. Each action is clipped so the budget stays reachable: the
// largest keep count at most the proposed one such that the cost, with this
// group at that count and every later group at its minimum, fits (AMC's
// constraint). So every episode ends within the budget.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compress/amc/ddpg.h"
#include "compress/analysis/latency.h"
#include "compress/data/dataset.h"
#include "compress/ir/graph.h"
#include "compress/pruning/prune.h"

namespace compress::amc {

struct PruningEnvConfig {
  // Budget: target_macs (fraction of the model's MACs to keep, in (0, 1)) or,
  // with a latency table, target_latency_ms.
  std::optional<double> target_macs;
  std::optional<double> target_latency_ms;
  const latency::LatencyTable* latency = nullptr;
  double min_keep = 0.2, max_keep = 1.0;  // the agent's action range (keep ratios)
  int64_t recalibrate_batches = 0;        // batch-norm re-estimation on the calibration set (0: off)
  int64_t batch_size = 64;
  bool log_macs_reward = false;           // reward -error * log(MACs) (AMC's FLOPs-aware variant) instead of -error
  // Spend what the clipped actions left of the budget before scoring: see
  // filled(). Random actions keep ~0.6 of each width and so ~36% of a
  // convolution's MACs, well under a 50% budget; clipping only cuts.
  bool fill_budget = false;
};

// A prunable group as the agent sees it.
struct GroupStep {
  std::string name;
  int64_t width = 0;
  int64_t min_keep = 1;
  std::vector<float> features;  // raw (unnormalised) state features: see state_feature_names()
};

struct EpisodeOutcome {
  std::vector<int64_t> keep;  // kept channels per prunable group
  double cost = 0;            // predicted: MACs or ms
  int64_t macs = 0;           // exact MACs of the pruned model
  double accuracy = 0;        // validation top-1
  double reward = 0;
  bool cached = false;        // the same widths were scored before
};

// Where the environment's time went, in seconds summed over calls (profiling
// the cost of an episode; cached episodes add nothing).
struct EnvironmentTimes {
  double prune = 0;        // copying the graph and pruning it (pruned())
  double recalibrate = 0;  // batch-norm re-estimation (pruned())
  double evaluate = 0;     // export and validation forward passes (accuracy())
  int64_t scored = 0;      // accuracy() calls that were not cached
};

class PruningEnvironment : public Environment {
 public:
  // `graph` needs example inputs. `validation` scores episodes;
  // `calibration` feeds batch-norm re-estimation (may be null when off).
  // Error(BadInput): no budget or two, a budget out of range or that no
  // policy can reach (names the smallest reachable), an empty validation
  // set, no prunable group, a latency budget without a table or whose table
  // has no layer.
  PruningEnvironment(const Graph& graph, const data::TensorDataset& validation,
                     const data::TensorDataset* calibration, PruningEnvConfig config);
  ~PruningEnvironment() override;

  int64_t state_size() const override;
  at::Tensor reset() override;
  StepResult step(double action) override;
  double finish() override;

  static const std::vector<std::string>& state_feature_names();
  const std::vector<GroupStep>& steps() const { return steps_; }
  const PruningEnvConfig& config() const { return config_; }

  // Kept channels for keep ratios (one per step), without clipping.
  std::vector<int64_t> keep_counts(const std::vector<double>& keep_ratios) const;
  // Predicted cost (MACs or ms) with these kept channels per step.
  double cost(const std::vector<int64_t>& keep) const;
  double full_cost() const;
  // Exact MACs of the model pruned to these widths (as EpisodeOutcome::macs).
  int64_t macs(const std::vector<int64_t>& keep) const;
  // Where these widths' activation channels (x spatial size) lie between
  // every group at its minimum (0) and the unpruned model (1): the position
  // a latency table's overhead is interpolated at.
  double activation_position(const std::vector<int64_t>& keep) const;
  double budget() const { return budget_; }
  // The ratios file `compress prune --ratios` reads: {group: removed fraction},
  // groups kept whole left out.
  std::map<std::string, double> prune_ratios(const std::vector<int64_t>& keep) const;
  // The inverse: kept channels per step for a ratios file (removed fractions;
  // a group not named is kept whole), counted as the pruning engine counts
  // them. Error(BadInput) naming `source` for a name that is no step or a
  // ratio outside [0, 1).
  std::vector<int64_t> keep_for_prune_ratios(const std::map<std::string, double>& ratios,
                                             const std::string& source) const;
  // A copy of the graph pruned to these widths (L1 magnitude), batch norms
  // re-estimated when configured. `result` receives the pruning report.
  Graph pruned(const std::vector<int64_t>& keep, pruning::PruneResult* result = nullptr) const;
  // These widths with every group widened by the same fraction t of the
  // channels it gave up (floor(t x (width - keep)) more), the largest t in
  // [0, 1] (bisection) whose cost fits the budget; `keep` must fit it.
  std::vector<int64_t> filled(const std::vector<int64_t>& keep) const;
  // Validation top-1 of the model pruned to these widths (cached by widths).
  double accuracy(const std::vector<int64_t>& keep);
  // Top-1 of the model pruned to these widths on another set (not cached).
  double accuracy_on(const std::vector<int64_t>& keep, const data::TensorDataset& data) const;
  // The episode reward for a top-1 and a MACs count: -error, or
  // -error * log(MACs) with log_macs_reward.
  double reward(double accuracy, int64_t macs) const;
  const EpisodeOutcome& last_outcome() const { return last_; }
  const EnvironmentTimes& times() const { return times_; }

 private:
  struct CostModel;
  const Graph& graph_;
  const data::TensorDataset& validation_;
  const data::TensorDataset* calibration_;
  PruningEnvConfig config_;
  std::vector<GroupStep> steps_;
  std::unique_ptr<CostModel> cost_;
  double budget_ = 0;
  std::vector<float> feature_min_, feature_max_;
  // The episode under way.
  size_t t_ = 0;
  std::vector<int64_t> keep_;
  double previous_action_ = 1;
  std::map<std::vector<int64_t>, double> accuracy_cache_;
  EpisodeOutcome last_;
  mutable EnvironmentTimes times_;

  at::Tensor state() const;
};

// The data of a search, all from the training split (the test set stays
// unseen until the final report): `validation`, the first `val_size` images
// of a seeded hold-out, scores episodes; `calibration`, taken from the rest,
// re-estimates batch norms (max(1, recalibrate_batches) batches of 64);
// `selection`, the next `selection_size` images of the rest (fewer when the
// set runs out; empty for 0), re-scores the best episodes (rerank()).
// The three are disjoint. Error(BadInput) naming `source` when the set is
// empty or val_size leaves no training data.
struct SearchData {
  data::TensorDataset validation, calibration, selection;
};
SearchData split_search_data(const data::TensorDataset& train, int64_t val_size, int64_t recalibrate_batches,
                             uint64_t seed, const std::string& source, int64_t selection_size = 0);

// Re-ranking a search's best episodes on a second held-out set. With ~1,000
// validation images the top-1 of one episode carries a standard error near a
// point, and the best of hundreds of episodes within a point of each other
// is mostly the luckiest draw (the winner's curse): it scored 3-4 points
// lower on the test set than on validation in docs/amc.md. Scoring the few
// best again on fresh, larger data picks among them on evidence.
struct RankedPolicy {
  int64_t episode = -1;        // index into the outcomes given
  std::vector<int64_t> keep;   // kept channels per step
  double validation = 0;       // top-1 on the search's validation set
  double selection = 0;        // top-1 on the selection set
  double reward = 0;           // the environment's reward for the selection top-1
};
// The indices of the `count` best distinct widths among `outcomes` (one per
// episode, in order), best first by reward, the earlier episode first on a tie.
std::vector<size_t> best_distinct_episodes(const std::vector<EpisodeOutcome>& outcomes, int64_t count);
// The `count` best distinct widths among `outcomes` (best_distinct_episodes), each pruned as the
// search's episodes are and scored on `selection`; returned best first by
// that score (the better validation reward first on a tie). Empty when
// `count` <= 0 or `selection` is empty.
std::vector<RankedPolicy> rerank(const PruningEnvironment& env, const std::vector<EpisodeOutcome>& outcomes,
                                 const data::TensorDataset& selection, int64_t count);

}  // namespace compress::amc
