#include "activation_pool.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace compress::ops {

namespace {

constexpr size_t kSmallest = size_t{256} << 10;  // below: LibTorch's allocator
constexpr size_t kPage = 4096;
constexpr size_t kHeader = 64;  // the block's size, then the 64-byte aligned data

size_t limit_from_env() {
  const char* env = std::getenv("COMPRESS_OPS_POOL_MB");
  if (env == nullptr || *env == '\0') return size_t{256} << 20;
  char* end = nullptr;
  const long mb = std::strtol(env, &end, 10);
  return (end != env && mb > 0) ? static_cast<size_t>(mb) << 20 : 0;
}

class ActivationPool final : public c10::Allocator {
 public:
  // Never destroyed: tensors that outlive static destruction still free into it.
  static ActivationPool& instance() {
    static ActivationPool* pool = new ActivationPool();
    return *pool;
  }

  c10::DataPtr allocate(size_t nbytes) const override {
    if (limit() == 0 || nbytes < kSmallest) return c10::GetCPUAllocator()->allocate(nbytes);
    const size_t size = (nbytes + kHeader + kPage - 1) / kPage * kPage;
    void* base = take(size);
    if (base == nullptr) {
      if (posix_memalign(&base, kPage, size) != 0) throw std::bad_alloc();
      *static_cast<size_t*>(base) = size;
    }
    return {static_cast<char*>(base) + kHeader, base, &release, c10::Device(c10::DeviceType::CPU)};
  }

  size_t cached() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }
  // Read without the lock on every allocation; written under it.
  size_t limit() const { return limit_.load(std::memory_order_relaxed); }
  void set_limit(size_t bytes) {
    std::vector<void*> surplus;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_.store(bytes, std::memory_order_relaxed);
      for (auto& [size, blocks] : free_) {
        while (cached_ > bytes && !blocks.empty()) {
          surplus.push_back(blocks.back());
          blocks.pop_back();
          cached_ -= size;
        }
      }
    }
    for (void* base : surplus) std::free(base);
  }

 private:
  ActivationPool() : limit_(limit_from_env()) {}

  // A free block of exactly `size` bytes, or null.
  void* take(size_t size) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* base = it->second.back();
    it->second.pop_back();
    cached_ -= size;
    return base;
  }

  // The deleter of every pooled block: kept while the pool has room, else freed.
  static void release(void* base) {
    ActivationPool& pool = instance();
    const size_t size = *static_cast<size_t*>(base);
    {
      std::lock_guard<std::mutex> lock(pool.mutex_);
      if (pool.cached_ + size <= pool.limit()) {
        pool.free_[size].push_back(base);
        pool.cached_ += size;
        return;
      }
    }
    std::free(base);
  }

  mutable std::mutex mutex_;
  std::atomic<size_t> limit_;
  mutable std::unordered_map<size_t, std::vector<void*>> free_;
  mutable size_t cached_ = 0;
};

}  // namespace

size_t activation_pool_cached_bytes() { return ActivationPool::instance().cached(); }
size_t activation_pool_limit_bytes() { return ActivationPool::instance().limit(); }
void set_activation_pool_limit_bytes(size_t bytes) { ActivationPool::instance().set_limit(bytes); }

namespace detail {

at::Tensor empty_activation(at::IntArrayRef sizes, at::ScalarType dtype) {
  return at::detail::empty_generic(sizes, &ActivationPool::instance(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   dtype, c10::nullopt);
}

}  // namespace detail

}  // namespace compress::ops
