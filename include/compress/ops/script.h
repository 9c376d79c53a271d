#pragma once
// Module::define() resolves only `torch` by default, so source that calls
// custom ops cannot be compiled from C++. This resolver adds `ops`, so
// `ops.compress.linear_int8(...)` (the spelling TorchScript itself uses for
// custom ops in saved code) compiles, `compress.*` as a short form, and the
// special forms `annotate` / `unchecked_cast` that saved code uses; anything
// else falls back to the native resolver (`torch`). The IR exporter compiles
// everything it generates with it.
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/resolver.h>

namespace compress::ops {

torch::jit::ResolverPtr script_resolver();

// Replaces every packed weight in the storage form among the module's
// buffers (recursively) with its packing for this CPU (packed_weight_for_cpu):
// a model loaded from a file save_module wrote then holds its weights once,
// where the ops would otherwise keep a packing beside the stored bytes
// (11.7 MB more for torchvision's resnet18). Returns how many it replaced.
// Call before running the module from several threads.
int64_t pack_stored_weights(torch::jit::Module& module);

}  // namespace compress::ops
