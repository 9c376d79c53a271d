#pragma once
// Structured pruning: score each group's channels, choose how many to keep
// under a budget, and remove the others physically from every parameter of
// the group, so the exported model is smaller and faster (no masks).
//
//   pruning::PruneOptions o;
//   o.target_macs = 0.5;                       // keep at most half the MACs
//   pruning::PruneResult r = pruning::prune(graph, o);
//
// A latency budget predicts from a measured lookup table (analysis/latency.h)
// and checks the result end to end:
//
//   latency::LatencyTable t = latency::LatencyTable::measure(latency::latency_layers(graph), lo);
//   t.set_overhead_ms(measured_unpruned_ms - t.layers_ms_at_full_width());
//   o.target_latency_ms = 20;  o.latency = &t;     // or o.target_speedup = 1.5
//   pruning::PruneResult r = pruning::prune_to_latency(graph, o, [&](const Graph& g) { return time_it(g); });
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/analysis/latency.h"
#include "compress/data/dataset.h"
#include "compress/ir/graph.h"
#include "compress/pruning/groups.h"

namespace compress::pruning {

// Attention: attention heads by Michel et al.'s gate sensitivity, channels by
// their activation attention times the L2 norm of the reading layer's weights
// for them (and the squeeze-excitation gate's mean where one gates them);
// needs data.
enum class Criterion { L1, L2, BatchNorm, Fpgm, Taylor, Random, Attention };
// "l1" | "l2" | "bn" | "fpgm" | "taylor" | "random" | "attention"; Error(BadInput) otherwise.
Criterion parse_criterion(const std::string& name);
const char* criterion_name(Criterion c);

struct PruneOptions {
  // Budget: exactly one of these.
  std::optional<double> ratio;         // remove this fraction of every prunable group, in (0, 1)
  std::optional<double> target_macs;   // keep at most this fraction of the MACs, in (0, 1)
  std::map<std::string, double> ratios;  // a ratio per group, by group name
  // Keep the latency predicted by `latency` at most this many ms (> 0): the
  // smallest uniform ratio (or global threshold) that meets it, as for
  // target_macs. prune_to_latency also measures the result.
  std::optional<double> target_latency_ms;
  // Keep the predicted latency at most the unpruned model's (predicted from
  // the same table) over this (> 1): a latency budget that means the same on
  // any machine, e.g. in a recipe; otherwise as target_latency_ms.
  std::optional<double> target_speedup;
  // A lookup table of this graph's layers (latency::latency_layers, in that
  // order, with its overhead set); needed by target_latency_ms and
  // target_speedup. With any budget it makes the result carry predicted
  // latencies.
  const latency::LatencyTable* latency = nullptr;
  // Latency-aware ranking for target_macs, target_latency_ms or target_speedup (needs
  // `latency`): instead of one ratio or threshold everywhere, shrinks, step by
  // step, the group whose next least important channels lose the least
  // importance per predicted ms saved, until the budget is met. Among the
  // prunings within a MACs budget it prefers those the table says run
  // fastest (on a CPU, half the MACs is not half the time). Ranks across
  // groups by itself (scores normalised per group as `global` does).
  bool latency_aware = false;
  // The latency-aware ranking removes at most this fraction of any group, in
  // (0, 0.99]: without a cap it empties the layers that run on the largest
  // activations (a stem conv kept 1 of 32 channels on mobilenet_v2), which
  // the prediction rewards and the accuracy would not survive.
  double max_group_ratio = 0.5;
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

// One try of prune_to_latency: the predicted budget it searched for, the
// ratio (or threshold) found, the predicted and the measured latency.
struct LatencyAttempt {
  double budget_ms = 0, ratio = 0, predicted_ms = 0, measured_ms = 0;
};

struct PruneResult {
  int64_t macs_before = 0, macs_after = 0;
  int64_t params_before = 0, params_after = 0;
  std::vector<GroupChange> changes;        // groups that shrank
  std::vector<std::string> frozen;         // "name: reason"
  double ratio_used = 0;                   // the uniform or global fraction a MACs or latency budget found
  // With a latency table (else 0): predicted ms of the unpruned model, of
  // the pruned one, and of the smallest one any budget can reach (every
  // prunable group at its minimum).
  double predicted_ms_before = 0, predicted_ms_after = 0, predicted_ms_smallest = 0;
  // A latency budget in ms: target_latency_ms, or predicted_ms_before over
  // target_speedup (else 0).
  double latency_budget_ms = 0;
  std::vector<LatencyAttempt> latency_attempts;  // prune_to_latency's tries, in order
  bool latency_met = false;                      // prune_to_latency: the chosen try measured within tolerance
  double measured_ms = 0;                        // prune_to_latency: the chosen try's measurement
  // Wall time of prune()'s steps: group analysis, channel scores (with the
  // MACs profile), the budget search, the physical removal (with the shape
  // re-inference and the new profile).
  struct Seconds {
    double analysis = 0, scores = 0, search = 0, removal = 0;
  } seconds;
  nlohmann::json to_json() const;
};

// Per-channel importance of each group (one vector per group, `width` long).
std::vector<std::vector<double>> channel_importance(const Graph& graph, const GroupAnalysis& analysis,
                                                    const PruneOptions& options);

// Prunes in place. Error(BadInput) for an impossible budget (names how far
// it gets), an unknown group name in `ratios` or `ignore`, ratios outside
// (0, 1), no budget or two.
PruneResult prune(Graph& graph, const PruneOptions& options);

// Latency budget checked end to end: prunes a copy of `graph` to
// options.target_latency_ms or target_speedup (predicted), times it with `measure` (ms, the
// way the table was timed: same batch, threads, FP32 or INT8), and when the
// measurement exceeds the budget by more than `tolerance` (a fraction),
// scales the predicted budget by budget / measured and prunes again from
// the original, at most `max_attempts` tries in all (and no tighter than
// the smallest model). `graph` becomes the first try that met the budget
// or, when none did (latency_met false), the fastest one measured.
// Error(BadInput) as prune(), and when no latency budget is given.
PruneResult prune_to_latency(Graph& graph, const PruneOptions& options, const std::function<double(const Graph&)>& measure,
                             double tolerance = 0.05, int max_attempts = 4);

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
