#include "compress/train/optim.h"

#include <cmath>

#include "compress/error.h"

namespace compress::train {

Optimizer::Optimizer(std::vector<NamedTensor> params, OptimizerConfig cfg)
    : params_(std::move(params)), cfg_(std::move(cfg)) {
  if (cfg_.kind != "sgd" && cfg_.kind != "adam" && cfg_.kind != "adamw") {
    bad_input("optimizer: unknown kind '" + cfg_.kind + "' (sgd, adam or adamw)");
  }
  if (!(cfg_.lr > 0)) bad_input("optimizer: learning rate must be positive");
  if (cfg_.weight_decay < 0) bad_input("optimizer: weight decay must not be negative");
  if (cfg_.nesterov && (cfg_.kind != "sgd" || cfg_.momentum <= 0)) {
    bad_input("optimizer: Nesterov momentum needs sgd with momentum > 0");
  }
  // Groups: each parameter's learning-rate factor and weight decay, or frozen.
  std::vector<int> hits(cfg_.groups.size(), 0);
  std::vector<NamedTensor> trained;
  for (auto& p : params_) {
    const ParamGroup* group = nullptr;
    for (size_t g = 0; g < cfg_.groups.size() && !group; ++g) {
      for (const auto& pattern : cfg_.groups[g].match) {
        if (matches_pattern(pattern, p.name)) {
          group = &cfg_.groups[g];
          ++hits[g];
          break;
        }
      }
    }
    if (group && group->frozen) {
      p.value.set_requires_grad(false);
      continue;
    }
    double lr = group && group->lr ? *group->lr : cfg_.lr;
    double wd = group && group->weight_decay ? *group->weight_decay : cfg_.weight_decay;
    if (!(lr > 0)) bad_input("optimizer: parameter group '" + group->name + "' needs a positive learning rate");
    if (wd < 0) bad_input("optimizer: parameter group '" + group->name + "' has a negative weight decay");
    lr_scale_.push_back(lr / cfg_.lr);
    // An explicit group decay applies to 1-D tensors too; the default keeps decay_1d's rule.
    weight_decay_.push_back(group && group->weight_decay ? wd : ((p.value.dim() > 1 || cfg_.decay_1d) ? wd : 0.0));
    trained.push_back(p);
  }
  for (size_t g = 0; g < cfg_.groups.size(); ++g)
    if (!hits[g]) bad_input("optimizer: parameter group '" + cfg_.groups[g].name + "' matches no parameter");
  params_ = std::move(trained);
  buf1_.resize(params_.size());
  buf2_.resize(params_.size());
}

bool matches_pattern(const std::string& pattern, const std::string& name) {
  // Iterative glob with '*' only: backtrack to the last star on a mismatch.
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] != '*' && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void Optimizer::zero_grad() {
  for (auto& p : params_) {
    if (p.value.grad().defined()) p.value.mutable_grad().reset();
  }
}

void Optimizer::step(double lr_all) {
  at::NoGradGuard no_grad;
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor p = params_[i].value;
    at::Tensor g = p.grad();
    if (!g.defined()) continue;
    const double wd = weight_decay_[i];
    const double lr = lr_all * lr_scale_[i];
    if (cfg_.kind == "sgd") {
      if (wd != 0) g = g.add(p, wd);
      if (cfg_.momentum != 0) {
        if (!buf1_[i].defined()) buf1_[i] = g.clone();
        else buf1_[i].mul_(cfg_.momentum).add_(g);
        g = cfg_.nesterov ? g.add(buf1_[i], cfg_.momentum) : buf1_[i];
      }
      p.add_(g, -lr);
      continue;
    }
    // adam / adamw
    if (cfg_.kind == "adamw") {
      if (wd != 0) p.mul_(1.0 - lr * wd);
    } else if (wd != 0) {
      g = g.add(p, wd);
    }
    if (!buf1_[i].defined()) {
      buf1_[i] = at::zeros_like(p);
      buf2_[i] = at::zeros_like(p);
    }
    buf1_[i].mul_(cfg_.beta1).add_(g, 1.0 - cfg_.beta1);
    buf2_[i].mul_(cfg_.beta2).addcmul_(g, g, 1.0 - cfg_.beta2);
    const double bc1 = 1.0 - std::pow(cfg_.beta1, double(steps_));
    const double bc2 = 1.0 - std::pow(cfg_.beta2, double(steps_));
    at::Tensor denom = (buf2_[i] / bc2).sqrt_().add_(cfg_.eps);
    p.addcdiv_(buf1_[i], denom, -lr / bc1);
  }
}

std::vector<NamedTensor> Optimizer::state() const {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (buf1_[i].defined()) out.push_back({params_[i].name + ".buf1", buf1_[i]});
    if (buf2_[i].defined()) out.push_back({params_[i].name + ".buf2", buf2_[i]});
  }
  return out;
}

void Optimizer::load_state(const std::vector<NamedTensor>& state, int64_t steps) {
  steps_ = steps;
  for (size_t i = 0; i < params_.size(); ++i) {
    buf1_[i] = at::Tensor();
    buf2_[i] = at::Tensor();
    for (const auto& s : state) {
      if (s.name == params_[i].name + ".buf1") buf1_[i] = s.value.clone();
      if (s.name == params_[i].name + ".buf2") buf2_[i] = s.value.clone();
    }
  }
}

double clip_grad_norm(const std::vector<NamedTensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  double sq = 0;
  for (const auto& p : params) {
    if (p.value.grad().defined()) sq += p.value.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& p : params) {
      if (p.value.grad().defined()) p.value.mutable_grad().mul_(scale);
    }
  }
  return norm;
}

double lr_at(const ScheduleConfig& s, double base_lr, int64_t step, int64_t total_steps) {
  if (s.warmup_steps > 0 && step < s.warmup_steps) {
    const double f = s.warmup_start_factor +
                     (1.0 - s.warmup_start_factor) * double(step) / double(s.warmup_steps);
    return base_lr * f;
  }
  const int64_t t = step - s.warmup_steps;
  if (s.kind == "constant") return base_lr;
  if (s.kind == "step") {
    if (s.step_size <= 0) bad_input("schedule: step size must be positive");
    return base_lr * std::pow(s.gamma, double(t / s.step_size));
  }
  if (s.kind == "cosine") {
    const int64_t span = std::max<int64_t>(1, total_steps - s.warmup_steps - 1);
    const double frac = std::min(1.0, double(t) / double(span));
    return s.min_lr + (base_lr - s.min_lr) * 0.5 * (1.0 + std::cos(M_PI * frac));
  }
  bad_input("schedule: unknown kind '" + s.kind + "' (constant, step or cosine)");
}

}  // namespace compress::train
