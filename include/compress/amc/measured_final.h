#pragma once
// Measured finalisation of a latency search (docs/amc.md, "Measured
// finalisation"). A latency table predicts each layer alone; the widths a
// search picks are exactly where that prediction is most optimistic, so the
// search's best candidates can run a few percent over the budget. After the
// search (and the re-ranking) the candidates are pruned and timed end to
// end, in rounds interleaved with the unpruned model, and the result is:
//
//   - the first candidate (best first) measured within the budget, when it
//     is the best one; otherwise
//   - the best candidate shrunk until it is (every group's kept channels
//     moved toward its minimum by one factor, found by bisection on measured
//     latency), unless a candidate already within the budget scores better
//     than the shrunk one (when a score is given; without one, that
//     candidate is returned and nothing is shrunk).
//
// Times are compared at the load the latency table was built under: each
// model's time scaled by the unpruned model's drift in the same round (the
// reference time over the unpruned time then), as the report's
// latency.measured_at_table_load_ms does. With a `match` policy the budget
// is that policy's time measured in the same round instead (side by side).
// A policy is within the budget when the median over rounds of its time
// over the budget is: a burst of load from other processes in one round
// slows the models of that round alike, or spoils that round alone.
//
// The timer and the score are injected, so the selection and the bisection
// are tested on given numbers (tests/amc/test_measured_final.cpp);
// `compress amc` times real models (tools/compress/cmd_amc.cpp).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace compress::amc {

// One policy the finalisation may return, in the order of preference.
struct FinalCandidate {
  int64_t episode = -1;        // the search episode it comes from
  std::vector<int64_t> keep;   // kept channels per step
  double score = 0;            // the ranking's score (higher is better), e.g. the selection reward
};

// Times the models pruned to each of these widths end to end, in rounds
// interleaved over the list: times[round][entry] in ms, one or more rounds.
using ModelTimer = std::function<std::vector<std::vector<double>>(const std::vector<std::vector<int64_t>>& keeps)>;
// The ranking's score of a policy that is no candidate (the shrunk one).
using PolicyScore = std::function<double(const std::vector<int64_t>& keep)>;

struct MeasuredFinalConfig {
  std::vector<int64_t> widths;    // per step: unpruned
  std::vector<int64_t> min_keep;  // per step: the smallest allowed
  // The unpruned model's end-to-end time when the latency table was built
  // (what the table predicts for it): the load every time is scaled to.
  double unpruned_reference_ms = 0;
  double budget_ms = 0;              // the budget at that load (ignored with `match`)
  std::vector<int64_t> match;        // non-empty: the budget is this policy's time, measured alongside
  double tolerance = 0;              // within: at most budget x (1 + tolerance)
  int shrink_probes = 7;             // bisection probes (the factor to 2^-probes)
  std::function<double(const std::vector<int64_t>&)> predict;  // optional: the table's prediction, for the report
};

// One timed policy.
struct MeasuredPolicy {
  std::vector<int64_t> keep;
  double predicted_ms = 0;            // 0 without a predictor
  double measured_ms = 0;             // as timed, in its rounds
  double at_table_load_ms = 0;        // scaled by the unpruned model's drift in those rounds
  double budget_at_table_load_ms = 0; // the budget it was held to (with `match`: that policy's time then)
  double budget_ratio = 0;            // median over rounds of time / budget, both in the same round
  bool within = false;                // budget_ratio <= 1 + tolerance
  // measured_ms, at_table_load_ms and budget_at_table_load_ms are medians over the rounds.
};

struct ShrinkProbe {
  double factor = 0;  // 1: the candidate, 0: every group at its minimum
  MeasuredPolicy timing;
};

struct MeasuredFinal {
  std::vector<MeasuredPolicy> candidates;  // one per candidate, in the order given
  int64_t first_within = -1;               // the first candidate within the budget (-1: none)
  std::vector<ShrinkProbe> probes;         // the bisection's, in order (empty when nothing was shrunk)
  double shrink_factor = 1;                // of the shrunk policy (1: not shrunk)
  bool shrunk_scored = false;
  double shrunk_score = 0;
  // The result.
  int64_t source = 0;  // the candidate it is (or was shrunk from)
  bool shrunk = false;
  MeasuredPolicy result;
  std::string reason;  // one sentence: why this one
  nlohmann::json to_json(const std::vector<FinalCandidate>& candidates) const;
};

// The median (the mean of the two middle values for an even count; 0 for none).
double median_of(std::vector<double> values);

// Kept channels moved toward the minimum: min + round(factor x (keep - min))
// per step, factor in [0, 1]; never narrower for a larger factor.
std::vector<int64_t> shrink_toward_minimum(const std::vector<int64_t>& keep, const std::vector<int64_t>& min_keep,
                                           double factor);

// The largest factor in [0, 1) found to fit by bisection: 1 is known not to
// fit, 0 is taken to fit; `fits` is called `probes` times (fewer when the
// factors stop changing the widths, which `fits` may report by caching).
// Returns the last factor that fitted (0 when none did).
double bisect_largest_fitting(const std::function<bool(double)>& fits, int probes);

// The finalisation described above. `candidates` best first, non-empty;
// `score` may be empty. Error(BadInput) for no candidate or widths of the
// wrong length.
MeasuredFinal finalize_by_measurement(const std::vector<FinalCandidate>& candidates, const ModelTimer& timer,
                                      const PolicyScore& score, const MeasuredFinalConfig& config);

}  // namespace compress::amc
