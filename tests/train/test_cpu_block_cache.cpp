// The process-wide cache of large CPU blocks (compress/cpu_block_cache.h).
// Every case installs it (a process installs it once; cases set the limit).
#include <catch2/catch.hpp>

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "compress/cpu_block_cache.h"
#include "compress/error.h"
#include "compress/threads.h"

namespace {

constexpr size_t kMiB = size_t{1} << 20;

at::Tensor block_of(size_t bytes) { return at::empty({static_cast<int64_t>(bytes)}, at::kByte); }

}  // namespace

TEST_CASE("the CPU block cache hands a freed large block out again and leaves small ones to LibTorch",
          "[cpu_block_cache]") {
  compress::install_cpu_block_cache(64 * kMiB);
  REQUIRE(compress::cpu_block_cache_installed());
  CHECK(compress::cpu_block_cache_limit_bytes() == 64 * kMiB);
  const size_t before = compress::cpu_block_cache_cached_bytes();

  at::Tensor t = block_of(kMiB);
  const void* first = t.data_ptr();
  t.reset();
  CHECK(compress::cpu_block_cache_cached_bytes() == before + kMiB);
  t = block_of(kMiB);
  CHECK(t.data_ptr() == first);
  CHECK(compress::cpu_block_cache_cached_bytes() == before);
  t.reset();

  // Up to 1/8 smaller takes the same block; a quarter smaller does not.
  t = block_of(kMiB - kMiB / 16);
  CHECK(t.data_ptr() == first);
  t.reset();
  t = block_of(kMiB - kMiB / 4);
  CHECK(t.data_ptr() != first);
  t.reset();
  CHECK(compress::cpu_block_cache_cached_bytes() == before + kMiB + (kMiB - kMiB / 4));

  // Under 256 KiB: LibTorch's allocator, nothing kept.
  const size_t cached = compress::cpu_block_cache_cached_bytes();
  block_of(200 << 10).reset();
  CHECK(compress::cpu_block_cache_cached_bytes() == cached);

  compress::install_cpu_block_cache(0);  // empty for the next case in this process
  CHECK(compress::cpu_block_cache_cached_bytes() == 0);
}

TEST_CASE("the CPU block cache keeps at most its limit, dropping the least recently freed blocks",
          "[cpu_block_cache]") {
  compress::install_cpu_block_cache(0);
  compress::install_cpu_block_cache(3 * kMiB);
  std::vector<at::Tensor> blocks;
  std::vector<const void*> data;
  for (int i = 0; i < 4; ++i) {
    blocks.push_back(block_of(kMiB));
    data.push_back(blocks.back().data_ptr());
  }
  for (auto& b : blocks) b.reset();  // freed in order 0, 1, 2, 3: block 0 goes
  CHECK(compress::cpu_block_cache_cached_bytes() == 3 * kMiB);

  // The most recently freed first.
  for (int i = 3; i >= 1; --i) {
    at::Tensor t = block_of(kMiB);
    CHECK(t.data_ptr() == data[i]);
    blocks[i] = t;
  }
  CHECK(compress::cpu_block_cache_cached_bytes() == 0);
  for (auto& b : blocks) b.reset();
  CHECK(compress::cpu_block_cache_cached_bytes() == 3 * kMiB);

  // A block larger than the limit is not kept.
  block_of(4 * kMiB).reset();
  CHECK(compress::cpu_block_cache_cached_bytes() == 3 * kMiB);

  // Lowering the limit frees what is over it; 0 passes everything through.
  compress::install_cpu_block_cache(kMiB);
  CHECK(compress::cpu_block_cache_cached_bytes() == kMiB);
  compress::install_cpu_block_cache(0);
  CHECK(compress::cpu_block_cache_cached_bytes() == 0);
  block_of(kMiB).reset();
  CHECK(compress::cpu_block_cache_cached_bytes() == 0);
  CHECK(compress::cpu_block_cache_limit_bytes() == 0);
}

// LibTorch gives oneDNN "GetAllocator(CPU)->raw_allocate / raw_deallocate",
// so a block oneDNN allocated before the cache was installed is freed
// through the cache's raw deleter; it must go back to its own allocator.
TEST_CASE("blocks the cache did not allocate, freed through it, go back to the allocator that made them",
          "[cpu_block_cache]") {
  c10::Allocator* libtorch = c10::GetDefaultCPUAllocator();
  void* large = libtorch->raw_allocate(2 * kMiB);
  void* small = libtorch->raw_allocate(1024);
  compress::install_cpu_block_cache(64 * kMiB);
  REQUIRE(c10::GetCPUAllocator() != libtorch);
  const size_t before = compress::cpu_block_cache_cached_bytes();
  c10::GetCPUAllocator()->raw_deallocate(large);
  c10::GetCPUAllocator()->raw_deallocate(small);
  CHECK(compress::cpu_block_cache_cached_bytes() == before);

  // The cache's own raw blocks are kept.
  void* own = c10::GetCPUAllocator()->raw_allocate(2 * kMiB);
  c10::GetCPUAllocator()->raw_deallocate(own);
  CHECK(compress::cpu_block_cache_cached_bytes() == before + 2 * kMiB);
  compress::install_cpu_block_cache(0);
}

// oneDNN's convolutions (forward and backward) allocate scratch through the
// cache; the results are those of LibTorch's allocator, bit for bit.
TEST_CASE("convolutions and their gradients are the same with the cache as without it", "[cpu_block_cache]") {
  compress::ScopedThreads one(1);
  at::manual_seed(3);
  const at::Tensor x = at::randn({8, 32, 28, 28});
  const at::Tensor w1 = at::randn({64, 32, 3, 3}) * 0.1, w2 = at::randn({64, 64, 3, 3}) * 0.1;
  auto step = [&] {
    at::Tensor a = w1.clone().requires_grad_(true), b = w2.clone().requires_grad_(true);
    at::Tensor y = at::conv2d(at::relu(at::conv2d(x, a, {}, 1, 1)), b, {}, 1, 1);
    y.pow(2).mean().backward();
    return std::vector<at::Tensor>{y.detach(), a.grad(), b.grad()};
  };
  compress::install_cpu_block_cache(0);
  const auto reference = step();
  compress::install_cpu_block_cache(256 * kMiB);
  for (int pass = 0; pass < 3; ++pass) {  // the later passes run on reused blocks
    const auto got = step();
    for (size_t i = 0; i < got.size(); ++i) CHECK(at::equal(got[i], reference[i]));
  }
  CHECK(compress::cpu_block_cache_cached_bytes() > 0);
  compress::install_cpu_block_cache(0);
}

TEST_CASE("the CPU block cache's limit comes from COMPRESS_CPU_CACHE_MB, and an unreadable one is refused",
          "[cpu_block_cache]") {
  const char* saved = std::getenv("COMPRESS_CPU_CACHE_MB");
  const std::string restore = saved != nullptr ? saved : "";
  auto from_env = [](const char* value) {
    setenv("COMPRESS_CPU_CACHE_MB", value, 1);
    compress::install_cpu_block_cache_from_env();
  };
  from_env("300");
  CHECK(compress::cpu_block_cache_installed());
  CHECK(compress::cpu_block_cache_limit_bytes() == 300 * kMiB);
  from_env("");  // empty: the default
  CHECK(compress::cpu_block_cache_limit_bytes() == 1024 * kMiB);
  for (const char* bad : {"256abc", "-5", "1.5", " 64", "99999999999999999999"}) {
    INFO(bad);
    try {
      from_env(bad);
      FAIL("accepted");
    } catch (const compress::Error& e) {
      CHECK(e.kind() == compress::ErrorKind::BadInput);
      CHECK(std::string(e.what()).find(std::string("COMPRESS_CPU_CACHE_MB='") + bad + "'") != std::string::npos);
    }
    CHECK(compress::cpu_block_cache_limit_bytes() == 1024 * kMiB);  // nothing changed
  }
  from_env("0");  // off: nothing cached, the ops' outputs included
  CHECK(compress::cpu_block_cache_limit_bytes() == 0);
  block_of(kMiB).reset();
  CHECK(compress::cpu_block_cache_cached_bytes() == 0);
  if (saved != nullptr)
    setenv("COMPRESS_CPU_CACHE_MB", restore.c_str(), 1);
  else
    unsetenv("COMPRESS_CPU_CACHE_MB");
}
