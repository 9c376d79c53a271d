#include "compress/amc/measured_final.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "compress/error.h"

namespace compress::amc {

std::vector<int64_t> shrink_toward_minimum(const std::vector<int64_t>& keep, const std::vector<int64_t>& min_keep,
                                           double factor) {
  factor = std::clamp(factor, 0.0, 1.0);
  std::vector<int64_t> out(keep.size());
  for (size_t i = 0; i < keep.size(); ++i) {
    const int64_t low = std::min(min_keep.at(i), keep[i]);
    out[i] = low + static_cast<int64_t>(std::llround(factor * static_cast<double>(keep[i] - low)));
  }
  return out;
}

double median_of(std::vector<double> values) {
  if (values.empty()) return 0;
  const size_t half = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(half), values.end());
  const double upper = values[half];
  if (values.size() % 2) return upper;
  return 0.5 * (upper + *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(half)));
}

double bisect_largest_fitting(const std::function<bool(double)>& fits, int probes) {
  double lo = 0, hi = 1;  // hi does not fit; lo fits, or is 0 and untested
  for (int p = 0; p < probes; ++p) {
    const double mid = 0.5 * (lo + hi);
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

namespace {

// A policy's time against its budget, e.g. "+3.2%".
std::string percent_over(const MeasuredPolicy& p) {
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << std::showpos << 100.0 * (p.budget_ratio - 1.0) << "%";
  return s.str();
}

// Times policies together with the references (the unpruned model, and the
// match policy when the budget is its time) and holds each to the budget
// measured in the same rounds. Caches by widths: a bisection that stops
// changing the widths costs no more timing.
class BudgetJudge {
 public:
  BudgetJudge(const ModelTimer& timer, const MeasuredFinalConfig& config) : timer_(timer), config_(config) {}

  std::vector<MeasuredPolicy> time(const std::vector<std::vector<int64_t>>& keeps) {
    std::vector<std::vector<int64_t>> batch{config_.widths};
    if (!config_.match.empty()) batch.push_back(config_.match);
    const size_t first = batch.size();
    batch.insert(batch.end(), keeps.begin(), keeps.end());
    const std::vector<std::vector<double>> rounds = timer_(batch);
    if (rounds.empty()) bad_input("measured finalisation: the timer returned no round");
    for (const std::vector<double>& ms : rounds)
      if (ms.size() != batch.size()) bad_input("measured finalisation: the timer returned the wrong number of times");
    std::vector<MeasuredPolicy> out;
    for (size_t i = first; i < batch.size(); ++i) {
      std::vector<double> raw, at_load, budget, ratio;
      for (const std::vector<double>& ms : rounds) {
        // Other processes slow every model of a round alike: scale to the table's load.
        const double scale = ms[0] > 0 ? config_.unpruned_reference_ms / ms[0] : 1.0;
        const double b = config_.match.empty() ? config_.budget_ms : ms[1] * scale;
        raw.push_back(ms[i]);
        at_load.push_back(ms[i] * scale);
        budget.push_back(b);
        ratio.push_back(ms[i] * scale / b);
      }
      MeasuredPolicy p;
      p.keep = batch[i];
      if (config_.predict) p.predicted_ms = config_.predict(p.keep);
      p.measured_ms = median_of(raw);
      p.at_table_load_ms = median_of(at_load);
      p.budget_at_table_load_ms = median_of(budget);
      p.budget_ratio = median_of(ratio);
      p.within = p.budget_ratio <= 1 + config_.tolerance;
      seen_[p.keep] = p;
      out.push_back(std::move(p));
    }
    return out;
  }
  MeasuredPolicy time(const std::vector<int64_t>& keep) {
    auto it = seen_.find(keep);
    return it != seen_.end() ? it->second : time(std::vector<std::vector<int64_t>>{keep}).front();
  }

 private:
  const ModelTimer& timer_;
  const MeasuredFinalConfig& config_;
  std::map<std::vector<int64_t>, MeasuredPolicy> seen_;
};

}  // namespace

MeasuredFinal finalize_by_measurement(const std::vector<FinalCandidate>& candidates, const ModelTimer& timer,
                                      const PolicyScore& score, const MeasuredFinalConfig& config) {
  if (candidates.empty()) bad_input("measured finalisation: no candidate");
  if (config.min_keep.size() != config.widths.size() || (!config.match.empty() && config.match.size() != config.widths.size()))
    bad_input("measured finalisation: widths, minimum widths and the match policy differ in length");
  for (const FinalCandidate& c : candidates)
    if (c.keep.size() != config.widths.size()) bad_input("measured finalisation: a candidate's widths have the wrong length");

  BudgetJudge judge(timer, config);
  MeasuredFinal f;
  std::vector<std::vector<int64_t>> keeps;
  for (const FinalCandidate& c : candidates) keeps.push_back(c.keep);
  f.candidates = judge.time(keeps);
  for (size_t i = 0; i < f.candidates.size() && f.first_within < 0; ++i)
    if (f.candidates[i].within) f.first_within = static_cast<int64_t>(i);

  const MeasuredPolicy& best = f.candidates.front();
  if (f.first_within == 0) {
    f.result = best;
    f.reason = "the best candidate measured within the budget (" +
               percent_over(best) + ")";
    return f;
  }
  auto take_candidate = [&](int64_t i, const std::string& why) {
    f.source = i;
    f.shrunk = false;
    f.shrink_factor = 1;
    f.result = f.candidates[static_cast<size_t>(i)];
    f.reason = "candidate " + std::to_string(i + 1) + " is the best measured within the budget (" +
               percent_over(f.result) + "; the best candidate " +
               percent_over(best) + ")" + why;
  };
  if (f.first_within > 0 && !score) {
    take_candidate(f.first_within, "");
    return f;
  }

  // The best candidate shrunk toward the minimum widths until it measures
  // within the budget.
  const std::vector<int64_t>& from = candidates.front().keep;
  const double factor = bisect_largest_fitting([&](double s) {
    MeasuredPolicy p = judge.time(shrink_toward_minimum(from, config.min_keep, s));
    f.probes.push_back({s, p});
    return p.within;
  }, config.shrink_probes);
  MeasuredPolicy shrunk = judge.time(shrink_toward_minimum(from, config.min_keep, factor));
  if (factor == 0) f.probes.push_back({0, shrunk});  // no probe fitted: the minimum, timed to say whether it does

  if (shrunk.within && score) {
    f.shrunk_scored = true;
    f.shrunk_score = score(shrunk.keep);
  }
  if (f.first_within > 0 && !(shrunk.within && f.shrunk_score > candidates[static_cast<size_t>(f.first_within)].score)) {
    take_candidate(f.first_within, shrunk.within ? ", and it scores above the best candidate shrunk to the budget"
                                                 : "; the best candidate shrunk did not measure within it");
    return f;
  }
  f.source = 0;
  f.shrunk = true;
  f.shrink_factor = factor;
  f.result = shrunk;
  std::ostringstream why;
  why.precision(3);
  why << "the best candidate measured " << percent_over(best)
      << " over the budget; shrunk by factor " << factor << " toward the minimum widths ("
      << percent_over(shrunk) << ")";
  if (!shrunk.within) why << ", and not even that measured within the budget";
  else if (f.first_within > 0) why << ", scoring above candidate " << f.first_within + 1 << ", the best measured within it";
  else why << "; no candidate measured within it";
  f.reason = why.str();
  return f;
}

nlohmann::json MeasuredFinal::to_json(const std::vector<FinalCandidate>& given) const {
  auto policy = [](const MeasuredPolicy& p) {
    return nlohmann::json{{"keep", p.keep},
                          {"predicted_ms", p.predicted_ms},
                          {"measured_ms", p.measured_ms},
                          {"at_table_load_ms", p.at_table_load_ms},
                          {"budget_at_table_load_ms", p.budget_at_table_load_ms},
                          {"budget_ratio", p.budget_ratio},
                          {"within", p.within}};
  };
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < candidates.size(); ++i) {
    nlohmann::json row = policy(candidates[i]);
    row["episode"] = given.at(i).episode;
    row["score"] = given.at(i).score;
    rows.push_back(row);
  }
  nlohmann::json probe_rows = nlohmann::json::array();
  for (const ShrinkProbe& p : probes) {
    nlohmann::json row = policy(p.timing);
    row["factor"] = p.factor;
    probe_rows.push_back(row);
  }
  nlohmann::json j{{"candidates", rows},
                   {"first_within", first_within},
                   {"probes", probe_rows},
                   {"source", source},
                   {"episode", given.at(static_cast<size_t>(source)).episode},
                   {"shrunk", shrunk},
                   {"shrink_factor", shrink_factor},
                   {"result", policy(result)},
                   {"reason", reason}};
  if (shrunk_scored) j["shrunk_score"] = shrunk_score;
  return j;
}

}  // namespace compress::amc
