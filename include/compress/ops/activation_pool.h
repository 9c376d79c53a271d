#pragma once
// The ops' output tensors (activations, mostly) come from a pool that keeps
// the large blocks freed by earlier calls and hands them out again.
//
// Why: a model's activations at batch 32 are megabytes each; glibc serves
// them with fresh pages, so without the pool every forward page-faults its
// whole working set again (about 10,000 faults per forward of mobilenet_v2
// at batch 32), and on a shared VM, where a fault's cost varies several-fold
// over an hour, that was up to half of the time (docs/performance.md,
// "Page faults"). A forward repeats its sizes, so blocks are reused by exact
// page-rounded size. Outputs under 256 KiB come from LibTorch's allocator.
//
// The pool keeps at most a limit of free blocks: COMPRESS_OPS_POOL_MB
// mebibytes (default 256; 0 turns it off), or set_activation_pool_limit_bytes.
// A block freed beyond the limit goes back to the system.
#include <cstddef>

namespace compress::ops {

// Bytes of free blocks the pool holds now.
size_t activation_pool_cached_bytes();
// The limit on them (0: the pool is off).
size_t activation_pool_limit_bytes();
// Sets the limit; blocks held beyond it are freed now. 0 turns the pool off.
void set_activation_pool_limit_bytes(size_t bytes);

}  // namespace compress::ops
