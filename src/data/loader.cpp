#include "compress/data/loader.h"

#include <algorithm>
#include <random>

#include "compress/error.h"

namespace compress::data {

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c) {
  auto splitmix = [](uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  };
  return splitmix(splitmix(splitmix(a) ^ b) ^ c);
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (!shuffle) return order;
  // Fisher-Yates with our own draw: std::shuffle's use of the engine is
  // implementation-defined, and the order must not change with the library.
  std::mt19937_64 rng(mix_seed(seed, uint64_t(epoch), 0x5348554646ull));
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = int64_t(rng() % uint64_t(i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

namespace {

// Copies sample `src` [C, H, W] into `dst`, cropped at offset (dy, dx) of the
// zero-padded image, optionally mirrored, then normalised per channel.
// Plain loops on purpose: this runs on the prefetch thread, and an ATen op
// there would start a second OpenMP team whose spinning threads steal the
// two cores from the training step (measured: half the throughput).
void copy_sample(const float* src, float* dst, int64_t c, int64_t h, int64_t w, int64_t pad, int64_t dy,
                 int64_t dx, bool flip, const float* mean, const float* inv_std) {
  for (int64_t ch = 0; ch < c; ++ch) {
    const float m = mean ? mean[ch] : 0.0f, is = inv_std ? inv_std[ch] : 1.0f;
    const float* s = src + ch * h * w;
    float* d = dst + ch * h * w;
    for (int64_t y = 0; y < h; ++y) {
      const int64_t sy = y + dy - pad;
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sx = (flip ? w - 1 - x : x) + dx - pad;
        const float v = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? s[sy * w + sx] : 0.0f;
        d[y * w + x] = (v - m) * is;
      }
    }
  }
}

struct Draw {
  int64_t dy = 0, dx = 0;
  bool flip = false;
};

Draw draw(std::mt19937_64& rng, const Augment& aug) {
  Draw d;
  const int64_t p = aug.crop_padding;
  if (p > 0) {
    d.dy = int64_t(rng() % uint64_t(2 * p + 1));
    d.dx = int64_t(rng() % uint64_t(2 * p + 1));
  }
  d.flip = aug.horizontal_flip && (rng() & 1);
  return d;
}

}  // namespace

at::Tensor augment_batch(const at::Tensor& x_in, const Augment& aug, uint64_t rng_seed) {
  if (aug.crop_padding <= 0 && !aug.horizontal_flip) return x_in;
  TORCH_CHECK(x_in.dim() == 4, "augmentation needs image batches [B, C, H, W]");
  at::Tensor x = x_in.to(at::kFloat).contiguous();
  std::mt19937_64 rng(rng_seed);
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), p = std::max<int64_t>(0, aug.crop_padding);
  at::Tensor out = at::empty_like(x);
  for (int64_t i = 0; i < b; ++i) {
    Draw d = draw(rng, aug);
    copy_sample(x.data_ptr<float>() + i * c * h * w, out.data_ptr<float>() + i * c * h * w, c, h, w, p,
                d.dy, d.dx, d.flip, nullptr, nullptr);
  }
  return out;
}

Loader::Loader(const TensorDataset& ds, LoaderOptions opt) : ds_(ds), opt_(std::move(opt)) {
  if (opt_.batch_size <= 0) bad_input("batch size must be positive, got " + std::to_string(opt_.batch_size));
  if (ds_.size() == 0) bad_input(ds_.name + ": the dataset is empty");
  if (opt_.prefetch < 1) opt_.prefetch = 1;
  if (opt_.shards < 1 || opt_.shard < 0 || opt_.shard >= opt_.shards) {
    bad_input("loader shard " + std::to_string(opt_.shard) + " of " + std::to_string(opt_.shards) + " does not exist");
  }
  ds_.inputs = ds_.inputs.to(at::kFloat).contiguous();
  ds_.labels = ds_.labels.contiguous();
}

Loader::~Loader() { stop(); }

int64_t Loader::batches_per_epoch() const {
  const int64_t n = ds_.size(), b = opt_.batch_size;
  return opt_.drop_last ? n / b : (n + b - 1) / b;
}

Batch Loader::make_batch(int64_t epoch, int64_t index, const std::vector<int64_t>& order) const {
  const int64_t start = index * opt_.batch_size;
  const int64_t global_count = std::min<int64_t>(opt_.batch_size, ds_.size() - start);
  // This shard's slice [first, first + count) of the global batch.
  const int64_t first = global_count * opt_.shard / opt_.shards;
  const int64_t count = global_count * (opt_.shard + 1) / opt_.shards - first;
  std::vector<int64_t> shape(ds_.inputs.sizes().begin(), ds_.inputs.sizes().end());
  shape[0] = count;
  Batch batch;
  batch.index = index;
  batch.global_size = global_count;
  batch.inputs = at::empty(shape, at::kFloat);
  batch.labels = at::empty({count}, at::kLong);
  batch.indices = at::empty({count}, at::kLong);
  const int64_t sample = ds_.size() ? ds_.inputs.numel() / ds_.size() : 0;
  const bool image = ds_.inputs.dim() == 4;
  const int64_t c = image ? shape[1] : 1, h = image ? shape[2] : 1, w = image ? shape[3] : sample;
  const bool augment = image && (opt_.augment.crop_padding > 0 || opt_.augment.horizontal_flip);
  const int64_t pad = std::max<int64_t>(0, opt_.augment.crop_padding);
  std::vector<float> mean(size_t(c), 0.0f), inv_std(size_t(c), 1.0f);
  const bool normalise = opt_.mean.defined();
  if (normalise) {
    at::Tensor m = opt_.mean.to(at::kFloat).contiguous(), s = opt_.std.to(at::kFloat).contiguous();
    TORCH_CHECK(m.numel() == c && s.numel() == c, "normalisation needs one mean and std per channel");
    for (int64_t i = 0; i < c; ++i) {
      mean[size_t(i)] = m.data_ptr<float>()[i];
      inv_std[size_t(i)] = 1.0f / s.data_ptr<float>()[i];
    }
  }
  std::mt19937_64 rng(mix_seed(opt_.seed, uint64_t(epoch), uint64_t(index) + 1));
  const float* src = ds_.inputs.data_ptr<float>();
  float* dst = batch.inputs.data_ptr<float>();
  const int64_t* labels = ds_.labels.data_ptr<int64_t>();
  for (int64_t g = 0; g < first + count; ++g) {
    Draw d;
    if (augment) d = draw(rng, opt_.augment);  // drawn for every sample before ours as well
    if (g < first) continue;
    const int64_t i = g - first, j = order[size_t(start + g)];
    batch.labels.data_ptr<int64_t>()[i] = labels[j];
    batch.indices.data_ptr<int64_t>()[i] = j;
    copy_sample(src + j * sample, dst + i * sample, c, h, w, augment ? pad : 0, augment ? d.dy : 0,
                augment ? d.dx : 0, d.flip, normalise ? mean.data() : nullptr, normalise ? inv_std.data() : nullptr);
  }
  return batch;
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  queue_.clear();
  cancel_ = false;
  producing_done_ = true;
  error_ = nullptr;
}

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop();
  producing_done_ = false;
  worker_ = std::thread([this, epoch, first_batch] {
    try {
      std::vector<int64_t> order = epoch_order(ds_.size(), opt_.seed, epoch, opt_.shuffle);
      for (int64_t k = first_batch; k < batches_per_epoch(); ++k) {
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [&] { return cancel_ || int64_t(queue_.size()) < opt_.prefetch; });
          if (cancel_) break;
        }
        Batch b = make_batch(epoch, k, order);
        std::lock_guard<std::mutex> lock(mu_);
        queue_.push_back(std::move(b));
        cv_.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu_);
    producing_done_ = true;
    cv_.notify_all();
  });
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty() || producing_done_; });
  if (error_) std::rethrow_exception(error_);
  if (queue_.empty()) return std::nullopt;
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  cv_.notify_all();
  return b;
}

}  // namespace compress::data
