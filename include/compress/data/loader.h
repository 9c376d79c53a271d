#pragma once
// Batching with background prefetch. Every random choice (shuffle order,
// crop offsets, flips) is drawn from a generator seeded by (seed, epoch,
// batch index), so batch k of epoch e is the same whether the run started at
// step 0 or was resumed from a checkpoint at step k, and whatever the timing
// of the prefetch thread.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "compress/data/dataset.h"

namespace compress::data {

struct Augment {
  int64_t crop_padding = 0;  // random crop back to H x W after zero-padding by this many pixels
  bool horizontal_flip = false;
};

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  Augment augment;
  // Applied after augmentation, per channel: (x - mean) / std. Undefined = none.
  at::Tensor mean, std;
  int64_t prefetch = 2;  // batches prepared ahead by the background thread
  // Data-parallel training: each batch of the epoch's order is a global batch
  // split into `shards` contiguous slices, of which this loader yields slice
  // `shard` (augmentation drawn as for the whole batch), so step k sees the
  // same samples, augmented alike, whatever the number of processes.
  int64_t shard = 0, shards = 1;
};

struct Batch {
  at::Tensor inputs;
  at::Tensor labels;
  int64_t index = 0;  // batch index within the epoch
  int64_t global_size = 0;  // samples in the whole (global) batch; inputs hold this shard's slice
  at::Tensor indices; // int64 [B]: which samples of the dataset, in batch order
};

// The permutation of [0, n) used for `epoch` (identity when !shuffle).
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle);

// Mixes seeds into one 64-bit value (splitmix64); used wherever a stream of
// randomness must be derived from (seed, epoch, step).
uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0);

// Applies crop and flip to a batch [B, C, H, W] with randomness from `rng_seed`.
at::Tensor augment_batch(const at::Tensor& x, const Augment& aug, uint64_t rng_seed);

class Loader {
 public:
  Loader(const TensorDataset& ds, LoaderOptions opt);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const;
  int64_t dataset_size() const { return ds_.size(); }
  const LoaderOptions& options() const { return opt_; }

  // Starts producing the batches of `epoch`, from `first_batch` on, on the
  // background thread. Stops any epoch still in flight.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the current epoch, or nothing at the end of it.
  std::optional<Batch> next();

  // Builds batch `index` of `epoch` synchronously (what the thread runs).
  Batch make_batch(int64_t epoch, int64_t index, const std::vector<int64_t>& order) const;

 private:
  void stop();

  TensorDataset ds_;
  LoaderOptions opt_;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool producing_done_ = true;
  bool cancel_ = false;
  std::exception_ptr error_;
};

}  // namespace compress::data
