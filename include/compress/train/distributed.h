#pragma once
// Data-parallel training over PyTorch's c10d: a TCPStore rendezvous and a
// Gloo process group, configured by torchrun's environment variables, so a
// job launches the way a PyTorch DDP job does (docs/distributed.md).
//
// The Trainer uses this when TrainConfig::group is set: parameters are
// broadcast from rank 0, gradients are averaged in buckets (launched from
// gradient hooks while backward still runs), and each rank trains on its
// slice of every global batch. c10d's headers stay inside distributed.cpp.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace compress::train {

// Where this process stands in a job: torchrun's MASTER_ADDR, MASTER_PORT,
// RANK, WORLD_SIZE and LOCAL_RANK.
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  bool distributed() const { return world_size > 1; }
};

// Reads the variables. None of RANK / WORLD_SIZE set: a single process.
// Error(BadInput), one line naming the variable, when one is not a number,
// out of range, inconsistent with another (RANK >= WORLD_SIZE), or missing
// (MASTER_ADDR / MASTER_PORT when WORLD_SIZE > 1).
DistEnv dist_env_from_environment();

struct DistOptions {
  // How long the ranks wait for each other to join (rank 0 hosts the store;
  // the others retry connecting until this runs out).
  std::chrono::milliseconds rendezvous_timeout{std::chrono::seconds(300)};
  // How long a collective waits for its peers: a rank that died or hangs makes
  // the others fail within this instead of blocking forever.
  std::chrono::milliseconds collective_timeout{std::chrono::seconds(30)};
};

// A Gloo process group (the ranks of one job). Every rank must call the
// collectives in the same order with tensors of the same shapes.
class ProcessGroup {
 public:
  // Rendezvous through the TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 hosts
  // it). Error(BadInput) when the store cannot be reached or not every rank
  // joins within rendezvous_timeout, naming the address and the timeout.
  static std::shared_ptr<ProcessGroup> connect(const DistEnv& env, const DistOptions& opt = {});
  ~ProcessGroup();

  int rank() const;
  int world_size() const;
  std::chrono::milliseconds collective_timeout() const;

  // In place, from `root` to everyone; the tensors travel as one message.
  void broadcast(const std::vector<at::Tensor>& tensors, int root = 0, const char* what = "broadcast");
  // In place: every rank ends with the element-wise sum.
  void all_reduce_sum(at::Tensor& t, const char* what = "all-reduce");
  // In place: every rank ends with the element-wise maximum.
  void all_reduce_max(at::Tensor& t, const char* what = "all-reduce");

  // A started all-reduce (sum, in place); wait() finishes it.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;
  };
  std::unique_ptr<Pending> all_reduce_sum_async(at::Tensor t, const char* what);

  // A collective failed: one line naming this rank, what it was doing, the
  // rank that is gone when it can be known (a peer process on this machine
  // that has exited; the other rank when there are two) and Gloo's reason.
  [[noreturn]] void fail(const char* what, const std::exception& e) const;

 private:
  struct Impl;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Averages the gradients of `params` over the group after each backward, as
// DDP does: the parameters are packed in reverse order (roughly the order in
// which backward produces their gradients) into buckets of about
// `bucket_bytes`; with `overlap`, a gradient hook copies each gradient into
// its bucket as soon as it exists and a full bucket's all-reduce starts while
// backward goes on. Buckets are always reduced in the same order on every
// rank; a parameter that got no gradient on a rank contributes zeros.
class GradientReducer {
 public:
  GradientReducer(std::shared_ptr<ProcessGroup> group, std::vector<at::Tensor> params, int64_t bucket_bytes,
                  bool overlap);
  ~GradientReducer();  // removes the hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // After backward: starts what is left, waits for every bucket, and writes
  // the averages into the parameters' .grad.
  void finish();

  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;
    at::Tensor flat;
    std::vector<bool> ready;
    size_t ready_count = 0;
    std::unique_ptr<ProcessGroup::Pending> pending;
  };
  void on_gradient(size_t param, const at::Tensor& grad);
  void launch_in_order();

  std::shared_ptr<ProcessGroup> group_;
  std::vector<at::Tensor> params_;
  std::vector<std::pair<size_t, size_t>> where_;  // param -> (bucket, slot)
  std::vector<Bucket> buckets_;
  std::vector<unsigned> hooks_;
  size_t next_launch_ = 0;
  bool overlap_;
};

}  // namespace compress::train
