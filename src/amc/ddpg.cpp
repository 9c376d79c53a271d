#include "compress/amc/ddpg.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>
#include <string>

#include "compress/error.h"
#include "compress/train/optim.h"

namespace compress::amc {

namespace {

// A multilayer perceptron over plain tensors: ReLU between layers, nothing
// after the last (callers add sigmoid for the actor).
struct Mlp {
  std::vector<at::Tensor> weights, biases;

  Mlp(const std::vector<int64_t>& sizes, at::Generator& gen) {
    for (size_t i = 0; i + 1 < sizes.size(); ++i) {
      // PyTorch's default range for hidden layers; the last layer starts
      // near zero (DDPG paper: 3e-3) so early Q and actions are not saturated.
      const bool last = i + 2 == sizes.size();
      const double bound = last ? 3e-3 : 1.0 / std::sqrt(static_cast<double>(sizes[i]));
      weights.push_back(at::empty({sizes[i + 1], sizes[i]}).uniform_(-bound, bound, gen).requires_grad_());
      biases.push_back(at::empty({sizes[i + 1]}).uniform_(-bound, bound, gen).requires_grad_());
    }
  }
  Mlp(const Mlp& other) {  // a detached deep copy (target networks)
    for (size_t i = 0; i < other.weights.size(); ++i) {
      weights.push_back(other.weights[i].detach().clone());
      biases.push_back(other.biases[i].detach().clone());
    }
  }

  at::Tensor forward(at::Tensor x) const {
    for (size_t i = 0; i < weights.size(); ++i) {
      x = at::linear(x, weights[i], biases[i]);
      if (i + 1 < weights.size()) x = at::relu(x);
    }
    return x;
  }

  std::vector<train::NamedTensor> named(const std::string& prefix) const {
    std::vector<train::NamedTensor> out;
    for (size_t i = 0; i < weights.size(); ++i) {
      out.push_back({prefix + std::to_string(i) + ".weight", weights[i]});
      out.push_back({prefix + std::to_string(i) + ".bias", biases[i]});
    }
    return out;
  }

  void soft_update_from(const Mlp& online, double tau) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < weights.size(); ++i) {
      weights[i].mul_(1 - tau).add_(online.weights[i].detach(), tau);
      biases[i].mul_(1 - tau).add_(online.biases[i].detach(), tau);
    }
  }
};

train::OptimizerConfig adam(double lr) {
  train::OptimizerConfig c;
  c.kind = "adam";
  c.lr = lr;
  c.weight_decay = 0;
  return c;
}

}  // namespace

// ---- replay buffer ----

ReplayBuffer::ReplayBuffer(int64_t capacity) : capacity_(std::max<int64_t>(1, capacity)) {}

void ReplayBuffer::push(Transition t) {
  if (size() < capacity_) {
    items_.push_back(std::move(t));
  } else {
    items_[static_cast<size_t>(next_)] = std::move(t);
  }
  next_ = (next_ + 1) % capacity_;
}

std::vector<const Transition*> ReplayBuffer::sample(int64_t n, std::mt19937_64& rng) const {
  std::vector<const Transition*> out;
  if (items_.empty()) return out;
  std::uniform_int_distribution<size_t> pick(0, items_.size() - 1);
  for (int64_t i = 0; i < n; ++i) out.push_back(&items_[pick(rng)]);
  return out;
}

// ---- agent ----

struct DdpgAgent::Networks {
  Mlp actor, critic, actor_target, critic_target;
  train::Optimizer actor_opt, critic_opt;

  Networks(int64_t state_size, const DdpgConfig& c, at::Generator gen)
      : actor({state_size, c.hidden, c.hidden, 1}, gen),
        critic({state_size + 1, c.hidden, c.hidden, 1}, gen),
        actor_target(actor),
        critic_target(critic),
        actor_opt(actor.named("actor."), adam(c.actor_lr)),
        critic_opt(critic.named("critic."), adam(c.critic_lr)) {}
};

DdpgAgent::DdpgAgent(int64_t state_size, const DdpgConfig& config)
    : cfg_(config), buffer_(config.replay_capacity), rng_(config.seed), sigma_(config.noise_sigma) {
  if (state_size <= 0) bad_input("DDPG: the state needs at least one feature");
  if (!(config.action_high > config.action_low)) bad_input("DDPG: the action range is empty");
  if (config.hidden <= 0 || config.batch_size <= 0) bad_input("DDPG: hidden size and batch size must be positive");
  // The weights' own generator: nothing here touches ATen's global one.
  nets_ = std::make_unique<Networks>(state_size, cfg_, at::make_generator<at::CPUGeneratorImpl>(config.seed));
}

DdpgAgent::~DdpgAgent() = default;

namespace {
// The actor's output in [low, high].
at::Tensor scaled_action(const Mlp& actor, const at::Tensor& states, double low, double high) {
  return at::sigmoid(actor.forward(states)) * (high - low) + low;
}
}  // namespace

double DdpgAgent::act(const at::Tensor& state) const {
  torch::NoGradGuard no_grad;
  return scaled_action(nets_->actor, state.to(at::kFloat).reshape({1, -1}), cfg_.action_low, cfg_.action_high)
      .item<double>();
}

double DdpgAgent::explore(const at::Tensor& state) {
  const double mean = act(state);
  if (sigma_ <= 0) return mean;
  // Truncated normal by rejection; after many misses (mean at an edge and a
  // tiny sigma cannot cause that, a huge sigma can) clamp instead.
  std::normal_distribution<double> normal(mean, sigma_);
  for (int tries = 0; tries < 100; ++tries) {
    double a = normal(rng_);
    if (a >= cfg_.action_low && a <= cfg_.action_high) return a;
  }
  return std::clamp(normal(rng_), cfg_.action_low, cfg_.action_high);
}

double DdpgAgent::random_action() {
  return std::uniform_real_distribution<double>(cfg_.action_low, cfg_.action_high)(rng_);
}

void DdpgAgent::remember(const std::vector<Transition>& episode) {
  for (const Transition& t : episode) buffer_.push(t);
}

void DdpgAgent::decay_noise() { sigma_ *= cfg_.noise_decay; }

double DdpgAgent::update() {
  auto batch = buffer_.sample(cfg_.batch_size, rng_);
  if (batch.empty()) return 0;
  std::vector<at::Tensor> s, s2;
  std::vector<float> a, r, not_done;
  for (const Transition* t : batch) {
    s.push_back(t->state.to(at::kFloat));
    s2.push_back(t->next_state.to(at::kFloat));
    a.push_back(static_cast<float>(t->action));
    r.push_back(static_cast<float>(t->reward));
    not_done.push_back(t->done ? 0.f : 1.f);
  }
  const int64_t n = static_cast<int64_t>(batch.size());
  at::Tensor states = at::stack(s), next_states = at::stack(s2);
  at::Tensor actions = at::tensor(a).reshape({n, 1}), rewards = at::tensor(r).reshape({n, 1});
  at::Tensor live = at::tensor(not_done).reshape({n, 1});

  // Rewards relative to a moving average of batch means (AMC): the critic
  // then fits differences, whatever the scale of the accuracy.
  const double mean_reward = rewards.mean().item<double>();
  baseline_ = have_baseline_ ? baseline_ + cfg_.baseline_alpha * (mean_reward - baseline_) : mean_reward;
  have_baseline_ = true;
  rewards = rewards - baseline_;

  Networks& N = *nets_;
  at::Tensor target;
  {
    torch::NoGradGuard no_grad;
    at::Tensor next_a = scaled_action(N.actor_target, next_states, cfg_.action_low, cfg_.action_high);
    target = rewards + cfg_.discount * live * N.critic_target.forward(at::cat({next_states, next_a}, 1));
  }
  N.critic_opt.zero_grad();
  at::Tensor q = N.critic.forward(at::cat({states, actions}, 1));
  at::Tensor critic_loss = at::mse_loss(q, target);
  critic_loss.backward();
  N.critic_opt.step(cfg_.critic_lr);

  N.actor_opt.zero_grad();
  at::Tensor policy_loss =
      -N.critic.forward(at::cat({states, scaled_action(N.actor, states, cfg_.action_low, cfg_.action_high)}, 1)).mean();
  policy_loss.backward();
  N.actor_opt.step(cfg_.actor_lr);
  N.critic_opt.zero_grad();  // the actor's backward left gradients on the critic

  N.actor_target.soft_update_from(N.actor, cfg_.tau);
  N.critic_target.soft_update_from(N.critic, cfg_.tau);
  return critic_loss.item<double>();
}

// ---- the search loop ----

void check_search_lengths(int64_t episodes, int64_t warmup) {
  if (episodes <= 0) bad_input("--episodes must be positive, got " + std::to_string(episodes));
  if (warmup < 0) bad_input("--warmup must not be negative, got " + std::to_string(warmup));
  if (warmup >= episodes) {
    bad_input("--episodes (" + std::to_string(episodes) + ") must exceed --warmup (" + std::to_string(warmup) +
              "): no episode would use the learned policy");
  }
}

SearchResult search(Environment& env, const DdpgConfig& config, int64_t episodes, int64_t warmup,
                    const std::function<void(const EpisodeLog&)>& on_episode) {
  check_search_lengths(episodes, warmup);
  DdpgAgent agent(env.state_size(), config);
  SearchResult result;
  for (int64_t e = 0; e < episodes; ++e) {
    const bool warm = e < warmup;
    std::vector<Transition> steps;
    EpisodeLog log;
    log.episode = e;
    log.warmup = warm;
    log.sigma = warm ? 0 : agent.noise_sigma();
    at::Tensor state = env.reset();
    for (;;) {
      double a = warm ? agent.random_action() : agent.explore(state);
      Environment::StepResult r = env.step(a);
      steps.push_back(Transition{state, r.next_state, r.applied, 0, r.done});
      log.actions.push_back(r.applied);
      state = r.next_state;
      if (r.done) break;
    }
    log.reward = env.finish();
    for (Transition& t : steps) t.reward = log.reward;
    agent.remember(steps);
    if (result.best_episode < 0 || log.reward > result.best_reward) {
      result.best_reward = log.reward;
      result.best_actions = log.actions;
      result.best_episode = e;
      log.best = true;
    }
    if (!warm) {
      for (size_t i = 0; i < steps.size() * static_cast<size_t>(std::max<int64_t>(1, config.updates_per_step)); ++i)
        agent.update();
      agent.decay_noise();
    }
    if (on_episode) on_episode(log);
    result.episodes.push_back(std::move(log));
  }
  at::Tensor state = env.reset();
  for (;;) {
    Environment::StepResult r = env.step(agent.act(state));
    result.policy_actions.push_back(r.applied);
    state = r.next_state;
    if (r.done) break;
  }
  result.policy_reward = env.finish();
  return result;
}

}  // namespace compress::amc
