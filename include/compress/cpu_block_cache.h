#pragma once
// A cache of large CPU blocks in front of LibTorch's CPU allocator, for the
// whole process.
//
// Why: glibc hands blocks above its mmap threshold (128 KiB to 32 MiB,
// adjusted as the process runs) back to the system when they are freed, and
// trims its heap, so a loop that allocates the same activations again and
// again (evaluation, fine-tuning, the AMC search) page-faults its whole
// working set on every pass. Evaluating the Fashion-MNIST resnet at batch
// 500 on one thread spent about a third of its time in the kernel, over a
// million faults (docs/performance.md, "Page faults in evaluation and
// training"). Turning glibc's unmapping off instead makes the heap grow
// without bound: posix_memalign cannot reuse a freed block of the same size.
//
// The cache keeps freed blocks of 256 KiB or more and hands them out again
// for a request of their size (up to 1/8 smaller); smaller requests go to
// LibTorch's own allocator. It holds at most a limit of free bytes and, past
// it, returns the least recently freed blocks to the system, so a process
// holds at most its live tensors plus the limit.
//
// The `compress` command line installs it at start with the limit from
// COMPRESS_CPU_CACHE_MB (mebibytes; default 1024, 0 leaves LibTorch's
// allocator alone). A program linking the library calls
// install_cpu_block_cache itself. The INT8 ops keep their own pool of output
// blocks (compress/ops/activation_pool.h), which also serves Python.
#include <cstddef>

namespace compress {

// Puts the cache in front of LibTorch's CPU allocator (the first call) and
// sets its limit of free bytes; blocks held beyond a lowered limit are freed
// now. A limit of 0 passes every request straight through (the cache stays
// installed, empty). Blocks allocated before the cache was installed are
// freed as before: LibTorch's own deleters, and the raw frees of oneDNN's
// scratch memory, are passed on to the allocator the cache replaced.
void install_cpu_block_cache(size_t limit_bytes);

// install_cpu_block_cache with COMPRESS_CPU_CACHE_MB's limit (default 1024
// MiB; 0 or an unreadable value: no cache, LibTorch's allocator untouched).
void install_cpu_block_cache_from_env();

// Whether the cache is installed (false also when another allocator holds
// LibTorch's CPU slot at a higher priority), its limit (0 when it is not
// installed), and the free bytes it holds now.
bool cpu_block_cache_installed();
size_t cpu_block_cache_limit_bytes();
size_t cpu_block_cache_cached_bytes();

}  // namespace compress
