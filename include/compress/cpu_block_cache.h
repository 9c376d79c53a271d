#pragma once
// A cache of large CPU blocks: freed blocks are kept and handed out again.
//
// Why: glibc hands blocks above its mmap threshold (128 KiB to 32 MiB,
// adjusted as the process runs) back to the system when they are freed, and
// trims its heap, so a loop that allocates the same activations again and
// again (evaluation, fine-tuning, the AMC search, an INT8 model's forward)
// page-faults its whole working set on every pass. Evaluating the
// Fashion-MNIST resnet at batch 500 on one thread spent about a third of its
// time in the kernel, over a million faults; an INT8 mobilenet_v2 forward at
// batch 32 about 10,000 (docs/performance.md, "Page faults"). Turning glibc's
// unmapping off instead makes the heap grow without bound: posix_memalign
// cannot reuse a freed block of the same size.
//
// The cache keeps freed blocks of 256 KiB or more and hands them out again
// for a request of their size (up to 1/8 smaller, the most recently freed
// first); smaller requests go to LibTorch's own allocator. It holds at most a
// limit of free bytes and, past it, returns the least recently freed blocks
// to the system, so a process holds at most its live tensors plus the limit.
//
// One cache, two scopes. The INT8 ops (the compress_ops runtime, in C++ and
// in Python) always take their outputs from it. install_cpu_block_cache puts
// it in front of LibTorch's CPU allocator as well, for every CPU tensor of
// the process: the `compress` command line and the example programs do that
// at start. The limit is COMPRESS_CPU_CACHE_MB mebibytes (default 1024; 0
// turns the cache off for both) until a program sets another; a program that
// never reads the variable itself (Python) and finds it unreadable gets the
// default and one warning when the cache first serves a block under it
// (none when it set its own limit first). Python sees
// and sets it through two ops: torch.ops.compress.cpu_block_cache_stats()
// -> (limit_bytes, cached_bytes, installed) and
// torch.ops.compress.set_cpu_block_cache_limit(bytes) (0 hands every held
// block back now, as torch.cuda.empty_cache does for CUDA's cache).
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
// MiB); with 0, LibTorch's allocator is left alone and the ops' outputs are
// not cached either. A value that is not a whole number of mebibytes throws
// compress::Error (bad input) naming it, before anything changes.
void install_cpu_block_cache_from_env();

// Sets the limit without installing the cache (then it serves the INT8 ops'
// outputs only); blocks held beyond it are freed now.
void set_cpu_block_cache_limit_bytes(size_t limit_bytes);

// Whether the cache is installed in front of LibTorch's allocator (false
// also when another allocator holds LibTorch's CPU slot at a higher
// priority), its limit (0: off), and the free bytes it holds now.
bool cpu_block_cache_installed();
size_t cpu_block_cache_limit_bytes();
size_t cpu_block_cache_cached_bytes();

}  // namespace compress
