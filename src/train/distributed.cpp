#include "compress/train/distributed.h"

// Debian's LibTorch is built with Gloo, but its CMake package does not pass
// the macro that unlocks ProcessGroupGloo.hpp; the symbols are in libtorch_cpu.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

#include "compress/error.h"

namespace compress::train {

namespace {

const char* variable(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// A whole-string decimal integer in [lo, hi], else one line naming the variable.
int env_int(const char* name, const char* text, int lo, int hi) {
  long long v = 0;
  const char* end = text + std::strlen(text);
  auto [p, ec] = std::from_chars(text, end, v);
  if (ec != std::errc() || p != end) bad_input(std::string(name) + "=" + text + " is not a whole number");
  if (v < lo || v > hi) {
    bad_input(std::string(name) + "=" + text + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return int(v);
}

std::string seconds_text(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", double(ms.count()) / 1000.0);
  return buf;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "?";
  return buf;
}

// Whether process `pid` on this machine has exited (gone, or a zombie).
bool process_exited(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  const size_t close = line.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  const char state = line[close + 2];
  return state == 'Z' || state == 'X';
}

// c10d logs every failed connection attempt through glog to stderr; our own
// one-line message says it better. Quiet while connecting, restored after.
class QuietGlog {
 public:
  QuietGlog() : saved_(FLAGS_minloglevel) { FLAGS_minloglevel = 3; }  // FATAL only
  ~QuietGlog() { FLAGS_minloglevel = saved_; }

 private:
  int saved_;
};

bool is_timeout(const std::string& reason) {
  return reason.find("imed out") != std::string::npos || reason.find("imeout") != std::string::npos;
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv e;
  const char* world = variable("WORLD_SIZE");
  const char* rank = variable("RANK");
  if (!world && !rank) return e;
  if (!world) bad_input("RANK is set but WORLD_SIZE is not (set both, or neither for a single process)");
  if (!rank) bad_input("WORLD_SIZE is set but RANK is not (set both, or neither for a single process)");
  e.world_size = env_int("WORLD_SIZE", world, 1, 1 << 20);
  e.rank = env_int("RANK", rank, 0, 1 << 20);
  if (e.rank >= e.world_size) {
    bad_input("RANK=" + std::to_string(e.rank) + " is not below WORLD_SIZE=" + std::to_string(e.world_size) +
              " (ranks are 0.." + std::to_string(e.world_size - 1) + ")");
  }
  const char* local = variable("LOCAL_RANK");
  e.local_rank = local ? env_int("LOCAL_RANK", local, 0, e.world_size - 1) : e.rank;
  if (!e.distributed()) return e;
  const char* addr = variable("MASTER_ADDR");
  const char* port = variable("MASTER_PORT");
  if (!addr) bad_input("WORLD_SIZE=" + std::to_string(e.world_size) + " needs MASTER_ADDR (the host of rank 0)");
  if (!port) bad_input("WORLD_SIZE=" + std::to_string(e.world_size) + " needs MASTER_PORT (a free TCP port on rank 0's host)");
  e.master_addr = addr;
  e.master_port = env_int("MASTER_PORT", port, 1, 65535);
  return e;
}

struct ProcessGroup::Impl {
  DistEnv env;
  DistOptions opt;
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::vector<std::pair<std::string, long>> procs;  // per rank: host name, pid
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::world_size() const { return impl_->env.world_size; }
std::chrono::milliseconds ProcessGroup::collective_timeout() const { return impl_->opt.collective_timeout; }

std::shared_ptr<ProcessGroup> ProcessGroup::connect(const DistEnv& env, const DistOptions& opt) {
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  impl->opt = opt;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  const std::string me = "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size);
  const QuietGlog quiet;
  c10d::TCPStoreOptions so;
  so.port = uint16_t(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = size_t(env.world_size);
  so.waitWorkers = true;
  so.timeout = opt.rendezvous_timeout;
  try {
    impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    if (env.rank == 0) {
      bad_input(me + ": rendezvous at " + where + " failed: not every rank joined within " +
                seconds_text(opt.rendezvous_timeout) + ", or the port is taken (" + first_line_of(e) + ")");
    }
    bad_input(me + ": cannot reach the master at " + where + " within " + seconds_text(opt.rendezvous_timeout) +
              " (is rank 0 running, MASTER_ADDR/MASTER_PORT right, the port open?): " + first_line_of(e));
  }
  auto options = c10d::ProcessGroupGloo::Options::create(opt.collective_timeout);
  try {
    // Gloo listens on the interface it is told to use. Loopback masters keep
    // everything on loopback; GLOO_SOCKET_IFNAME picks an interface as in
    // PyTorch; otherwise the address this host's name resolves to.
    const std::string& a = env.master_addr;
    if (const char* ifname = variable("GLOO_SOCKET_IFNAME")) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (a == "127.0.0.1" || a == "localhost" || a == "::1") {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(a));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    options->threads = 2;
    impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world_size, options);
    // Who is who, so a rank that dies can be named (see fail()).
    const std::string self = host_name() + "\n" + std::to_string(::getpid());
    impl->store->set("compress/proc/" + std::to_string(env.rank), std::vector<uint8_t>(self.begin(), self.end()));
    for (int r = 0; r < env.world_size; ++r) {
      auto v = impl->store->get("compress/proc/" + std::to_string(r));
      std::string s(v.begin(), v.end());
      const size_t nl = s.find('\n');
      impl->procs.push_back({s.substr(0, nl), nl == std::string::npos ? 0 : std::atol(s.c_str() + nl + 1)});
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    const std::string reason = first_line_of(e);
    if (is_timeout(reason)) {
      bad_input(me + ": rendezvous at " + where + " failed: not every rank joined within " +
                seconds_text(opt.rendezvous_timeout) + " (" + reason + ")");
    }
    bad_input(me + ": joining the Gloo process group through " + where + " failed: " + reason);
  }
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

void ProcessGroup::fail(const char* what, const std::exception& e) const {
  const std::string reason = first_line_of(e);
  const std::string here = host_name();
  std::string gone;
  // A peer killed a moment ago may still be exiting: look for up to 3 s
  // (on a loaded machine its teardown can take a while to be scheduled).
  for (int attempt = 0; attempt < 60 && gone.empty(); ++attempt) {
    for (int r = 0; r < int(impl_->procs.size()); ++r) {
      const auto& [host, pid] = impl_->procs[size_t(r)];
      if (r != rank() && host == here && pid > 0 && process_exited(pid)) {
        gone += (gone.empty() ? "" : ", ") + ("rank " + std::to_string(r)) + " (process " + std::to_string(pid) +
                " has exited)";
      }
    }
    if (gone.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (gone.empty()) {
    gone = world_size() == 2 ? "rank " + std::to_string(1 - rank()) + " (on " + impl_->procs[size_t(1 - rank())].first + ")"
                             : "a peer rank";
  }
  const bool timed_out = is_timeout(reason);
  failure("rank " + std::to_string(rank()) + ": " + what + " failed: " +
          (timed_out ? "no answer within " + seconds_text(impl_->opt.collective_timeout) + " from " + gone
                     : "lost " + gone) +
          "; stopping (gloo: " + reason + ")");
}

namespace {

class GlooPending : public ProcessGroup::Pending {
 public:
  GlooPending(const ProcessGroup* group, c10::intrusive_ptr<c10d::Work> work, const char* what)
      : group_(group), work_(std::move(work)), what_(what) {}
  void wait() override {
    try {
      work_->wait();
    } catch (const std::exception& e) {
      group_->fail(what_, e);
    }
  }

 private:
  const ProcessGroup* group_;
  c10::intrusive_ptr<c10d::Work> work_;
  const char* what_;
};

}  // namespace

std::unique_ptr<ProcessGroup::Pending> ProcessGroup::all_reduce_sum_async(at::Tensor t, const char* what) {
  std::vector<at::Tensor> ts{std::move(t)};
  try {
    return std::make_unique<GlooPending>(this, impl_->pg->allreduce(ts), what);
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void ProcessGroup::all_reduce_sum(at::Tensor& t, const char* what) { all_reduce_sum_async(t, what)->wait(); }

void ProcessGroup::all_reduce_max(at::Tensor& t, const char* what) {
  std::vector<at::Tensor> ts{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  try {
    GlooPending(this, impl_->pg->allreduce(ts, o), what).wait();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors, int root, const char* what) {
  at::NoGradGuard no_grad;
  // One message per dtype (parameters are float, BN counters int64).
  std::map<at::ScalarType, std::vector<at::Tensor>> by_type;
  for (const auto& t : tensors) {
    if (t.defined() && t.numel() > 0) by_type[t.scalar_type()].push_back(t);
  }
  for (auto& [type, group] : by_type) {
    std::vector<at::Tensor> flat_parts;
    for (const auto& t : group) flat_parts.push_back(t.detach().reshape({-1}));
    std::vector<at::Tensor> flat{at::cat(flat_parts)};
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    try {
      impl_->pg->broadcast(flat, bo)->wait();
    } catch (const std::exception& e) {
      fail(what, e);
    }
    int64_t at_offset = 0;
    for (auto& t : group) {
      t.detach().copy_(flat[0].narrow(0, at_offset, t.numel()).view(t.sizes()));
      at_offset += t.numel();
    }
  }
}

GradientReducer::GradientReducer(std::shared_ptr<ProcessGroup> group, std::vector<at::Tensor> params,
                                 int64_t bucket_bytes, bool overlap)
    : group_(std::move(group)), params_(std::move(params)), where_(params_.size()), overlap_(overlap) {
  // Reverse order: the last layers' gradients come first out of backward.
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    const int64_t bytes = p.numel() * int64_t(p.element_size());
    Bucket* b = buckets_.empty() ? nullptr : &buckets_.back();
    if (!b || b->flat.scalar_type() != p.scalar_type() ||
        (b->flat.numel() * int64_t(b->flat.element_size()) + bytes > bucket_bytes && !b->params.empty())) {
      buckets_.emplace_back();
      b = &buckets_.back();
      b->flat = at::empty({0}, p.options().requires_grad(false));
    }
    where_[k] = {buckets_.size() - 1, b->params.size()};
    b->params.push_back(k);
    b->offsets.push_back(b->flat.numel());
    b->flat = at::empty({b->flat.numel() + p.numel()}, b->flat.options());
  }
  for (auto& b : buckets_) b.ready.assign(b.params.size(), false);
  if (overlap_) {
    for (size_t k = 0; k < params_.size(); ++k) {
      hooks_.push_back(params_[k].register_hook([this, k](const at::Tensor& g) { on_gradient(k, g); }));
    }
  }
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < hooks_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

void GradientReducer::on_gradient(size_t param, const at::Tensor& grad) {
  auto [bi, slot] = where_[param];
  Bucket& b = buckets_[bi];
  if (b.pending || b.ready[slot]) return;  // a second gradient for one parameter in one step: finish() re-reads .grad
  const at::Tensor& p = params_[param];
  b.flat.narrow(0, b.offsets[slot], p.numel()).view(p.sizes()).copy_(grad);
  b.ready[slot] = true;
  if (++b.ready_count == b.params.size()) launch_in_order();
}

// Starts every full bucket whose predecessors have started: the collectives
// must be issued in the same order on every rank.
void GradientReducer::launch_in_order() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready_count == buckets_[next_launch_].params.size()) {
    Bucket& b = buckets_[next_launch_++];
    b.pending = group_->all_reduce_sum_async(b.flat, "gradient all-reduce");
  }
}

void GradientReducer::finish() {
  at::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    if (b.pending) continue;
    for (size_t s = 0; s < b.params.size(); ++s) {
      if (b.ready[s]) continue;
      const at::Tensor& p = params_[b.params[s]];
      at::Tensor slice = b.flat.narrow(0, b.offsets[s], p.numel());
      if (p.grad().defined()) slice.view(p.sizes()).copy_(p.grad());
      else slice.zero_();  // no gradient on this rank this step
      b.ready[s] = true;
    }
    b.ready_count = b.params.size();
  }
  launch_in_order();
  const double inv = 1.0 / double(group_->world_size());
  for (auto& b : buckets_) {
    b.pending->wait();
    b.pending.reset();
    b.flat.mul_(inv);
    for (size_t s = 0; s < b.params.size(); ++s) {
      at::Tensor& p = params_[b.params[s]];
      at::Tensor avg = b.flat.narrow(0, b.offsets[s], p.numel()).view(p.sizes());
      if (p.grad().defined()) p.mutable_grad().copy_(avg);
      else p.mutable_grad() = avg.clone();
      b.ready[s] = false;
    }
    b.ready_count = 0;
  }
  next_launch_ = 0;
}

}  // namespace compress::train
