// The measured finalisation of a latency search on given times (an injected
// timer, no model): which candidate it returns, how load drift and a match
// policy set the budget, and the shrink bisection on a synthetic latency.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "compress/amc/measured_final.h"
#include "compress/error.h"

using namespace compress;
using namespace compress::amc;

namespace {

using Keep = std::vector<int64_t>;

// Times from a function of the widths; counts the models timed. `load`
// multiplies every time (other processes slowing the machine).
struct FakeTimer {
  std::function<double(const Keep&)> ms;
  double load = 1;
  int64_t timed = 0;
  std::vector<std::vector<double>> operator()(const std::vector<Keep>& keeps) {
    std::vector<double> out;
    for (const Keep& k : keeps) out.push_back(load * ms(k));
    timed += static_cast<int64_t>(keeps.size());
    return {out};  // one round
  }
};

MeasuredFinalConfig two_groups(double budget) {
  MeasuredFinalConfig c;
  c.widths = {10, 20};
  c.min_keep = {2, 4};
  c.unpruned_reference_ms = 1.0;
  c.budget_ms = budget;
  c.shrink_probes = 7;
  return c;
}

// Time proportional to the channels kept: 1 ms unpruned ({10, 20}).
double channels_ms(const Keep& k) { return static_cast<double>(k[0] + k[1]) / 30.0; }

}  // namespace

TEST_CASE("measured finalisation: the best candidate within the budget, over faster and slower ones", "[amc][final]") {
  const Keep slow{9, 18}, fits{8, 16}, fast{5, 10};
  FakeTimer timer{channels_ms};  // slow 0.9 ms, fits 0.8 ms, fast 0.5 ms
  const std::vector<FinalCandidate> candidates{{7, slow, -0.10}, {3, fits, -0.12}, {5, fast, -0.20}};

  SECTION("no score: the first candidate measured within the budget, nothing shrunk") {
    MeasuredFinal f = finalize_by_measurement(candidates, std::ref(timer), {}, two_groups(0.85));
    REQUIRE(f.candidates.size() == 3);
    CHECK_FALSE(f.candidates[0].within);
    CHECK(f.candidates[1].within);
    CHECK(f.candidates[2].within);
    CHECK(f.first_within == 1);
    CHECK(f.source == 1);
    CHECK_FALSE(f.shrunk);
    CHECK(f.result.keep == fits);
    CHECK(f.probes.empty());
    CHECK(timer.timed == 4);  // the unpruned model and the three candidates, once
    CHECK(f.reason.find("candidate 2") != std::string::npos);
    const nlohmann::json j = f.to_json(candidates);
    CHECK(j["episode"] == 3);
    CHECK(j["candidates"][0]["within"] == false);
  }
  SECTION("the best candidate within the budget is returned as it is") {
    MeasuredFinal f = finalize_by_measurement(candidates, std::ref(timer), [](const Keep&) { return 1.0; },
                                              two_groups(0.95));
    CHECK(f.source == 0);
    CHECK(f.result.keep == slow);
    CHECK(f.probes.empty());
  }
  SECTION("with a score: the best shrunk to the budget when it scores above the first within it") {
    int64_t scored = 0;
    MeasuredFinal f = finalize_by_measurement(candidates, std::ref(timer), [&](const Keep&) { ++scored; return -0.11; },
                                              two_groups(0.85));
    CHECK(scored == 1);
    CHECK(f.shrunk);
    CHECK(f.source == 0);
    CHECK(f.shrunk_scored);
    CHECK(f.result.within);
    CHECK(f.result.at_table_load_ms <= 0.85);
    CHECK(f.shrink_factor < 1);
    CHECK(f.shrink_factor > 0);
    CHECK(f.result.keep == shrink_toward_minimum(slow, {2, 4}, f.shrink_factor));
    CHECK_FALSE(f.probes.empty());
  }
  SECTION("with a score: the first within the budget when the shrunk one scores below it") {
    MeasuredFinal f = finalize_by_measurement(candidates, std::ref(timer), [](const Keep&) { return -0.15; },
                                              two_groups(0.85));
    CHECK_FALSE(f.shrunk);
    CHECK(f.source == 1);
    CHECK(f.result.keep == fits);
    CHECK(f.shrunk_scored);
    CHECK(f.shrunk_score == -0.15);
  }
  SECTION("load drift: times are compared at the load the table was built under") {
    timer.load = 2;  // everything twice as slow now, the unpruned model too
    MeasuredFinal f = finalize_by_measurement(candidates, std::ref(timer), {}, two_groups(0.85));
    CHECK(f.candidates[1].measured_ms == Approx(1.6));
    CHECK(f.candidates[1].at_table_load_ms == Approx(0.8));
    CHECK(f.source == 1);
  }
  SECTION("rounds: compared within each round, the median over rounds") {
    // Three rounds: the second at twice the load for every model (drift),
    // the third with a burst that slows the best candidate alone by half.
    auto rounds = [&](const std::vector<Keep>& keeps) {
      std::vector<std::vector<double>> out(3);
      for (const Keep& k : keeps) {
        out[0].push_back(channels_ms(k));
        out[1].push_back(2 * channels_ms(k));
        out[2].push_back((k == slow ? 1.5 : 1.0) * channels_ms(k));
      }
      return out;
    };
    MeasuredFinal f = finalize_by_measurement(candidates, rounds, {}, two_groups(0.95));
    CHECK(f.candidates[0].measured_ms == Approx(0.9 * 1.5));  // the median of 0.9, 1.8 and 1.35
    CHECK(f.candidates[0].at_table_load_ms == Approx(0.9));
    CHECK(f.candidates[0].budget_ratio == Approx(0.9 / 0.95));
    CHECK(f.source == 0);  // within, though one round of three put it at 1.35 ms
    CHECK(median_of({3, 1, 2}) == 2);
    CHECK(median_of({4, 1, 3, 2}) == 2.5);
    CHECK(median_of({}) == 0);
  }
  SECTION("a match policy: its time measured alongside is the budget") {
    MeasuredFinalConfig c = two_groups(100);  // ignored
    c.match = {6, 12};
    timer.load = 1.5;
    MeasuredFinal f = finalize_by_measurement(candidates, std::ref(timer), {}, c);
    CHECK(f.candidates[0].budget_at_table_load_ms == Approx(0.6));
    CHECK(f.candidates[0].budget_ratio == Approx(0.9 / 0.6));
    CHECK(f.source == 2);  // only the fast one is within the policy's 0.6 ms
    CHECK(f.result.keep == fast);
  }
}

TEST_CASE("measured finalisation: the shrink bisection converges on a synthetic latency", "[amc][final]") {
  // Every width along the shrink path: the bisection's factor is within
  // 2^-probes of the crossing, and the widths one resolution step wider
  // would not fit.
  SECTION("a continuous function") {
    int calls = 0;
    const double s = bisect_largest_fitting([&](double x) { ++calls; return x * x <= 0.3; }, 10);
    CHECK(calls == 10);
    CHECK(s * s <= 0.3);
    CHECK(s > std::sqrt(0.3) - std::ldexp(1.0, -10));
    CHECK(bisect_largest_fitting([](double) { return false; }, 6) == 0);
    CHECK(bisect_largest_fitting([](double) { return true; }, 6) == Approx(1 - std::ldexp(1.0, -6)));
  }
  SECTION("finalisation of a candidate over the budget") {
    MeasuredFinalConfig c;
    c.widths = {64, 128, 32};
    c.min_keep = {13, 26, 7};
    c.unpruned_reference_ms = 1.0;
    c.budget_ms = 0.5;
    c.shrink_probes = 8;
    // Non-linear in the widths, 1 ms unpruned.
    auto ms = [](const Keep& k) {
      const double a = k[0] / 64.0, b = k[1] / 128.0, d = k[2] / 32.0;
      return 0.1 + 0.5 * a * b + 0.2 * b * b + 0.2 * std::sqrt(d);
    };
    FakeTimer timer{ms, 1.3};
    const Keep candidate{60, 110, 30};
    REQUIRE(ms(candidate) > 0.5);
    MeasuredFinal f = finalize_by_measurement({{4, candidate, -0.1}}, std::ref(timer), {}, c);
    CHECK(f.shrunk);
    CHECK(f.first_within == -1);
    CHECK(f.result.within);
    CHECK(ms(f.result.keep) <= 0.5);
    CHECK(f.result.at_table_load_ms == Approx(ms(f.result.keep)));
    // A step of the bisection's resolution wider is over the budget, and
    // the result is close to the budget (the path's widths are integers).
    const Keep wider = shrink_toward_minimum(candidate, c.min_keep, f.shrink_factor + 2 * std::ldexp(1.0, -8));
    CHECK(ms(wider) > 0.5);
    CHECK(ms(f.result.keep) > 0.47);
    CHECK(f.probes.size() <= 8);
    CHECK(f.reason.find("no candidate measured within it") != std::string::npos);
  }
  SECTION("a budget nothing meets: the minimum widths, said to be over it") {
    FakeTimer timer{[](const Keep& k) { return 0.5 + 0.025 * static_cast<double>(k[0]) / 10 * 20; }};
    MeasuredFinal f = finalize_by_measurement({{0, {10, 20}, 0}}, std::ref(timer), {}, two_groups(0.1));
    CHECK(f.shrunk);
    CHECK(f.shrink_factor == 0);
    CHECK(f.result.keep == Keep{2, 4});
    CHECK_FALSE(f.result.within);
    CHECK(f.probes.back().factor == 0);
    CHECK(f.reason.find("not even that") != std::string::npos);
  }
}

TEST_CASE("measured finalisation: the shrink path and bad input", "[amc][final][bad-input]") {
  const Keep keep{10, 7, 3}, low{2, 2, 3};
  CHECK(shrink_toward_minimum(keep, low, 1) == keep);
  CHECK(shrink_toward_minimum(keep, low, 0) == low);
  Keep previous = low;
  for (int i = 1; i <= 20; ++i) {
    const Keep k = shrink_toward_minimum(keep, low, i / 20.0);
    for (size_t g = 0; g < k.size(); ++g) CHECK(k[g] >= previous[g]);
    previous = k;
  }
  FakeTimer timer{[](const Keep&) { return 1.0; }};
  CHECK_THROWS_AS(finalize_by_measurement({}, std::ref(timer), {}, two_groups(1)), Error);
  CHECK_THROWS_WITH(finalize_by_measurement({{0, {1, 2, 3}, 0}}, std::ref(timer), {}, two_groups(1)),
                    Catch::Contains("wrong length"));
}
