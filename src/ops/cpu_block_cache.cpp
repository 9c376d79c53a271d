// The cache of large CPU blocks (include/compress/cpu_block_cache.h says why).
//
// The cache's own blocks are plain posix_memalign blocks (data == context, no
// header), so any deleter that ends in free() frees them correctly, and the
// cache tells its blocks from others by a table of the ones it handed out.
// That table is what makes installing it mid-process safe: LibTorch registers
// oneDNN's allocator as "GetAllocator(CPU)->raw_allocate / raw_deallocate",
// so oneDNN frees a scratch block allocated before the cache existed through
// the cache's raw deleter (an earlier try, which read a header in front of
// every pointer, crashed there).
#include "compress/cpu_block_cache.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "compress/error.h"
#include "internal.h"

namespace compress {

namespace {

constexpr size_t kSmallest = size_t{256} << 10;  // below: LibTorch's allocator
constexpr size_t kPage = 4096;
constexpr size_t kAlignment = 64;  // LibTorch's CPU alignment (c10's gAlignment)
constexpr size_t kDefaultLimitMb = 1024;
constexpr const char* kLimitVariable = "COMPRESS_CPU_CACHE_MB";

// The limit COMPRESS_CPU_CACHE_MB asks for: the default when it is unset or
// empty, nothing when it is not a whole number of mebibytes.
std::optional<size_t> limit_from_env() {
  const char* env = std::getenv(kLimitVariable);
  if (env == nullptr || *env == '\0') return kDefaultLimitMb << 20;
  size_t mb = 0;
  for (const char* c = env; *c != '\0'; ++c) {
    if (!std::isdigit(static_cast<unsigned char>(*c)) || mb > (size_t{1} << 30)) return std::nullopt;
    mb = mb * 10 + static_cast<size_t>(*c - '0');
  }
  return mb << 20;
}

class CpuBlockCache final : public c10::Allocator {
 public:
  // Never destroyed: tensors freed during static destruction still find it.
  static CpuBlockCache& instance() {
    static CpuBlockCache* cache = new CpuBlockCache();
    return *cache;
  }

  // Installs the cache in front of the current CPU allocator, once.
  void install() {
    std::call_once(installed_once_, [this] {
      c10::Allocator* next = c10::GetCPUAllocator();
      next_raw_deleter_ = next->raw_deleter();
      if (next_raw_deleter_ == nullptr) next_raw_deleter_ = &c10::free_cpu;  // LibTorch's own frees with it
      next_.store(next);
      // The same priority as LibTorch's default, which it registers at 0; an
      // allocator someone registered above that stays, and the cache is off.
      c10::SetCPUAllocator(this, 0);
      installed_.store(c10::GetCPUAllocator() == this);
    });
  }
  bool installed() const { return installed_.load(); }

  c10::DataPtr allocate(size_t nbytes) const override {
    if (nbytes < kSmallest) return next()->allocate(nbytes);
    warn_if_unreadable_limit_in_force();
    if (limit() == 0) return next()->allocate(nbytes);
    const size_t size = (nbytes + kPage - 1) / kPage * kPage;
    void* data = take(size);
    if (data == nullptr) {
      if (posix_memalign(&data, kAlignment, size) != 0) throw std::bad_alloc();
      std::lock_guard<std::mutex> lock(mutex_);
      live_.emplace(data, size);
    }
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  // oneDNN's raw_deallocate comes here for any block, the cache's or not.
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  // Read without the lock on every allocation; written under it.
  size_t limit() const { return limit_.load(std::memory_order_relaxed); }
  size_t cached() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }
  void set_limit(size_t bytes) {
    std::vector<void*> surplus;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      unreadable_env_.store(false);  // the program's limit replaces the variable's
      limit_.store(bytes, std::memory_order_relaxed);
      evict_until_fits(0, surplus);
    }
    for (void* data : surplus) std::free(data);
  }

 private:
  struct FreeBlock;
  using Recency = std::list<FreeBlock>;  // front: freed most recently
  using BySize = std::multimap<size_t, Recency::iterator>;
  struct FreeBlock {
    void* data;
    size_t size;
    BySize::iterator by_size;  // its entry in by_size_
  };

  // Until a program sets a limit, COMPRESS_CPU_CACHE_MB's. Unreadable here
  // (the ops in a process that never called install_cpu_block_cache_from_env,
  // which refuses it): the default, with a warning when the cache first
  // serves a block under it; none when the program sets its own limit first.
  CpuBlockCache() {
    const std::optional<size_t> limit = limit_from_env();
    unreadable_env_.store(!limit);
    limit_.store(limit.value_or(kDefaultLimitMb << 20));
  }

  void warn_if_unreadable_limit_in_force() const {
    if (!unreadable_env_.load(std::memory_order_relaxed) || !unreadable_env_.exchange(false)) return;
    const char* env = std::getenv(kLimitVariable);
    TORCH_WARN(kLimitVariable, "='", env != nullptr ? env : "", "' is not a whole number of mebibytes; using ",
               kDefaultLimitMb, " MiB");
  }

  // Where requests the cache does not serve go: the allocator it replaced
  // once installed, LibTorch's current one before.
  c10::Allocator* next() const {
    c10::Allocator* next = next_.load();
    return next != nullptr ? next : c10::GetCPUAllocator();
  }

  // The most recently freed block of `size` bytes, or of up to 1/8 more, or
  // null. A handed-out block is in live_ with its real size.
  void* take(size_t size) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = by_size_.lower_bound(size);
    if (it == by_size_.end() || it->first > size + size / 8) return nullptr;
    Recency::iterator block = it->second;
    void* data = block->data;
    cached_ -= block->size;
    live_.emplace(data, block->size);
    recency_.erase(block);
    by_size_.erase(it);
    return data;
  }

  // Under the lock: moves the least recently freed blocks to `surplus` until
  // `incoming` more bytes fit under the limit.
  void evict_until_fits(size_t incoming, std::vector<void*>& surplus) const {
    while (!recency_.empty() && cached_ + incoming > limit()) {
      const FreeBlock& oldest = recency_.back();
      by_size_.erase(oldest.by_size);
      cached_ -= oldest.size;
      surplus.push_back(oldest.data);
      recency_.pop_back();
    }
  }

  // Under the lock: keeps a block the cache handed out, now free.
  void keep(void* data, size_t size) const {
    recency_.push_front({data, size, {}});
    // Before the blocks of its size already here: take() finds it first.
    recency_.front().by_size = by_size_.emplace_hint(by_size_.lower_bound(size), size, recency_.begin());
    cached_ += size;
  }

  // The deleter of the cache's blocks and the raw deleter of every block.
  static void release(void* data) {
    if (data == nullptr) return;
    CpuBlockCache& cache = instance();
    std::vector<void*> surplus;
    bool ours = false;
    {
      std::lock_guard<std::mutex> lock(cache.mutex_);
      auto it = cache.live_.find(data);
      if (it != cache.live_.end()) {
        ours = true;
        const size_t size = it->second;
        cache.live_.erase(it);
        if (size <= cache.limit()) {
          cache.evict_until_fits(size, surplus);
          cache.keep(data, size);
        } else {
          surplus.push_back(data);
        }
      }
    }
    // Not the cache's: allocated by the allocator it replaced.
    if (!ours) cache.next_raw_deleter_(data);
    for (void* block : surplus) std::free(block);
  }

  std::once_flag installed_once_;
  std::atomic<bool> installed_{false};
  std::atomic<c10::Allocator*> next_{nullptr};
  c10::DeleterFnPtr next_raw_deleter_ = nullptr;

  mutable std::mutex mutex_;
  std::atomic<size_t> limit_{0};
  mutable std::atomic<bool> unreadable_env_{false};  // the default is in force in its place, not yet said
  mutable std::unordered_map<void*, size_t> live_;  // handed out: data -> block size
  mutable Recency recency_;
  mutable BySize by_size_;
  mutable size_t cached_ = 0;
};

}  // namespace

void install_cpu_block_cache(size_t limit_bytes) {
  CpuBlockCache& cache = CpuBlockCache::instance();
  cache.set_limit(limit_bytes);
  cache.install();
}

void install_cpu_block_cache_from_env() {
  const std::optional<size_t> limit = limit_from_env();
  if (!limit)
    throw Error(ErrorKind::BadInput, std::string(kLimitVariable) + "='" + std::getenv(kLimitVariable) +
                                         "' is not a whole number of mebibytes (0 turns the cache off)");
  if (*limit > 0)
    install_cpu_block_cache(*limit);
  else
    set_cpu_block_cache_limit_bytes(0);
}

void set_cpu_block_cache_limit_bytes(size_t limit_bytes) { CpuBlockCache::instance().set_limit(limit_bytes); }

bool cpu_block_cache_installed() { return CpuBlockCache::instance().installed(); }
size_t cpu_block_cache_limit_bytes() { return CpuBlockCache::instance().limit(); }
size_t cpu_block_cache_cached_bytes() { return CpuBlockCache::instance().cached(); }

namespace ops::detail {

at::Tensor empty_activation(at::IntArrayRef sizes, at::ScalarType dtype) {
  // Straight from the cache, installed or not: the ops' outputs are reused
  // in Python too, where nothing installs it.
  return at::detail::empty_generic(sizes, &CpuBlockCache::instance(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   dtype, c10::nullopt);
}

}  // namespace ops::detail

}  // namespace compress
