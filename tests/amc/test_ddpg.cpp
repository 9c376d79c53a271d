// The DDPG agent on its own: a synthetic environment whose reward peaks at
// chosen actions, so whether it learns is a number, not a judgement.
#include <catch2/catch.hpp>

#include <ATen/Parallel.h>

#include "compress/amc/ddpg.h"
#include "compress/error.h"

#include <algorithm>
#include <cstdio>

using namespace compress;
using namespace compress::amc;

namespace {

// Steps t = 0..T-1; the state is one-hot of t plus the previous action; the
// episode's reward is -sum (a_t - target_t)^2, peaked at `targets`.
class PeakedEnvironment : public Environment {
 public:
  explicit PeakedEnvironment(std::vector<double> targets) : targets_(std::move(targets)) {}
  int64_t state_size() const override { return static_cast<int64_t>(targets_.size()) + 1; }
  at::Tensor reset() override {
    t_ = 0;
    taken_.clear();
    return state(0, 0.0);
  }
  StepResult step(double action) override {
    taken_.push_back(action);
    ++t_;
    const bool done = t_ == targets_.size();
    return {action, state(done ? t_ - 1 : t_, action), done};
  }
  double finish() override {
    double r = 0;
    for (size_t i = 0; i < targets_.size(); ++i) r -= (taken_[i] - targets_[i]) * (taken_[i] - targets_[i]);
    return r;
  }

 private:
  at::Tensor state(size_t t, double previous) const {
    at::Tensor s = at::zeros({state_size()});
    s[static_cast<int64_t>(t)] = 1.0;
    s[state_size() - 1] = previous;
    return s;
  }
  std::vector<double> targets_;
  std::vector<double> taken_;
  size_t t_ = 0;
};

// AMC's constraint in miniature: actions in [0.2, 1] share a budget (their
// sum at most `budget`), and each is clipped so the budget stays reachable
// with every later action at 0.2. Keeping early steps wide therefore forces
// the later ones down, as in the pruning environment. The state is one-hot
// of t, the previous action and the budget spent so far; the reward is
// -sum (a_t - target_t)^2 over the applied actions.
class BudgetedEnvironment : public Environment {
 public:
  BudgetedEnvironment(std::vector<double> targets, double budget) : targets_(std::move(targets)), budget_(budget) {}
  int64_t state_size() const override { return static_cast<int64_t>(targets_.size()) + 2; }
  at::Tensor reset() override {
    taken_.clear();
    return state(0, 1.0);
  }
  StepResult step(double action) override {
    const size_t t = taken_.size();
    double spent = 0;
    for (double a : taken_) spent += a;
    const double later_minimum = kLow * static_cast<double>(targets_.size() - t - 1);
    const double applied = std::max(kLow, std::min(action, budget_ - spent - later_minimum));
    taken_.push_back(applied);
    const bool done = taken_.size() == targets_.size();
    return {applied, state(done ? t : t + 1, applied), done};
  }
  double finish() override {
    double r = 0;
    for (size_t i = 0; i < targets_.size(); ++i) r -= (taken_[i] - targets_[i]) * (taken_[i] - targets_[i]);
    return r;
  }
  static constexpr double kLow = 0.2;

 private:
  at::Tensor state(size_t t, double previous) const {
    at::Tensor s = at::zeros({state_size()});
    s[static_cast<int64_t>(t)] = 1.0;
    double spent = 0;
    for (double a : taken_) spent += a;
    s[state_size() - 2] = previous;
    s[state_size() - 1] = spent / budget_;
    return s;
  }
  std::vector<double> targets_;
  double budget_;
  std::vector<double> taken_;
};

}  // namespace

TEST_CASE("DDPG under AMC's budget clipping: trained episodes and the learned policy beat random search", "[amc][ddpg]") {
  at::set_num_threads(1);
  // The peak spends the whole budget; random actions (the warm-up) keep
  // early steps wide and get the later ones clipped to the minimum.
  const std::vector<double> targets{0.9, 0.35, 0.8, 0.3, 0.7, 0.5};
  double budget = 0;
  for (double t : targets) budget += t;
  BudgetedEnvironment env(targets, budget);
  DdpgConfig cfg;
  cfg.seed = 1;
  cfg.action_low = BudgetedEnvironment::kLow;
  cfg.hidden = 64;
  const int64_t episodes = 150, warmup = 50;
  SearchResult r = search(env, cfg, episodes, warmup);
  double best_warmup = -1e9, best_trained = -1e9;
  for (int64_t e = 0; e < episodes; ++e) {
    double& best = e < warmup ? best_warmup : best_trained;
    best = std::max(best, r.episodes[static_cast<size_t>(e)].reward);
    double spent = 0;
    for (double a : r.episodes[static_cast<size_t>(e)].actions) spent += a;
    REQUIRE(spent <= budget + 1e-9);  // clipping kept every episode within the budget
  }
  INFO("best warm-up " << best_warmup << ", best trained " << best_trained << " (episode " << r.best_episode
                       << "), learned policy " << r.policy_reward);
  CHECK(r.best_episode >= warmup);
  CHECK(best_trained > best_warmup);
  CHECK(r.policy_reward > best_warmup);
}

TEST_CASE("DDPG learns the peak of a synthetic reward within 250 episodes", "[amc][ddpg]") {
  at::set_num_threads(1);
  const std::vector<double> targets{0.3, 0.8, 0.5, 0.65};
  PeakedEnvironment env(targets);
  DdpgConfig cfg;
  cfg.seed = 3;
  cfg.updates_per_step = 1;  // AMC's one update per step: this case stays fast (the budgeted case uses the default)
  SearchResult r = search(env, cfg, 250, 50);
  REQUIRE(r.episodes.size() == 250);
  // Random actions in [0, 1] score about -4/6 on average; the best warm-up
  // episode is far from the peak.
  double best_warmup = -1e9;
  for (int i = 0; i < 50; ++i) best_warmup = std::max(best_warmup, r.episodes[i].reward);
  CHECK(best_warmup < -0.02);
  // The search finds the peak after the warm-up (the policy, not luck), and
  // the trained actor without noise beats every random episode.
  INFO("best warm-up " << best_warmup << ", best " << r.best_reward << " at episode " << r.best_episode
                       << ", learned policy " << r.policy_reward);
  CHECK(r.best_episode >= 50);
  CHECK(r.best_reward > -0.005);
  for (size_t t = 0; t < targets.size(); ++t) CHECK(std::abs(r.best_actions[t] - targets[t]) < 0.05);
  CHECK(r.policy_reward > best_warmup);
}

TEST_CASE("DDPG search is deterministic for a seed and differs across seeds", "[amc][ddpg]") {
  at::set_num_threads(1);
  PeakedEnvironment env({0.2, 0.9});
  DdpgConfig cfg;
  cfg.seed = 7;
  cfg.hidden = 32;
  SearchResult a = search(env, cfg, 30, 10), b = search(env, cfg, 30, 10);
  cfg.seed = 8;
  SearchResult c = search(env, cfg, 30, 10);
  bool differs = false;
  for (size_t e = 0; e < a.episodes.size(); ++e) {
    REQUIRE(a.episodes[e].actions == b.episodes[e].actions);
    CHECK(a.episodes[e].reward == b.episodes[e].reward);
    differs = differs || a.episodes[e].actions != c.episodes[e].actions;
  }
  CHECK(differs);
}

TEST_CASE("DDPG exploration noise stays in range and decays after the warm-up", "[amc][ddpg]") {
  PeakedEnvironment env({0.5});
  DdpgConfig cfg;
  cfg.action_low = 0.2;
  cfg.action_high = 1.0;
  cfg.noise_decay = 0.9;
  cfg.hidden = 16;
  SearchResult r = search(env, cfg, 20, 5);
  for (const auto& e : r.episodes) {
    for (double a : e.actions) {
      CHECK(a >= 0.2);
      CHECK(a <= 1.0);
    }
  }
  CHECK(r.episodes[4].sigma == 0);  // warm-up: uniform actions, no sigma
  CHECK(r.episodes[5].sigma == Approx(0.5));
  CHECK(r.episodes[19].sigma == Approx(0.5 * std::pow(0.9, 14)));
}

TEST_CASE("DDPG search refuses episodes that never use the policy", "[amc][ddpg][bad-input]") {
  PeakedEnvironment env({0.5});
  DdpgConfig cfg;
  CHECK_THROWS_WITH(search(env, cfg, 10, 10), Catch::Contains("must exceed --warmup"));
  CHECK_THROWS_WITH(search(env, cfg, 0, 0), Catch::Contains("--episodes must be positive"));
  CHECK_THROWS_WITH(search(env, cfg, 10, -1), Catch::Contains("--warmup must not be negative"));
}
