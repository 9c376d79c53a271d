#pragma once
// A DDPG agent (Lillicrap et al. 2016) as AMC uses it (He et al., ECCV 2018):
// an episode is a sequence of steps, one per prunable layer; each step's
// action is one number in [action_low, action_high] (a keep ratio); the
// environment scores the whole episode once at its end, and every transition
// of the episode is stored with that final reward.
//
// The agent knows nothing about pruning: it sees an Environment (below), so a
// synthetic environment with a known optimum can test it (tests/amc).
//
//   amc::DdpgConfig cfg;  cfg.seed = 1;
//   amc::SearchResult best = amc::search(env, cfg, /*episodes=*/300, /*warmup=*/100);
//
// Networks are plain tensors (no torch::nn): actor s -> 300 -> 300 -> sigmoid,
// critic (s, a) -> 300 -> 300 -> Q, trained with the toolkit's Adam
// (compress/train/optim.h). Deterministic for a seed on a fixed thread count:
// weights come from a seeded ATen generator, exploration and replay sampling
// from the agent's own std::mt19937_64.
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include <ATen/ATen.h>

namespace compress::amc {

// What the agent acts on. One episode: reset(), then step() until it says
// done, then finish() for the episode's reward.
class Environment {
 public:
  virtual ~Environment() = default;
  virtual int64_t state_size() const = 0;
  // Starts an episode; the state of its first step (float [state_size]).
  virtual at::Tensor reset() = 0;
  struct StepResult {
    double applied = 0;     // the action after the environment's constraints (clipping)
    at::Tensor next_state;  // the next step's state (the last state again when done)
    bool done = false;
  };
  virtual StepResult step(double action) = 0;
  // The episode's reward (larger is better), once step() said done.
  virtual double finish() = 0;
};

struct DdpgConfig {
  double action_low = 0.0, action_high = 1.0;  // the actor's range (AMC: keep ratio in [0.2, 1])
  int64_t hidden = 300;
  double actor_lr = 1e-4, critic_lr = 1e-3;
  double tau = 0.01;           // soft target updates: target = (1 - tau) target + tau online
  double discount = 1.0;       // AMC: 1 (every step carries the episode's reward)
  int64_t batch_size = 64;
  int64_t replay_capacity = 2000;  // transitions
  double noise_sigma = 0.5;    // truncated-normal exploration around the actor's action
  double noise_decay = 0.99;   // sigma *= decay each episode after the warm-up (AMC)
  double baseline_alpha = 0.5; // moving average of batch rewards subtracted from rewards (AMC)
  // Gradient updates per transition of each trained episode (AMC: 1). More
  // let the actor follow the critic within a few hundred episodes; an update
  // costs about a millisecond against a second or more per scored episode.
  int64_t updates_per_step = 4;
  uint64_t seed = 0;
};

struct Transition {
  at::Tensor state, next_state;
  double action = 0, reward = 0;
  bool done = false;
};

// A ring buffer of transitions, sampled uniformly with replacement.
class ReplayBuffer {
 public:
  explicit ReplayBuffer(int64_t capacity);
  void push(Transition t);
  int64_t size() const { return static_cast<int64_t>(items_.size()); }
  std::vector<const Transition*> sample(int64_t n, std::mt19937_64& rng) const;

 private:
  int64_t capacity_;
  int64_t next_ = 0;
  std::vector<Transition> items_;
};

class DdpgAgent {
 public:
  DdpgAgent(int64_t state_size, const DdpgConfig& config);
  ~DdpgAgent();
  DdpgAgent(const DdpgAgent&) = delete;
  DdpgAgent& operator=(const DdpgAgent&) = delete;

  // The actor's action for a state, no noise.
  double act(const at::Tensor& state) const;
  // The actor's action plus truncated-normal noise of the current sigma,
  // kept in [action_low, action_high].
  double explore(const at::Tensor& state);
  // Uniform in [action_low, action_high] (the warm-up episodes).
  double random_action();
  // Stores one episode's transitions, each with the episode's reward.
  void remember(const std::vector<Transition>& episode);
  // One critic and one actor update on a sampled batch, then soft target
  // updates. Returns the critic loss (0 while the buffer is empty).
  double update();
  // After each episode past the warm-up: sigma *= noise_decay.
  void decay_noise();
  double noise_sigma() const { return sigma_; }
  const ReplayBuffer& buffer() const { return buffer_; }

 private:
  struct Networks;
  DdpgConfig cfg_;
  std::unique_ptr<Networks> nets_;
  ReplayBuffer buffer_;
  std::mt19937_64 rng_;
  double sigma_;
  bool have_baseline_ = false;
  double baseline_ = 0;
};

struct EpisodeLog {
  int64_t episode = 0;  // 0-based
  bool warmup = false;
  double reward = 0;
  std::vector<double> actions;  // applied (after clipping)
  double sigma = 0;
  bool best = false;            // the best reward so far
};

struct SearchResult {
  double best_reward = 0;
  std::vector<double> best_actions;
  int64_t best_episode = -1;
  std::vector<EpisodeLog> episodes;
  // One more episode after the search, the trained actor without noise
  // (not counted in `episodes`, not used for training).
  std::vector<double> policy_actions;
  double policy_reward = 0;
};

// Runs `episodes` episodes: the first `warmup` act uniformly at random and
// only fill the replay buffer; later ones act with decaying noise and train
// after each episode (updates_per_step x steps updates). `on_episode` sees
// each episode as it ends (progress lines). A final noise-free episode
// records the learned policy itself. Error(BadInput) when episodes <=
// 0, warmup < 0 or warmup >= episodes (no episode would use the policy).
// The same checks of episodes and warmup, for callers that want them before
// long preparations.
void check_search_lengths(int64_t episodes, int64_t warmup);
SearchResult search(Environment& env, const DdpgConfig& config, int64_t episodes, int64_t warmup,
                    const std::function<void(const EpisodeLog&)>& on_episode = {});

}  // namespace compress::amc
