#pragma once
// Structured pruning: score each group's channels, choose how many to keep
// under a budget, and remove the others physically from every parameter of
// the group, so the exported model is smaller and faster (no masks).
//
//   pruning::PruneOptions o;
//   o.target_macs = 0.5;                       // keep at most half the MACs
//   pruning::PruneResult r = pruning::prune(graph, o);
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data/dataset.h"
#include "compress/ir/graph.h"
#include "compress/pruning/groups.h"

namespace compress::pruning {

// Attention: attention heads by Michel et al.'s gate sensitivity, channels by
// their activation attention times the reading layer's weight magnitude (and
// the squeeze-excitation gate's mean where one gates them); needs data.
enum class Criterion { L1, L2, BatchNorm, Fpgm, Taylor, Random, Attention };
// "l1" | "l2" | "bn" | "fpgm" | "taylor" | "random" | "attention"; Error(BadInput) otherwise.
Criterion parse_criterion(const std::string& name);
const char* criterion_name(Criterion c);

struct PruneOptions {
  // Budget: exactly one of these.
  std::optional<double> ratio;         // remove this fraction of every prunable group, in (0, 1)
  std::optional<double> target_macs;   // keep at most this fraction of the MACs, in (0, 1)
  std::map<std::string, double> ratios;  // a ratio per group, by group name
  Criterion criterion = Criterion::L1;
  bool global = false;        // rank channels across groups (scores normalised per group)
  int64_t round_to = 1;       // kept widths are multiples of this (or the whole group)
  int64_t min_channels = 1;   // no group shrinks below this
  std::vector<std::string> ignore;  // group names or member modules to leave alone
  uint64_t seed = 0;          // for `random`
  // For `taylor` and `attention`: labelled data whose loss gradients or
  // activations score the channels (taylor: first-order Taylor expansion of
  // the loss, Molchanov et al. 2019), in taylor_batches of taylor_batch_size.
  const data::TensorDataset* data = nullptr;
  int64_t taylor_batches = 8, taylor_batch_size = 64;

  nlohmann::json to_json() const;
};

struct GroupChange {
  std::string name;
  int64_t before = 0, after = 0;
  std::vector<std::string> members;
};

struct PruneResult {
  int64_t macs_before = 0, macs_after = 0;
  int64_t params_before = 0, params_after = 0;
  std::vector<GroupChange> changes;        // groups that shrank
  std::vector<std::string> frozen;         // "name: reason"
  double ratio_used = 0;                   // the uniform or global fraction a MACs budget found
  nlohmann::json to_json() const;
};

// Per-channel importance of each group (one vector per group, `width` long).
std::vector<std::vector<double>> channel_importance(const Graph& graph, const GroupAnalysis& analysis,
                                                    const PruneOptions& options);

// Prunes in place. Error(BadInput) for an impossible budget (names how far
// it gets), an unknown group name in `ratios` or `ignore`, ratios outside
// (0, 1), no budget or two.
PruneResult prune(Graph& graph, const PruneOptions& options);

// Removes every channel of each named group except the listed ones (indices
// into the group's channels, each group keeping at least one): for methods
// that choose channels themselves (learned gates in PDD). Error(BadInput) for
// an unknown or frozen group, or indices out of range.
PruneResult prune_channels(Graph& graph, const std::map<std::string, std::vector<int64_t>>& keep);

// Re-estimates the running mean and variance of every batch norm in
// training-statistics form from `batches` batches of `data` (no training):
// taps on each batch norm's input, mean and unbiased variance over batch and
// spatial positions, accumulated exactly over all batches. What pruning
// without fine-tuning needs, since removing channels shifts the statistics
// of the layers after them. Returns the number of batch norms updated.
int recalibrate_batch_norm(Graph& graph, const data::TensorDataset& data, int64_t batches, int64_t batch_size = 64);

}  // namespace compress::pruning
