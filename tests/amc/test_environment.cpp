// AMC's pruning environment on a tiny zoo model and random data: the cost
// model agrees with the pruning engine, clipping keeps every episode within
// the budget, bad budgets are refused, a whole search is reproducible, and
// re-ranking re-scores the best episodes on the selection set.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include <ATen/Parallel.h>

#include "compress/amc/environment.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/models/zoo.h"

using namespace compress;
using namespace compress::amc;

namespace {

Graph tiny_cnn() {
  Graph g = import_module(models::build("cnn", 0, 10, 0.25).module);
  g.set_example_inputs({InputSpec{{1, 1, 28, 28}}});
  return g;
}

data::TensorDataset random_images(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  data::TensorDataset ds;
  ds.inputs = at::rand({n, 1, 28, 28}, gen);
  ds.labels = at::randint(0, 10, {n}, gen);
  ds.num_classes = 10;
  ds.name = "random";
  return ds;
}

PruningEnvConfig macs_budget(double f) {
  PruningEnvConfig c;
  c.target_macs = f;
  return c;
}

// Plays one episode with a fixed action at every step.
std::vector<int64_t> play(PruningEnvironment& env, double action) {
  env.reset();
  for (;;) {
    auto r = env.step(action);
    CHECK(r.next_state.size(0) == env.state_size());
    if (r.done) break;
  }
  env.finish();
  return env.last_outcome().keep;
}

}  // namespace

TEST_CASE("amc environment: the cost model counts MACs as the pruning engine does", "[amc][env]") {
  at::set_num_threads(1);
  Graph g = tiny_cnn();
  data::TensorDataset val = random_images(40, 1);
  PruningEnvironment env(g, val, nullptr, macs_budget(0.5));
  REQUIRE(env.steps().size() >= 3);  // the cnn's three convolutions and its hidden linear layer
  CHECK(env.full_cost() == Approx(static_cast<double>(profile_model(g).total_macs)));
  std::vector<int64_t> keep;
  for (size_t i = 0; i < env.steps().size(); ++i) keep.push_back(std::max<int64_t>(1, env.steps()[i].width * (i + 2) / (i + 5)));
  pruning::PruneResult result;
  Graph pruned = env.pruned(keep, &result);
  CHECK(static_cast<double>(profile_model(pruned).total_macs) == Approx(env.cost(keep)).epsilon(1e-9));
  // The ratios file removes exactly width - keep channels of every group.
  for (const auto& change : result.changes) {
    for (size_t i = 0; i < env.steps().size(); ++i)
      if (env.steps()[i].name == change.name) CHECK(change.after == keep[i]);
  }
  CHECK(result.changes.size() == env.steps().size());
  // And a ratios file reads back as those widths (--match-latency).
  CHECK(env.keep_for_prune_ratios(env.prune_ratios(keep), "r.json") == keep);
  std::map<std::string, double> one{{env.steps()[0].name, 0.5}};
  std::vector<int64_t> half = env.keep_for_prune_ratios(one, "r.json");
  CHECK(half[0] == env.steps()[0].width - env.steps()[0].width / 2);
  for (size_t i = 1; i < half.size(); ++i) CHECK(half[i] == env.steps()[i].width);  // not named: kept whole
  CHECK_THROWS_WITH(env.keep_for_prune_ratios({{"nope", 0.5}}, "r.json"), Catch::Contains("r.json: 'nope' is no prunable group"));
  CHECK_THROWS_WITH(env.keep_for_prune_ratios({{env.steps()[0].name, 1.0}}, "r.json"), Catch::Contains("must be in [0, 1)"));
}

TEST_CASE("amc environment: clipping keeps every episode within the budget", "[amc][env]") {
  at::set_num_threads(1);
  Graph g = tiny_cnn();
  data::TensorDataset val = random_images(40, 1);
  for (double target : {0.3, 0.5, 0.8}) {
    PruningEnvironment env(g, val, nullptr, macs_budget(target));
    // Keeping everything early forces the later groups down to fit.
    std::vector<int64_t> greedy = play(env, 1.0);
    INFO("target " << target);
    CHECK(env.last_outcome().cost <= env.budget());
    CHECK(greedy.front() == env.steps().front().width);
    // The first group clipped got the largest width that fits with every
    // later group at its minimum: one channel more would break the budget.
    size_t clipped = 0;
    while (clipped < greedy.size() && greedy[clipped] == env.steps()[clipped].width) ++clipped;
    REQUIRE(clipped < greedy.size());
    std::vector<int64_t> trial = greedy;
    for (size_t j = clipped + 1; j < trial.size(); ++j) trial[j] = env.steps()[j].min_keep;
    CHECK(env.cost(trial) <= env.budget());
    trial[clipped] += 1;
    CHECK(env.cost(trial) > env.budget());
    // Actions below the range are raised to the minimum keep ratio.
    std::vector<int64_t> least = play(env, 0.0);
    for (size_t i = 0; i < least.size(); ++i) CHECK(least[i] == env.steps()[i].min_keep);
    CHECK(env.last_outcome().reward == Approx(-(1 - env.last_outcome().accuracy)));
  }
}

TEST_CASE("amc environment: filling spends what the clipped actions left of the budget", "[amc][env]") {
  at::set_num_threads(1);
  Graph g = tiny_cnn();
  data::TensorDataset val = random_images(40, 1);
  for (double target : {0.3, 0.5, 0.8}) {
    PruningEnvConfig c = macs_budget(target);
    PruningEnvironment plain(g, val, nullptr, c);
    c.fill_budget = true;
    PruningEnvironment fill(g, val, nullptr, c);
    INFO("target " << target);
    for (double action : {0.0, 0.4, 1.0}) {
      INFO("action " << action);
      std::vector<int64_t> before = play(plain, action), after = play(fill, action);
      CHECK(after == fill.filled(before));
      CHECK(fill.last_outcome().cost <= fill.budget());
      CHECK(fill.last_outcome().cost >= plain.last_outcome().cost);
      for (size_t i = 0; i < after.size(); ++i) {
        CHECK(after[i] >= before[i]);
        CHECK(after[i] <= fill.steps()[i].width);
      }
      // The largest common fraction: one more channel in every group that
      // gave some up breaks the budget (or nothing was given up).
      std::vector<int64_t> more = after;
      bool grew = false;
      for (size_t i = 0; i < more.size(); ++i)
        if (more[i] < fill.steps()[i].width) more[i] += 1, grew = true;
      if (grew) CHECK(fill.cost(more) > fill.budget());
    }
    // Every group at its minimum leaves the most to fill.
    std::vector<int64_t> least = play(plain, 0.0);
    CHECK(fill.cost(fill.filled(least)) > plain.cost(least));
  }
}

TEST_CASE("amc environment: impossible budgets, empty validation and missing tables are refused", "[amc][env][bad-input]") {
  Graph g = tiny_cnn();
  data::TensorDataset val = random_images(20, 1), empty;
  CHECK_THROWS_WITH(PruningEnvironment(g, val, nullptr, macs_budget(0.01)), Catch::Contains("impossible budget"));
  CHECK_THROWS_WITH(PruningEnvironment(g, val, nullptr, macs_budget(1.5)), Catch::Contains("--target-macs must be in (0, 1)"));
  CHECK_THROWS_WITH(PruningEnvironment(g, empty, nullptr, macs_budget(0.5)), Catch::Contains("validation set is empty"));
  PruningEnvConfig latency;
  latency.target_latency_ms = 1.0;
  CHECK_THROWS_WITH(PruningEnvironment(g, val, nullptr, latency), Catch::Contains("needs a latency table"));
  PruningEnvConfig both = macs_budget(0.5);
  both.target_latency_ms = 1.0;
  CHECK_THROWS_WITH(PruningEnvironment(g, val, nullptr, both), Catch::Contains("exactly one budget"));
  PruningEnvConfig recal = macs_budget(0.5);
  recal.recalibrate_batches = 2;
  CHECK_THROWS_WITH(PruningEnvironment(g, val, nullptr, recal), Catch::Contains("needs a non-empty calibration set"));
}

TEST_CASE("amc latency table: monotone, interpolated, and clipping meets a latency budget", "[amc][env][latency]") {
  at::set_num_threads(1);
  Graph g = tiny_cnn();
  std::vector<latency::LayerShape> layers = latency::latency_layers(g);
  REQUIRE(layers.size() == 5);  // three convolutions, two linear layers
  latency::LatencyOptions lo;
  lo.grid = 3;
  lo.repeats = 3;
  latency::LatencyTable table = latency::LatencyTable::measure(layers, lo);
  REQUIRE(table.layers().size() == layers.size());
  for (size_t l = 0; l < table.layers().size(); ++l) {
    const auto& ms = table.layers()[l].ms;
    for (size_t i = 0; i < ms.size(); ++i)
      for (size_t o = 0; o < ms.size(); ++o) {
        CHECK(ms[i][o] > 0);
        if (i > 0) CHECK(ms[i][o] >= ms[i - 1][o]);
        if (o > 0) CHECK(ms[i][o] >= ms[i][o - 1]);
      }
    // Grid points read back exactly; halfway reads the mean.
    CHECK(table.layer_ms(l, 1.0, 1.0) == Approx(ms[2][2]));
    CHECK(table.layer_ms(l, 1.0, 0.5) == Approx(0.5 * (ms[2][0] + ms[2][1])));
  }
  table.set_overhead_ms(0.05);
  PruningEnvConfig c;
  double full = 0.05;
  for (size_t l = 0; l < layers.size(); ++l) full += table.layer_ms(l, 1, 1);
  c.target_latency_ms = full;
  c.latency = &table;
  data::TensorDataset val = random_images(20, 1);
  std::vector<int64_t> smallest;
  {
    PruningEnvironment everything(g, val, nullptr, c);
    CHECK(everything.full_cost() == Approx(full));
    for (const auto& s : everything.steps()) smallest.push_back(s.min_keep);
    c.target_latency_ms = 0.5 * (full + everything.cost(smallest));  // halfway between the extremes
  }
  PruningEnvironment env(g, val, nullptr, c);
  // With a second overhead point the overhead follows the kept activations:
  // the smallest widths predict their own overhead, the full ones the other.
  table.set_overhead_ms(0.05, 0.01);
  CHECK(env.full_cost() == Approx(full));
  const double smallest_layers = env.cost(smallest) - 0.01;
  table.set_overhead_ms(0.05);
  CHECK(env.cost(smallest) == Approx(smallest_layers + 0.05));
  play(env, 1.0);
  CHECK(env.last_outcome().cost <= c.target_latency_ms.value());
  c.target_latency_ms = 1e-6;
  CHECK_THROWS_WITH(PruningEnvironment(g, val, nullptr, c), Catch::Contains("impossible budget"));
}

TEST_CASE("amc search on a pruning environment is deterministic for a seed", "[amc][env]") {
  at::set_num_threads(1);
  Graph g = tiny_cnn();
  data::TensorDataset val = random_images(40, 1), calib = random_images(32, 2);
  PruningEnvConfig c = macs_budget(0.5);
  c.recalibrate_batches = 1;
  c.batch_size = 32;
  DdpgConfig d;
  d.seed = 5;
  d.hidden = 32;
  d.action_low = c.min_keep;
  std::vector<std::vector<int64_t>> first;
  for (int run = 0; run < 2; ++run) {
    PruningEnvironment env(g, val, &calib, c);
    std::vector<std::vector<int64_t>> widths;
    SearchResult r = search(env, d, 6, 3, [&](const EpisodeLog&) { widths.push_back(env.last_outcome().keep); });
    for (const auto& w : widths) CHECK(env.cost(w) <= env.budget());
    if (run == 0) first = widths;
    else CHECK(widths == first);
  }
}

TEST_CASE("amc search data: validation, calibration and selection sets are disjoint", "[amc][env]") {
  data::TensorDataset train = random_images(300, 4);
  train.labels = at::arange(300);  // each sample's label names it
  train.num_classes = 300;
  SearchData s = split_search_data(train, 50, 2, 7, "train.pt", 100);
  REQUIRE(s.validation.size() == 50);
  REQUIRE(s.calibration.size() == 128);
  REQUIRE(s.selection.size() == 100);
  std::set<int64_t> seen;
  for (const data::TensorDataset* part : {&s.validation, &s.calibration, &s.selection})
    for (int64_t i = 0; i < part->size(); ++i) CHECK(seen.insert(part->labels[i].item<int64_t>()).second);
  // The same seed splits the same way; the selection set takes what is left.
  CHECK(at::equal(split_search_data(train, 50, 2, 7, "train.pt").calibration.labels, s.calibration.labels));
  CHECK(split_search_data(train, 50, 2, 7, "train.pt").selection.size() == 0);
  CHECK(split_search_data(train, 50, 2, 7, "train.pt", 1000).selection.size() == 300 - 50 - 128);
}

TEST_CASE("amc re-ranking: the best few episodes re-scored on the selection set, best there first", "[amc][env]") {
  at::set_num_threads(1);
  Graph g = tiny_cnn();
  data::TensorDataset val = random_images(40, 1);
  PruningEnvironment env(g, val, nullptr, macs_budget(0.5));
  std::vector<int64_t> full, least, mid;
  for (const GroupStep& s : env.steps()) {
    full.push_back(s.width);
    least.push_back(s.min_keep);
    mid.push_back((s.width + s.min_keep) / 2);
  }
  // The selection set is labelled by the unpruned model itself: the full
  // widths score 100% on it and the narrowest far less.
  data::TensorDataset selection = random_images(64, 9);
  selection.inputs = (selection.inputs - 0.5) * 20;  // far apart enough for the untrained model to tell apart
  torch::jit::Module whole = export_module(g);
  whole.eval();
  selection.labels = whole.forward({selection.inputs}).toTensor().argmax(1);
  const double least_top1 = env.accuracy_on(least, selection);
  REQUIRE(env.accuracy_on(full, selection) == Approx(1.0));
  REQUIRE(least_top1 < 0.9);
  auto outcome = [&](std::vector<int64_t> keep, double validation) {
    EpisodeOutcome o;
    o.keep = std::move(keep);
    o.accuracy = validation;
    o.reward = -(1 - validation);
    o.macs = static_cast<int64_t>(env.cost(o.keep));
    return o;
  };
  // Validation favours the narrowest widths (episode 0, and again as a
  // cached episode 3); the full widths are third on validation.
  std::vector<EpisodeOutcome> outcomes{outcome(least, 0.9), outcome(mid, 0.5), outcome(full, 0.4),
                                       outcome(least, 0.9)};
  std::vector<RankedPolicy> top2 = rerank(env, outcomes, selection, 2);
  REQUIRE(top2.size() == 2);  // episodes 0 and 1: the repeat of episode 0 is skipped, episode 2 is not among the 2 best
  CHECK(top2[0].selection >= top2[1].selection);
  std::set<int64_t> episodes{top2[0].episode, top2[1].episode};
  CHECK(episodes == std::set<int64_t>{0, 1});
  std::vector<RankedPolicy> all = rerank(env, outcomes, selection, 10);
  REQUIRE(all.size() == 3);
  CHECK(all[0].episode == 2);  // the full widths win on the selection set
  CHECK(all[0].selection == Approx(1.0));
  CHECK(all[0].validation == Approx(0.4));
  CHECK(all[0].keep == full);
  CHECK(all.back().episode == 0);
  CHECK(all.back().selection == Approx(least_top1));
  CHECK(all.back().reward == Approx(-(1 - least_top1)));
  CHECK(rerank(env, outcomes, selection, 0).empty());
  data::TensorDataset none = random_images(0, 1);
  CHECK(rerank(env, outcomes, none, 3).empty());
}

TEST_CASE("amc latency table: the overhead between its two ends, never decreasing, and read back", "[amc][env][latency]") {
  latency::LatencyTable table({}, latency::LatencyOptions{});
  table.set_overhead_ms(0.30, 0.10);
  CHECK(table.overhead_ms(0) == Approx(0.10));
  CHECK(table.overhead_ms(0.25) == Approx(0.15));
  CHECK(table.overhead_ms(1) == Approx(0.30));
  // Read back from JSON.
  latency::LatencyTable again = latency::LatencyTable::from_json(table.to_json(), "t.json");
  CHECK(again.overhead_ms(0.25) == Approx(0.15));
  nlohmann::json j = table.to_json();
  j["overhead_smallest_ms"] = -1;  // unknown: constant
  CHECK(latency::LatencyTable::from_json(j, "t.json").overhead_ms(0.5) == Approx(0.3));
  // Two ends given the wrong way round (the smallest model's overhead above
  // the unpruned one's) pool into a constant rather than shrink with width.
  table.set_overhead_ms(0.1, 0.3);
  CHECK(table.overhead_ms(0) == Approx(0.2));
  CHECK(table.overhead_ms(1) == Approx(0.2));
  CHECK_THROWS_WITH(table.set_overhead_ms(std::nan(""), 0.1), Catch::Contains("not finite"));
}
